#!/usr/bin/env bash
# Evaluate MODEL on the WebShop splits in EVAL_SPLITS (scripts/configs/webshop.sh).
#   PROFILE=demo bash eval/webshop.sh
#   MODEL=runs/gpu/webshop/ppo_offline_progress/merged PROFILE=gpu bash eval/webshop.sh
exec bash "$(dirname "${BASH_SOURCE[0]}")/run_eval.sh" webshop "$@"
