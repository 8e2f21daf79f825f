#!/usr/bin/env bash
# Evaluate MODEL on the ALFWorld splits in EVAL_SPLITS (scripts/configs/alfworld.sh).
#   PROFILE=demo bash eval/alfworld.sh
#   MODEL=runs/gpu/alfworld/ppo_offline_progress/merged PROFILE=gpu bash eval/alfworld.sh
exec bash "$(dirname "${BASH_SOURCE[0]}")/run_eval.sh" alfworld "$@"
