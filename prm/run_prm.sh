#!/usr/bin/env bash
# Stage 3 for one environment: estimator data -> progress estimator -> c_t for every rollout ->
# fused PPO rewards for each variant in FUSE_VARIANTS. Each step is skipped when its output exists.
#   bash prm/run_prm.sh alfworld        (or prm/<env>.sh)
set -euo pipefail
ENV_NAME="${1:?usage: run_prm.sh ENV}"; shift
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/common.sh"
load_config "$ENV_NAME"
: "${EXPLORE_DIR:=$RUN_DIR/exploration}"
: "${PRM_BASE:=$RUN_DIR/sft/model}"
: "${PRM_DIR:=$RUN_DIR/estimator}"
: "${PPO_DATA_DIR:=$RUN_DIR/ppo_data}"
: "${NUM_GPUS:=1}"
rollouts="$EXPLORE_DIR/episodes.jsonl"
[[ -f "$rollouts" ]] || { echo "no exploration rollouts at $rollouts: run exploration/$ENV_NAME.sh first" >&2; exit 2; }

if [[ ! -f "$PRM_DIR/data/train.jsonl" ]]; then
  "$PY" prm/data_org.py --rollouts "$rollouts" --output-dir "$PRM_DIR/data" \
    --val-fraction "$PRM_VAL_FRACTION" --seed "${SEED:-0}"
fi
train_args=(--data_dir "$PRM_DIR/data" --model "$PRM_BASE" --output_dir "$PRM_DIR" --head "$PRM_HEAD"
            --backbone "$PRM_BACKBONE" --num_train_epochs "$PRM_EPOCHS" --learning_rate "$PRM_LR"
            --per_device_train_batch_size "$PRM_BATCH" --gradient_accumulation_steps "$PRM_GRAD_ACCUM"
            --max_length "$PRM_MAX_LEN" --logging_steps "${PRM_LOG_STEPS:-1}" --save_strategy no
            --report_to none --seed "${SEED:-42}")
[[ -n "${PRM_DEEPSPEED:-}" ]] && train_args+=(--deepspeed "$PRM_DEEPSPEED")
# shellcheck disable=SC2206
[[ -n "${PRM_EXTRA:-}" ]] && train_args+=($PRM_EXTRA)
echo "[prm] $ENV_NAME: $PRM_HEAD head, $PRM_BACKBONE backbone on $PRM_BASE (profile $PROFILE)"
if (( NUM_GPUS > 1 )); then
  "$PY" -m accelerate.commands.launch --num_processes "$NUM_GPUS" prm/train.py "${train_args[@]}"
else
  "$PY" prm/train.py "${train_args[@]}"
fi
values="$EXPLORE_DIR/step_values.jsonl"
if [[ ! -f "$values" || "$values" -ot "$PRM_DIR/estimator/head.safetensors" ]]; then
  "$PY" prm/infer.py --estimator "$PRM_DIR/estimator" --rollouts "$rollouts" --output "$values" \
    --max-length "$PRM_MAX_LEN"
fi
for variant in $FUSE_VARIANTS; do
  extra=()
  if [[ "$variant" == mc ]]; then
    mc="$EXPLORE_DIR/mc_values.jsonl"
    [[ -f "$mc" ]] || "$PY" prm/mc_values.py --rollouts "$rollouts" --model "$PRM_BASE" --k "${MC_K:-4}" \
      --max-steps "$MAX_STEPS" --max-new-tokens "$MAX_NEW_TOKENS" --batch-size "$BATCH_SIZE" --output "$mc" \
      ${MC_ROLLOUTS:+--num-rollouts "$MC_ROLLOUTS"}
    extra=(--mc-values "$mc")
  fi
  "$PY" prm/fuse_rewards.py --rollouts "$rollouts" --step-values "$values" --variant "$variant" \
    --alpha "${ALPHA:-1.0}" ${BETA:+--beta "$BETA"} --output "$PPO_DATA_DIR/$variant.jsonl" "${extra[@]}"
done
