#!/usr/bin/env bash
# The CPU study (issue 23) for one environment: one SFT agent, one exploration, one estimator, then PPO
# per variant and seed, each model evaluated on the same games. Resumable: every stage skips or resumes
# work whose output exists, so rerun the same command after an interruption.
#   PROFILE=study bash scripts/run_study.sh [ENV] [STAGES]
# STAGES (default: all) is any of: sft eval_sft explore estimator ppo eval_ppo report
# The tables over several environments' run folders: python eval/study_report.py --run-dir A B --output DIR
# Seeds: STUDY_SEEDS (default "1 2") for the PPO variants in PPO_VARIANTS; PPO folders get _seed<N>.
# STUDY_JOBS=N trains and evaluates N PPO models side by side, each with 1/N of the cores (logs in
# RUN_DIR/study_job<k>.log): on 2 CPU cores two single-threaded jobs did 1.1-1.3x the work of one PPO job
# and 1.4-1.7x that of one rollout job (bench/bench_parallel_jobs.sh, results/parallel_jobs_cpu/).
# Across machines: after every stage the run folder's small files (results, logs, fingerprints, the estimator's
# head; no weights) are mirrored into STUDY_MIRROR (default results/study/ENV/run; empty: off), which is meant
# to be committed. On a new machine the same command first restores the mirror into RUN_DIR, then trains the
# models again; a model whose evaluation is complete is not trained again (tools/study_mirror.py). Before a long
# stage is cut off (the end of a session), a save by hand keeps its progress: episodes played so far resume.
#   python tools/study_mirror.py --mode save --run-dir RUN_DIR --mirror results/study/ENV/run
set -euo pipefail
ENV_NAME="${1:-alfworld}"
STAGES="${2:-sft eval_sft explore estimator ppo eval_ppo report}"
PROFILE="${PROFILE:-study}"
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
load_config "$ENV_NAME"
export PROFILE RUN_DIR
mkdir -p "$RUN_DIR"
: "${STUDY_SEEDS:=1 2}"
: "${STUDY_MIRROR=results/study/$ENV_NAME/run}"
: "${STUDY_JOBS:=1}"
TIMINGS="$RUN_DIR/timings.tsv"
RUN_STARTED="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
want() { [[ " $STAGES " == *" $1 "* ]]; }
mirrored_stage() {  # stage NAME command..., then the mirror (the last in an && list: set -e applies within)
  stage "$@"
  [[ -z "$STUDY_MIRROR" ]] || "$PY" tools/study_mirror.py --mode save --run-dir "$RUN_DIR" --mirror "$STUDY_MIRROR"
}
evaluated() {  # evaluated EVAL_DIR: every evaluation split has its summary (written when the split is done)
  local split
  for split in $EVAL_SPLITS $( (( HELDOUT_TASKS > 0 )) && echo heldout); do
    [[ -f "${1}_$split/summary.json" ]] || return 1
  done
}
if [[ -n "$STUDY_MIRROR" && -f "$STUDY_MIRROR/manifest.json" ]]; then
  "$PY" tools/study_mirror.py --mode restore --run-dir "$RUN_DIR" --mirror "$STUDY_MIRROR"
fi
want sft && mirrored_stage sft bash sft/run_sft.sh "$ENV_NAME"
want eval_sft && mirrored_stage eval_sft env MODEL="$RUN_DIR/sft/model" EVAL_DIR="$RUN_DIR/eval/sft" \
  bash eval/run_eval.sh "$ENV_NAME"
want explore && mirrored_stage exploration bash exploration/run_explore.sh "$ENV_NAME"
want estimator && mirrored_stage estimator bash prm/run_prm.sh "$ENV_NAME"
ppo_model() {  # ppo_model VARIANT SEED: train one PPO model, then evaluate it
  local dir eval_dir
  dir="$(ppo_dir "$1")_seed$2"
  eval_dir="$RUN_DIR/eval/$(basename "$dir")"
  if evaluated "$eval_dir" && [[ ! -d "$dir/merged" ]]; then  # restored results of a model trained elsewhere
    echo "[study] $(basename "$dir"): evaluated on every split (its weights are not here); not trained again"
    return 0
  fi
  if want ppo; then
    mirrored_stage "ppo_$1_seed$2" env SEED="$2" PPO_DIR="$dir" bash ppo/run_ppo.sh "$ENV_NAME" "$1"
  fi
  if want eval_ppo; then
    mirrored_stage "eval_$1_seed$2" env MODEL="$dir/merged" EVAL_DIR="$eval_dir" bash eval/run_eval.sh "$ENV_NAME"
  fi
}
models=()  # "VARIANT SEED", every method for the first seed before the next seed
for seed in $STUDY_SEEDS; do
  for variant in $PPO_VARIANTS; do models+=("$variant $seed"); done
done
if (( STUDY_JOBS <= 1 )); then
  for m in "${models[@]}"; do ppo_model $m; done
else
  # STUDY_JOBS models side by side, each with an equal share of the cores: job k takes models k, k+N, ...
  # Each job's output goes to its log; a failed job does not stop the others, and the study fails after.
  threads=$(( $(nproc) / STUDY_JOBS > 0 ? $(nproc) / STUDY_JOBS : 1 ))
  pids=()
  for (( job = 0; job < STUDY_JOBS; job++ )); do
    log="$RUN_DIR/study_job$job.log"
    echo "[study] job $job (OMP_NUM_THREADS=$threads): $(for (( i = job; i < ${#models[@]}; i += STUDY_JOBS )); do
      printf '%s; ' "${models[i]}"; done)log $log"
    (
      export OMP_NUM_THREADS="$threads" TIMINGS_NOTE="one of $STUDY_JOBS study jobs side by side"
      for (( i = job; i < ${#models[@]}; i += STUDY_JOBS )); do ppo_model ${models[i]}; done
    ) >> "$log" 2>&1 &
    pids+=($!)
  done
  failed=0
  for pid in "${pids[@]}"; do wait "$pid" || failed=$((failed + 1)); done
  if (( failed )); then
    echo "[study] $failed of $STUDY_JOBS jobs failed: see $RUN_DIR/study_job*.log" >&2
    exit 1
  fi
fi
# The study's tables (seeds, intervals, paired comparisons) go where they are committed.
if want report; then  # (an if: a last "want X && ..." would make the script's status 1 without X)
  stage report "$PY" eval/study_report.py --run-dir "$RUN_DIR" --output "${STUDY_RESULTS:-results/study/$ENV_NAME}"
fi
