#!/usr/bin/env bash
# PPO + merge on WebShop. PROFILE=demo bash ppo/webshop.sh progress   (variant: see prm/fuse_rewards.py)
exec bash "$(dirname "${BASH_SOURCE[0]}")/run_ppo.sh" webshop "${1:-progress}" "${@:2}"
