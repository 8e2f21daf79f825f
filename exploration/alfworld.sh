#!/usr/bin/env bash
# Exploration on ALFWorld training games. PROFILE=demo bash exploration/alfworld.sh
exec bash "$(dirname "${BASH_SOURCE[0]}")/run_explore.sh" alfworld "$@"
