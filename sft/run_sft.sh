#!/usr/bin/env bash
# SFT for one environment: build the expert file if missing, then fine-tune BASE_MODEL on it.
#   PROFILE=demo bash sft/run_sft.sh alfworld [extra sft/train.py flags]
# Reads the configuration (scripts/common.sh: command line > scripts/configs/<env>.sh > profile > base);
# writes $RUN_DIR/sft/model.
# ICL_EXAMPLES (1: the paper's prompt, 0: no in-context example) picks the expert file:
# data/sft/<env>_sft.json for 1, data/sft/<env>_sft_icl0.json for 0 (built when missing).
# Several GPUs: NUM_GPUS=4 (accelerate launch with scripts/accelerate/ddp.yaml, DeepSpeed config SFT_DEEPSPEED).
set -euo pipefail
ENV_NAME="${1:?usage: run_sft.sh ENV [sft/train.py flags]}"; shift
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/common.sh"
load_config "$ENV_NAME"
check_launch SFT_DEEPSPEED  # NUM_GPUS, DeepSpeed: stops now with what is missing (scripts/common.sh)
: "${SFT_DATA:=data/sft/${ENV_NAME}_sft$([[ "$ICL_EXAMPLES" == 1 ]] || echo "_icl$ICL_EXAMPLES").json}"
: "${SFT_DIR:=$RUN_DIR/sft}"
if [[ ! -f "$SFT_DATA" ]]; then
  echo "[sft] building expert data $SFT_DATA"
  "$PY" sft/build_expert_data.py --env "$ENV_NAME" --output "$SFT_DATA" --icl-examples "$ICL_EXAMPLES"
fi
args=(--data "$SFT_DATA" --model "$BASE_MODEL" --output-dir "$SFT_DIR"
      --num-train-epochs "$SFT_EPOCHS" --learning-rate "$SFT_LR" --warmup-steps "$SFT_WARMUP"
      --lr-scheduler-type cosine --per-device-train-batch-size "$SFT_BATCH"
      --gradient-accumulation-steps "$SFT_GRAD_ACCUM" --max-length "$SFT_MAX_LEN"
      --logging-steps 1 --save-strategy steps --save-steps "$SFT_SAVE_STEPS" --save-total-limit 1
      --report-to "$REPORT_TO" --seed "$SEED" --icl-examples "$ICL_EXAMPLES")
[[ -n "$SFT_NUM_TRAJ" ]] && args+=(--num-trajectories "$SFT_NUM_TRAJ")
[[ -n "$SFT_TASK_TYPES" ]] && args+=(--task-types "$SFT_TASK_TYPES")
[[ -n "$DTYPE" ]] && args+=(--dtype "$DTYPE")   # auto | bf16 | fp32 (default auto: by hardware)
# shellcheck disable=SC2206
[[ -n "$SFT_EXTRA" ]] && args+=($SFT_EXTRA)
echo "[sft] $ENV_NAME: $BASE_MODEL + $SFT_DATA (ICL_EXAMPLES=$ICL_EXAMPLES) -> $SFT_DIR/model (profile $PROFILE)"
train_launch SFT_DEEPSPEED sft/train.py "${args[@]}" "$@"  # NUM_GPUS > 1: accelerate, --deepspeed SFT_DEEPSPEED
