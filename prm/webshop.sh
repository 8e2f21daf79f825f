#!/usr/bin/env bash
# Progress estimator + reward fusion on WebShop exploration rollouts. PROFILE=demo bash prm/webshop.sh
exec bash "$(dirname "${BASH_SOURCE[0]}")/run_prm.sh" webshop "$@"
