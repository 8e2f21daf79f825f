#!/usr/bin/env bash
# Exploration and evaluation through the stage scripts, once per rollout backend, timed: what
# ROLLOUT_BACKEND=vllm costs or saves against the in-process hf backend on this machine.
#   MODEL=runs/demo/alfworld/sft/model bash bench/bench_rollout_backends.sh [OUT_DIR]   (default runs/bench_rollout_backends)
# Settings (environment): BACKENDS ("hf vllm"), ENV_NAME (alfworld), PROFILE (demo), EXPLORE_TASKS (2),
# EXPLORE_M (2), NUM_TASKS (2 evaluation games), MAX_STEPS_CAP (15), VLLM_PYTHON (a Python with vLLM;
# `bash scripts/serve_vllm.sh --install-only` makes .venv-vllm). Each backend plays in its own run folder,
# runs/bench_rollout_backends/<backend> (replaced each time); writes OUT_DIR/timings.tsv (backend, stage,
# wall seconds, episodes, successes, generated tokens/s) and OUT_DIR/settings.txt (command and settings).
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT_DIR="${1:-$REPO/runs/bench_rollout_backends}"
: "${MODEL:?set MODEL to a trained model folder (e.g. runs/demo/alfworld/sft/model)}"
: "${BACKENDS:=hf vllm}" "${ENV_NAME:=alfworld}" "${PROFILE:=demo}"
export PROFILE EXPLORE_TASKS="${EXPLORE_TASKS:-2}" EXPLORE_M="${EXPLORE_M:-2}" NUM_TASKS="${NUM_TASKS:-2}" \
  MAX_STEPS_CAP="${MAX_STEPS_CAP:-15}" EVAL_SPLITS_CAP="${EVAL_SPLITS_CAP:-1}" EXPLORE_MODEL="$MODEL" MODEL
mkdir -p "$OUT_DIR"
{
  echo "command: MODEL=$MODEL BACKENDS=\"$BACKENDS\" bash bench/bench_rollout_backends.sh $OUT_DIR"
  echo "date: $(date -u +%FT%TZ)  host: $(nproc --all) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "git: $(git -C "$REPO" rev-parse --short HEAD)$(git -C "$REPO" diff --quiet || echo '+changes')"
  [[ " $BACKENDS " == *" vllm "* ]] && echo "vllm: $("${VLLM_PYTHON:-$REPO/.venv-vllm/bin/python}" -c \
    'import vllm; print(vllm.__version__)' 2>/dev/null | tail -1)"
  env | grep -E '^(PROFILE|EXPLORE_|EVAL_|NUM_TASKS|MAX_STEPS_CAP|ICL_EXAMPLES|OMP_NUM_THREADS|VLLM_|DTYPE)' | sort
} > "$OUT_DIR/settings.txt"
printf 'backend\tstage\tseconds\tepisodes\tsuccesses\tgen_tok_per_s\n' > "$OUT_DIR/timings.tsv"
for backend in $BACKENDS; do
  run="$REPO/runs/bench_rollout_backends/$backend"
  rm -rf "$run"
  for stage in explore eval; do
    start=$(date +%s.%N)
    if [[ $stage == explore ]]; then
      RUN_DIR="$run" ROLLOUT_BACKEND="$backend" bash "$REPO/exploration/run_explore.sh" "$ENV_NAME"
      summary="$run/exploration/summary.json"
    else
      RUN_DIR="$run" ROLLOUT_BACKEND="$backend" bash "$REPO/eval/run_eval.sh" "$ENV_NAME"
      summary="$(ls "$run"/eval_*/summary.json | head -1)"
    fi
    secs=$(python3 -c "import time; print(time.time() - $start)")
    "$REPO/.venv/bin/python" - "$summary" "$backend" "$stage" "$secs" >> "$OUT_DIR/timings.tsv" <<'EOF'
import json, sys
path, backend, stage, secs = sys.argv[1:]
s = json.load(open(path))
m, run = s["metrics"], s.get("this_run") or {}
tps = run.get("generated_tokens_per_second", "")
print(f"{backend}\t{stage}\t{float(secs):.1f}\t{m['n']}\t{round(m['success_rate'] * m['n'])}\t{tps}")
EOF
  done
done
column -t -s $'\t' "$OUT_DIR/timings.tsv"
