#!/usr/bin/env bash
# SFT on VirtualHome expert trajectories. PROFILE=demo bash sft/virtualhome.sh [extra sft/train.py flags]
exec bash "$(dirname "${BASH_SOURCE[0]}")/run_sft.sh" virtualhome "$@"
