#!/usr/bin/env bash
# SFT for one environment: build the expert file if missing, then fine-tune BASE_MODEL on it.
#   bash sft/run_sft.sh alfworld            (usually through sft/<env>.sh)
# Reads scripts/configs/<env>.sh and scripts/profiles/$PROFILE.sh; writes $RUN_DIR/sft/model.
# ICL_EXAMPLES (1: the paper's prompt, 0: no in-context example) picks the expert file:
# data/sft/<env>_sft.json for 1, data/sft/<env>_sft_icl0.json for 0 (built when missing).
# Several GPUs: NUM_GPUS=4 (accelerate launch, DeepSpeed config SFT_DEEPSPEED).
set -euo pipefail
ENV_NAME="${1:?usage: run_sft.sh ENV [sft/train.py flags]}"; shift
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/common.sh"
load_config "$ENV_NAME"
: "${SFT_DATA:=data/sft/${ENV_NAME}_sft$([[ "$ICL_EXAMPLES" == 1 ]] || echo "_icl$ICL_EXAMPLES").json}"
: "${SFT_DIR:=$RUN_DIR/sft}"
: "${NUM_GPUS:=1}"
if [[ ! -f "$SFT_DATA" ]]; then
  echo "[sft] building expert data $SFT_DATA"
  "$PY" sft/build_expert_data.py --env "$ENV_NAME" --output "$SFT_DATA" --icl-examples "$ICL_EXAMPLES"
fi
args=(--data "$SFT_DATA" --model "$BASE_MODEL" --output_dir "$SFT_DIR"
      --num_train_epochs "$SFT_EPOCHS" --learning_rate "$SFT_LR" --warmup_steps "$SFT_WARMUP"
      --lr_scheduler_type cosine --per_device_train_batch_size "$SFT_BATCH"
      --gradient_accumulation_steps "$SFT_GRAD_ACCUM" --max_length "$SFT_MAX_LEN"
      --logging_steps 1 --save_strategy steps --save_steps "${SFT_SAVE_STEPS:-50}" --save_total_limit 1
      --report_to none --seed "${SEED:-42}" --icl_examples "$ICL_EXAMPLES")
[[ -n "${SFT_NUM_TRAJ:-}" ]] && args+=(--num_trajectories "$SFT_NUM_TRAJ")
[[ -n "${SFT_TASK_TYPES:-}" ]] && args+=(--task_types "$SFT_TASK_TYPES")
[[ -n "${SFT_DEEPSPEED:-}" ]] && args+=(--deepspeed "$SFT_DEEPSPEED")
[[ -n "${DTYPE:-}" ]] && args+=(--dtype "$DTYPE")   # auto | bf16 | fp32 (default auto: by hardware)
# shellcheck disable=SC2206
[[ -n "${SFT_EXTRA:-}" ]] && args+=($SFT_EXTRA)
echo "[sft] $ENV_NAME: $BASE_MODEL + $SFT_DATA (ICL_EXAMPLES=$ICL_EXAMPLES) -> $SFT_DIR/model (profile $PROFILE)"
if (( NUM_GPUS > 1 )); then
  "$PY" -m accelerate.commands.launch --num_processes "$NUM_GPUS" sft/train.py "${args[@]}" "$@"
else
  "$PY" sft/train.py "${args[@]}" "$@"
fi
