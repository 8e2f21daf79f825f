#!/usr/bin/env bash
# The whole pipeline for one environment and profile:
#   SFT -> exploration -> progress estimator + fused rewards -> PPO per variant -> merge ->
#   evaluation (SFT and every PPO model) -> report.
#   PROFILE=demo bash scripts/run_pipeline.sh [ENV]        (ENV defaults to alfworld)
# Every stage skips work whose output already exists, so a rerun resumes. Stage wall times are
# appended to $RUN_DIR/timings.tsv (stage, seconds, this run's start, PPO mode, machine): a resumed or second
# run (e.g. PPO_MODE=online) adds its rows below the first run's instead of replacing them.
set -euo pipefail
ENV_NAME="${1:-alfworld}"
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
load_config "$ENV_NAME"
check_launch SFT_DEEPSPEED PRM_DEEPSPEED  # before any stage: NUM_GPUS and DeepSpeed can run here
export PROFILE RUN_DIR
mkdir -p "$RUN_DIR"
TIMINGS="$RUN_DIR/timings.tsv"
RUN_STARTED="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
stage sft bash sft/run_sft.sh "$ENV_NAME"
stage exploration bash exploration/run_explore.sh "$ENV_NAME"
stage estimator bash prm/run_prm.sh "$ENV_NAME"
for variant in $PPO_VARIANTS; do
  stage "ppo_$variant" bash ppo/run_ppo.sh "$ENV_NAME" "$variant"
done
stage eval_sft env MODEL="$RUN_DIR/sft/model" EVAL_DIR="$RUN_DIR/eval/sft" bash eval/run_eval.sh "$ENV_NAME"
for variant in $PPO_VARIANTS; do
  ppo="$(ppo_dir "$variant")"
  stage "eval_$variant" env MODEL="$ppo/merged" EVAL_DIR="$RUN_DIR/eval/$(basename "$ppo")" \
    bash eval/run_eval.sh "$ENV_NAME"
done
stage report "$PY" eval/report.py --run-dir "$RUN_DIR"
echo "stage seconds (this run):"; grep -F "$RUN_STARTED" "$TIMINGS" | cut -f1,2
