#!/usr/bin/env bash
# SFT on WebShop expert trajectories. PROFILE=demo bash sft/webshop.sh [extra sft/train.py flags]
exec bash "$(dirname "${BASH_SOURCE[0]}")/run_sft.sh" webshop "$@"
