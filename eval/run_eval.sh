#!/usr/bin/env bash
# Evaluate MODEL on the splits in EVAL_SPLITS of one environment; writes
# ${EVAL_DIR:-$RUN_DIR/eval}_<split>/{episodes.jsonl,summary.json} (a rerun resumes).
#   bash eval/run_eval.sh alfworld       (or eval/<env>.sh)
set -euo pipefail
ENV_NAME="${1:?usage: run_eval.sh ENV [eval_agent.evaluate flags]}"; shift
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/common.sh"
load_config "$ENV_NAME"
: "${EVAL_DIR:=$RUN_DIR/eval}"
for split in $EVAL_SPLITS; do
  args=(--env "$ENV_NAME" --split "$split" --model "$MODEL" --backend "$BACKEND"
        --temperature "$TEMPERATURE" --max-steps "$MAX_STEPS" --max-new-tokens "$MAX_NEW_TOKENS"
        --batch-size "$BATCH_SIZE" --output-dir "${EVAL_DIR}_$split" --icl-examples "$ICL_EXAMPLES")
  [[ -n "${NUM_TASKS:-}" ]] && args+=(--num-tasks "$NUM_TASKS")
  [[ -n "${EVAL_TASK_TYPES:-}" ]] && args+=(--task-types "$EVAL_TASK_TYPES")
  [[ -n "${API_BASE:-}" ]] && args+=(--api-base "$API_BASE")
  [[ -n "${DTYPE:-}" ]] && args+=(--dtype "$DTYPE")
  echo "[eval] $ENV_NAME/$split: $MODEL (profile $PROFILE)"
  "$PY" -m eval_agent.evaluate "${args[@]}" "$@"
done
