#!/usr/bin/env bash
# Exploration for one environment: the SFT agent plays EXPLORE_TASKS training tasks EXPLORE_M times.
#   PROFILE=demo bash exploration/run_explore.sh alfworld [extra exploration/explore.py flags]
# Writes $RUN_DIR/exploration/{episodes.jsonl,summary.json}; a rerun resumes.
set -euo pipefail
ENV_NAME="${1:?usage: run_explore.sh ENV [flags]}"; shift
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/common.sh"
load_config "$ENV_NAME"
: "${EXPLORE_MODEL:=$RUN_DIR/sft/model}"
: "${EXPLORE_DIR:=$RUN_DIR/exploration}"
# ROLLOUT_BACKEND=vllm|serve: this script runs again inside a server for EXPLORE_MODEL (scripts/common.sh).
with_rollout_server "$EXPLORE_MODEL" server_exploration "$REPO/exploration/run_explore.sh" "$ENV_NAME" "$@"
args=(--env "$ENV_NAME" --split "$EXPLORE_SPLIT" --model "$EXPLORE_MODEL" --backend "$BACKEND"
      --n-rollouts "$EXPLORE_M" --temperature "$EXPLORE_TEMPERATURE" --task-sample random
      --task-seed "$SEED" --seed "$SEED" --max-steps "$MAX_STEPS" --max-new-tokens "$MAX_NEW_TOKENS"
      --batch-size "$EXPLORE_BATCH" --output-dir "$EXPLORE_DIR" --icl-examples "$ICL_EXAMPLES")
[[ -n "$EXPLORE_TASKS" ]] && args+=(--num-tasks "$EXPLORE_TASKS")
[[ -n "$EXPLORE_TASK_TYPES" ]] && args+=(--task-types "$EXPLORE_TASK_TYPES")
[[ -n "$EXPLORE_TASK_IDS" ]] && args+=(--task-ids "$EXPLORE_TASK_IDS")  # e.g. the SFT games only
for o in $ENV_OPTIONS; do args+=(--env-option "$o"); done
[[ -n "$API_BASE" ]] && args+=(--api-base "$API_BASE")
[[ -n "$DTYPE" ]] && args+=(--dtype "$DTYPE")
echo "[explore] $ENV_NAME: $EXPLORE_MODEL, ${EXPLORE_TASKS:-all} tasks x $EXPLORE_M (profile $PROFILE)"
"$PY" exploration/explore.py "${args[@]}" "$@"
