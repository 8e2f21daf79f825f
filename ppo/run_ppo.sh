#!/usr/bin/env bash
# PPO for one environment and one reward variant, then the LoRA merge.
#   PROFILE=demo bash ppo/run_ppo.sh alfworld progress [extra ppo/train.py flags]
# offline (PPO_MODE=offline): trains on $RUN_DIR/ppo_data/<variant>.jsonl (prm/run_prm.sh writes it);
# online: fresh rollouts each iteration, rewarded with the estimator in $RUN_DIR/estimator (ROLLOUT_BACKEND=vllm:
# played by a vLLM server of the SFT model that loads the current LoRA adapter before each iteration).
# Writes $RUN_DIR/ppo_<mode>[-turn]_<variant>/{adapter,merged}; train.py and merge.py skip work that exists
# with the same settings (their fingerprints) and stop when the settings differ.
# PPO_GAE_LEVEL=token|turn (GAE per action token, the default, or per agent turn);
# PPO_STEP_WEIGHTING=auto|none|public-code (auto: the public-code variant brings its (T - t - 1) weighting).
# VARIANT may also be a critic-free advantage estimator (grpo, rloo, gigpo: spa_rl/rl/advantages.py): PPO then
# trains with --advantage VARIANT on the sparse variant's data (its outcome and grounding; no value head),
# online with PPO_GROUP_SIZE rollouts per drawn task.
# PPO_PROBE_EVERY=N (base.sh: 0, off): every N updates play PPO_PROBE_TASKS training tasks greedily and log
# their success to probe_log.jsonl, PPO's learning curve.
set -euo pipefail
ENV_NAME="${1:?usage: run_ppo.sh ENV VARIANT [ppo/train.py flags]}"
VARIANT="${2:?usage: run_ppo.sh ENV VARIANT}"; shift 2
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/common.sh"
load_config "$ENV_NAME"
check_launch  # NUM_GPUS: stops now when this machine has fewer GPUs (scripts/common.sh)
: "${PPO_BASE:=$RUN_DIR/sft/model}"
: "${PPO_DIR:=$(ppo_dir "$VARIANT")}"
if [[ " $("$PY" -c 'from spa_rl.rl.advantages import CRITIC_FREE; print(*CRITIC_FREE)') " == *" $VARIANT "* ]]; then
  ADVANTAGE="$VARIANT"; DATA_VARIANT=sparse
else
  ADVANTAGE=gae; DATA_VARIANT="$VARIANT"
fi
args=(--mode "$PPO_MODE" --model "$PPO_BASE" --output-dir "$PPO_DIR" --variant "$DATA_VARIANT"
      --advantage "$ADVANTAGE" --group-size "$PPO_GROUP_SIZE"
      --iterations "$PPO_ITERS" --rollouts-per-iteration "$PPO_ROLLOUTS" --ppo-epochs "$PPO_EPOCHS"
      --minibatch-size "$PPO_MB" --grad-accum "$PPO_ACCUM" --lr "$PPO_LR" --kl-coef "$PPO_KL"
      --kl-target "$PPO_KL_TARGET" --step-weighting "$PPO_STEP_WEIGHTING"
      --gae-level "$PPO_GAE_LEVEL" --seed "$SEED" --report-to "$REPORT_TO" --icl-examples "$ICL_EXAMPLES"
      --save-every "$PPO_SAVE_EVERY")
[[ -n "$DTYPE" ]] && args+=(--dtype "$DTYPE")
# shellcheck disable=SC2206
[[ -n "$PPO_EXTRA" ]] && args+=($PPO_EXTRA)  # more ppo/train.py flags (the paper profile: memory settings)
# The training tasks online PPO draws from and the learning-curve probe plays (PPO_PROBE_EVERY > 0).
args+=(--env "$ENV_NAME" --max-steps "$MAX_STEPS" --max-new-tokens "$MAX_NEW_TOKENS" --gen-batch-size "$BATCH_SIZE"
       --probe-every "$PPO_PROBE_EVERY" --probe-tasks "$PPO_PROBE_TASKS")
for o in $ENV_OPTIONS; do args+=(--env-option "$o"); done
[[ -n "$EXPLORE_TASK_TYPES" ]] && args+=(--task-types "$EXPLORE_TASK_TYPES")
[[ -n "$EXPLORE_TASK_IDS" ]] && args+=(--task-ids "$EXPLORE_TASK_IDS")
if [[ "$PPO_MODE" == offline ]]; then
  args+=(--data "$RUN_DIR/ppo_data/$DATA_VARIANT.jsonl")
else
  args+=(--estimator "$RUN_DIR/estimator/estimator" --temperature "$EXPLORE_TEMPERATURE")
  [[ -n "$EXPLORE_TASKS" ]] && args+=(--num-tasks "$EXPLORE_TASKS")
  # ROLLOUT_BACKEND=vllm|serve: the rollouts come from a server of PPO_BASE given the current adapter before
  # each iteration (spa_rl/rl/served_policy.py); its log goes to $PPO_DIR/rollout_server.log.
  if [[ "$ROLLOUT_BACKEND" != hf ]]; then
    args+=(--rollout-backend "$ROLLOUT_BACKEND" --vllm-start-timeout "$VLLM_START_TIMEOUT")
    if [[ "$ROLLOUT_BACKEND" == vllm ]]; then
      dt="$(vllm_dtype)"
      args+=(--vllm-python "$VLLM_PYTHON" --vllm-mem-fraction "$PPO_VLLM_MEM_FRACTION"
             "--vllm-args=--max-model-len $VLLM_MAX_MODEL_LEN ${dt:+--dtype $dt} $VLLM_ARGS")
    fi
  fi
fi
echo "[ppo] $ENV_NAME/$VARIANT ($PPO_MODE): $PPO_BASE -> $PPO_DIR (profile $PROFILE)"
train_launch - ppo/train.py "${args[@]}" "$@"  # NUM_GPUS > 1: accelerate launch, DDP
"$PY" ppo/merge.py --model "$PPO_BASE" --adapter "$PPO_DIR/adapter" --output "$PPO_DIR/merged"
