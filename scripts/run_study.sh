#!/usr/bin/env bash
# The CPU study (issue 23) for one environment: one SFT agent, one exploration, one estimator, then PPO
# per variant and seed, each model evaluated on the same games. Resumable: every stage skips or resumes
# work whose output exists, so rerun the same command after an interruption.
#   PROFILE=study bash scripts/run_study.sh [ENV] [STAGES]
# STAGES (default: all) is any of: sft eval_sft explore estimator ppo eval_ppo report
# The tables over several environments' run folders: python eval/study_report.py --run-dir A B --output DIR
# Seeds: STUDY_SEEDS (default "1 2") for the PPO variants in PPO_VARIANTS; PPO folders get _seed<N>.
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
for seed in $STUDY_SEEDS; do
  for variant in $PPO_VARIANTS; do
    dir="$(ppo_dir "$variant")_seed$seed"
    eval_dir="$RUN_DIR/eval/$(basename "$dir")"
    if evaluated "$eval_dir" && [[ ! -d "$dir/merged" ]]; then  # restored results of a model trained elsewhere
      echo "[study] $(basename "$dir"): evaluated on every split (its weights are not here); not trained again"
      continue
    fi
    want ppo && mirrored_stage "ppo_${variant}_seed$seed" env SEED="$seed" PPO_DIR="$dir" \
      bash ppo/run_ppo.sh "$ENV_NAME" "$variant"
    want eval_ppo && mirrored_stage "eval_${variant}_seed$seed" env MODEL="$dir/merged" EVAL_DIR="$eval_dir" \
      bash eval/run_eval.sh "$ENV_NAME"
  done
done
# The study's tables (seeds, intervals, paired comparisons) go where they are committed.
if want report; then  # (an if: a last "want X && ..." would make the script's status 1 without X)
  stage report "$PY" eval/study_report.py --run-dir "$RUN_DIR" --output "${STUDY_RESULTS:-results/study/$ENV_NAME}"
fi
