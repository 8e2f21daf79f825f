#!/usr/bin/env bash
# The main job: set up, then run the pipeline for the profile (default: demo).
# For now the pipeline is the evaluation of the default model on ALFWorld; later stages are added
# as they land (see README "Stages").
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
PROFILE="${PROFILE:-demo}" bash eval/alfworld.sh
