#!/usr/bin/env bash
# The main job: set up, then run the whole pipeline (SFT -> exploration -> progress estimator ->
# PPO -> merge -> evaluation -> report) for one environment and profile.
#   bash scripts/main.sh                      (demo profile on ALFWorld: CPU, ~19 min on 2 cores)
#   PROFILE=gpu bash scripts/main.sh alfworld
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
PROFILE="${PROFILE:-demo}" bash scripts/run_pipeline.sh "${1:-alfworld}"
