#!/usr/bin/env bash
# PPO + merge on VirtualHome. PROFILE=demo bash ppo/virtualhome.sh progress   (variant: see prm/fuse_rewards.py)
exec bash "$(dirname "${BASH_SOURCE[0]}")/run_ppo.sh" virtualhome "${1:-progress}" "${@:2}"
