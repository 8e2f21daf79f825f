#!/usr/bin/env bash
# Stage 3 for one environment: estimator data -> progress estimator -> c_t for every rollout ->
# fused PPO rewards for each variant in FUSE_VARIANTS. Each step skips its work when its output exists
# with the same settings and inputs (its fingerprint), and stops when they differ.
#   PROFILE=demo bash prm/run_prm.sh alfworld
set -euo pipefail
ENV_NAME="${1:?usage: run_prm.sh ENV}"; shift
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/common.sh"
load_config "$ENV_NAME"
check_launch PRM_DEEPSPEED  # NUM_GPUS, DeepSpeed: stops now with what is missing (scripts/common.sh)
: "${EXPLORE_DIR:=$RUN_DIR/exploration}"
: "${PRM_BASE:=$RUN_DIR/sft/model}"
: "${PRM_DIR:=$RUN_DIR/estimator}"
: "${PPO_DATA_DIR:=$RUN_DIR/ppo_data}"
rollouts="$EXPLORE_DIR/episodes.jsonl"
[[ -f "$rollouts" ]] || { echo "no exploration rollouts at $rollouts: run exploration/run_explore.sh $ENV_NAME first" >&2; exit 2; }

"$PY" prm/data_org.py --rollouts "$rollouts" --output-dir "$PRM_DIR/data" \
  --val-fraction "$PRM_VAL_FRACTION" --seed "$SEED" --icl-examples "$ICL_EXAMPLES"
train_args=(--data-dir "$PRM_DIR/data" --model "$PRM_BASE" --output-dir "$PRM_DIR" --head "$PRM_HEAD"
            --backbone "$PRM_BACKBONE" --num-train-epochs "$PRM_EPOCHS" --learning-rate "$PRM_LR"
            --per-device-train-batch-size "$PRM_BATCH" --gradient-accumulation-steps "$PRM_GRAD_ACCUM"
            --max-length "$PRM_MAX_LEN" --logging-steps "$PRM_LOG_STEPS" --save-strategy no
            --report-to "$REPORT_TO" --seed "$SEED" --cross-fit-folds "$PRM_CROSS_FIT")
[[ -n "$DTYPE" ]] && train_args+=(--dtype "$DTYPE")
# shellcheck disable=SC2206
[[ -n "$PRM_EXTRA" ]] && train_args+=($PRM_EXTRA)
echo "[prm] $ENV_NAME: $PRM_HEAD head, $PRM_BACKBONE backbone on $PRM_BASE, cross-fit folds $PRM_CROSS_FIT (profile $PROFILE)"
# train.py skips what exists: with PRM_CROSS_FIT >= 2 and no matching folds/folds.json yet (e.g. switched
# on for a finished run) it trains only the K fold estimators and adds eval.json's cross_fit section.
# prm/infer.py rewrites c_t when the estimator, its folds or the mode changed (its fingerprint).
train_launch PRM_DEEPSPEED prm/train.py "${train_args[@]}"  # NUM_GPUS > 1: accelerate, --deepspeed PRM_DEEPSPEED
values="$EXPLORE_DIR/step_values.jsonl"
infer_mode=(); (( PRM_CROSS_FIT >= 2 )) || infer_mode=(--in-sample)
"$PY" prm/infer.py --estimator "$PRM_DIR/estimator" --rollouts "$rollouts" --output "$values" \
  --max-length "$PRM_MAX_LEN" --feature-cache "$PRM_DIR/features" "${infer_mode[@]}"
for variant in $FUSE_VARIANTS; do
  extra=()
  if [[ "$variant" == mc ]]; then
    mc="$EXPLORE_DIR/mc_values.jsonl"
    env_opts=(); for o in $ENV_OPTIONS; do env_opts+=(--env-option "$o"); done
    "$PY" prm/mc_values.py --rollouts "$rollouts" --model "$PRM_BASE" --k "$MC_K" \
      --icl-examples "$ICL_EXAMPLES" "${env_opts[@]}" \
      --max-steps "$MAX_STEPS" --max-new-tokens "$MAX_NEW_TOKENS" --batch-size "$BATCH_SIZE" --output "$mc" \
      ${MC_ROLLOUTS:+--num-rollouts "$MC_ROLLOUTS"}
    extra=(--mc-values "$mc")
  fi
  "$PY" prm/fuse_rewards.py --rollouts "$rollouts" --step-values "$values" --variant "$variant" \
    --alpha "$ALPHA" ${BETA:+--beta "$BETA"} --output "$PPO_DATA_DIR/$variant.jsonl" \
    --icl-examples "$ICL_EXAMPLES" "${extra[@]}"
done
