#!/usr/bin/env bash
# The test command: set up (idempotent), lint, then run the test suite. Extra arguments go to pytest,
# e.g. `bash scripts/test.sh -m "not slow"`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
# The report test screenshots its HTML in headless Chromium: Debian's package, when we may install it.
if [[ "${SPA_SKIP_BROWSER:-0}" != "1" ]] && ! command -v chromium >/dev/null 2>&1 \
   && [[ "$(id -u)" == "0" ]] && command -v apt-get >/dev/null 2>&1; then
  echo "[test] installing Debian's chromium (for tests/test_report.py)"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
PY=.venv/bin/python
[[ "${SPA_SYSTEM_PYTHON:-0}" == "1" ]] && PY="$(command -v python3)"
"$PY" -m ruff check .
"$PY" -m ruff format --check .
# One pytest-xdist worker per core (SPA_TEST_WORKERS: a number, or 0 for one process); torch's threads are
# shared out among the workers (OMP_NUM_THREADS), so that they do not oversubscribe the cores. Most of the
# suite's time is single-threaded (interpreter start-up, imports, environment resets), which the workers
# overlap.
workers="${SPA_TEST_WORKERS:-auto}"
[[ "$workers" == auto ]] && workers="$(nproc)"
xdist=()
if (( workers > 0 )); then
  export OMP_NUM_THREADS="${OMP_NUM_THREADS:-$(( $(nproc) / workers > 0 ? $(nproc) / workers : 1 ))}"
  xdist=(-n "$workers" --dist worksteal)
fi
"$PY" -m pytest "${xdist[@]}" "$@"
