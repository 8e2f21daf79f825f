#!/usr/bin/env bash
# Evaluate MODEL on the splits in EVAL_SPLITS of one environment; writes
# ${EVAL_DIR:-$RUN_DIR/eval}_<split>/{episodes.jsonl,summary.json} (a rerun resumes).
#   PROFILE=demo bash eval/run_eval.sh alfworld                      (the pipeline's SFT model)
#   MODEL=runs/gpu/webshop/ppo_offline_progress/merged PROFILE=gpu bash eval/run_eval.sh webshop
#   ROLLOUT_BACKEND=vllm PROFILE=demo bash eval/run_eval.sh alfworld    (a vLLM server for MODEL, started and stopped here)
# With HELDOUT_TASKS > 0 the split "heldout" follows EVAL_SPLITS: HELDOUT_TASKS training games (of
# EVAL_TASK_TYPES) drawn with HELDOUT_SEED from those not listed in HELDOUT_EXCLUDE (default: the SFT
# model's task_ids.txt, the games it was trained on): games no stage has touched when exploration and
# online PPO draw from the SFT games (EXPLORE_TASK_IDS).
set -euo pipefail
ENV_NAME="${1:?usage: run_eval.sh ENV [spa_rl.agent.evaluate flags]}"; shift
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/common.sh"
load_config "$ENV_NAME"
: "${EVAL_DIR:=$RUN_DIR/eval}"
# ROLLOUT_BACKEND=vllm|serve: this script runs again inside a server for MODEL, with BACKEND=openai and API_BASE
# (scripts/common.sh: with_rollout_server); one server for every split.
_log="${EVAL_DIR#"$RUN_DIR"/}"; with_rollout_server "$MODEL" "server_${_log//\//_}" "$REPO/eval/run_eval.sh" "$ENV_NAME" "$@"
splits="$EVAL_SPLITS"; (( HELDOUT_TASKS > 0 )) && splits+=" heldout"
for split in $splits; do
  real="$split"; [[ "$split" == heldout ]] && real=train
  args=(--env "$ENV_NAME" --split "$real" --model "$MODEL" --backend "$BACKEND"
        --temperature "$TEMPERATURE" --max-steps "$MAX_STEPS" --max-new-tokens "$MAX_NEW_TOKENS"
        --batch-size "$BATCH_SIZE" --output-dir "${EVAL_DIR}_$split" --icl-examples "$ICL_EXAMPLES")
  if [[ "$split" == heldout ]]; then
    exclude="${HELDOUT_EXCLUDE:-$RUN_DIR/sft/model/task_ids.txt}"
    [[ -f "$exclude" ]] || { echo "[eval] heldout: no task-id file $exclude (HELDOUT_EXCLUDE)" >&2; exit 2; }
    args+=(--exclude-task-ids "$exclude" --num-tasks "$HELDOUT_TASKS"
           --task-sample random --task-seed "$HELDOUT_SEED")
  elif [[ -n "$NUM_TASKS" ]]; then
    args+=(--num-tasks "$NUM_TASKS")
  fi
  [[ -n "$EVAL_TASK_TYPES" ]] && args+=(--task-types "$EVAL_TASK_TYPES")
  for o in $ENV_OPTIONS; do args+=(--env-option "$o"); done
  [[ -n "$API_BASE" ]] && args+=(--api-base "$API_BASE")
  [[ -n "$DTYPE" ]] && args+=(--dtype "$DTYPE")
  echo "[eval] $ENV_NAME/$split: $MODEL (profile $PROFILE)"
  "$PY" -m spa_rl.agent.evaluate "${args[@]}" "$@"
done
