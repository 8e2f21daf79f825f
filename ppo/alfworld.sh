#!/usr/bin/env bash
# PPO + merge on ALFWorld. PROFILE=demo bash ppo/alfworld.sh progress   (variant: see prm/fuse_rewards.py)
exec bash "$(dirname "${BASH_SOURCE[0]}")/run_ppo.sh" alfworld "${1:-progress}" "${@:2}"
