#!/usr/bin/env bash
# Exploration on VirtualHome training tasks. PROFILE=demo bash exploration/virtualhome.sh
exec bash "$(dirname "${BASH_SOURCE[0]}")/run_explore.sh" virtualhome "$@"
