#!/usr/bin/env bash
# SFT on ALFWorld expert trajectories. PROFILE=demo bash sft/alfworld.sh [extra sft/train.py flags]
exec bash "$(dirname "${BASH_SOURCE[0]}")/run_sft.sh" alfworld "$@"
