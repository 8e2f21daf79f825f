#!/usr/bin/env bash
# Progress estimator + reward fusion on ALFWorld exploration rollouts. PROFILE=demo bash prm/alfworld.sh
exec bash "$(dirname "${BASH_SOURCE[0]}")/run_prm.sh" alfworld "$@"
