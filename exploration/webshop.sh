#!/usr/bin/env bash
# Exploration on WebShop training goals. PROFILE=demo bash exploration/webshop.sh
exec bash "$(dirname "${BASH_SOURCE[0]}")/run_explore.sh" webshop "$@"
