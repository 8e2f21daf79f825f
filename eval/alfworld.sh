#!/usr/bin/env bash
# Evaluate MODEL on the ALFWorld splits in EVAL_SPLITS; writes $RUN_DIR/eval_<split>/{episodes.jsonl,summary.json}.
#   PROFILE=demo bash eval/alfworld.sh
#   MODEL=runs/gpu/alfworld/merged PROFILE=gpu bash eval/alfworld.sh
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/common.sh"
load_config alfworld
: "${EVAL_DIR:=$RUN_DIR/eval}"
for split in $EVAL_SPLITS; do
  args=(--env alfworld --split "$split" --model "$MODEL" --backend "$BACKEND"
        --temperature "$TEMPERATURE" --max-steps "$MAX_STEPS" --max-new-tokens "$MAX_NEW_TOKENS"
        --batch-size "$BATCH_SIZE" --output-dir "${EVAL_DIR}_$split")
  [[ -n "${NUM_TASKS:-}" ]] && args+=(--num-tasks "$NUM_TASKS")
  [[ -n "${API_BASE:-}" ]] && args+=(--api-base "$API_BASE")
  [[ -n "${DTYPE:-}" ]] && args+=(--dtype "$DTYPE")
  echo "[eval] alfworld/$split: $MODEL (profile $PROFILE)"
  "$PY" -m eval_agent.evaluate "${args[@]}"
done
