#!/usr/bin/env bash
# The test command: set up (idempotent), lint, then run the test suite. Extra arguments go to pytest,
# e.g. `bash scripts/test.sh -m "not slow"`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
PY=.venv/bin/python
[[ "${SPA_SYSTEM_PYTHON:-0}" == "1" ]] && PY="$(command -v python3)"
"$PY" -m ruff check .
"$PY" -m ruff format --check .
"$PY" -m pytest "$@"
