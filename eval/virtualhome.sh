#!/usr/bin/env bash
# Evaluate MODEL on the VirtualHome splits in EVAL_SPLITS (scripts/configs/virtualhome.sh).
#   PROFILE=demo bash eval/virtualhome.sh
#   MODEL=runs/gpu/virtualhome/ppo_offline_progress/merged PROFILE=gpu bash eval/virtualhome.sh
exec bash "$(dirname "${BASH_SOURCE[0]}")/run_eval.sh" virtualhome "$@"
