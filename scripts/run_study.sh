#!/usr/bin/env bash
# The CPU study (issue 23) for one environment: one SFT agent, one exploration, one estimator, then PPO
# per variant and seed, each model evaluated on the same games. Resumable: every stage skips or resumes
# work whose output exists, so rerun the same command after an interruption.
#   PROFILE=study bash scripts/run_study.sh [ENV] [STAGES]
# STAGES (default: all) is any of: sft eval_sft explore estimator ppo eval_ppo report
# The tables over several environments' run folders: python eval/study_report.py --run-dir A B --output DIR
# Seeds: STUDY_SEEDS (default "1 2") for the PPO variants in PPO_VARIANTS; PPO folders get _seed<N>.
set -euo pipefail
ENV_NAME="${1:-alfworld}"
STAGES="${2:-sft eval_sft explore estimator ppo eval_ppo report}"
PROFILE="${PROFILE:-study}"
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
load_config "$ENV_NAME"
export PROFILE RUN_DIR
mkdir -p "$RUN_DIR"
: "${STUDY_SEEDS:=1 2}"
TIMINGS="$RUN_DIR/timings.tsv"
RUN_STARTED="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
want() { [[ " $STAGES " == *" $1 "* ]]; }
want sft && stage sft bash sft/run_sft.sh "$ENV_NAME"
want eval_sft && stage eval_sft env MODEL="$RUN_DIR/sft/model" EVAL_DIR="$RUN_DIR/eval/sft" bash eval/run_eval.sh "$ENV_NAME"
want explore && stage exploration bash exploration/run_explore.sh "$ENV_NAME"
want estimator && stage estimator bash prm/run_prm.sh "$ENV_NAME"
for seed in $STUDY_SEEDS; do
  for variant in $PPO_VARIANTS; do
    dir="$(ppo_dir "$variant")_seed$seed"
    want ppo && stage "ppo_${variant}_seed$seed" env SEED="$seed" PPO_DIR="$dir" bash ppo/run_ppo.sh "$ENV_NAME" "$variant"
    want eval_ppo && stage "eval_${variant}_seed$seed" env MODEL="$dir/merged" EVAL_DIR="$RUN_DIR/eval/$(basename "$dir")" \
      bash eval/run_eval.sh "$ENV_NAME"
  done
done
# The study's tables (seeds, intervals, paired comparisons) go where they are committed.
want report && stage report "$PY" eval/study_report.py --run-dir "$RUN_DIR" \
  --output "${STUDY_RESULTS:-results/study/$ENV_NAME}"
