#!/usr/bin/env bash
# Progress estimator + reward fusion on VirtualHome exploration rollouts. PROFILE=demo bash prm/virtualhome.sh
exec bash "$(dirname "${BASH_SOURCE[0]}")/run_prm.sh" virtualhome "$@"
