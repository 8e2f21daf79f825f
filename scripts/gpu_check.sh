#!/usr/bin/env bash
# The GPU check: the whole pipeline on ALFWorld with SmolLM2-135M-Instruct on one GPU, sized to finish within
# 10 minutes on an H100/H200: SFT (the pick-type expert games) -> exploration -> progress estimator -> PPO
# (progress and sparse) -> merge -> evaluation (the 24 unseen pick games), then per-stage seconds, tokens/s,
# peak GPU memory and the results table (also written to $OUT/gpu_check.md where $OUT is set).
#
#   bash scripts/gpu_check.sh prepare       # here, with PyPI: build .gpu_check/ (git-ignored), what the
#                                           # GPU machine lacks (tools/gpu_check_bundle.py)
#   bash scripts/gpu_check.sh               # on the GPU machine: install from .gpu_check/, run, report
#   GPU_CHECK_SMALL=1 bash scripts/gpu_check.sh    # a dry run with tiny sizes (minutes on a CPU)
#
# The GPU machine (the device tool) has torch, transformers, peft and accelerate, but no network, no ALFWorld
# (alfworld, textworld, fast_downward, ...), no data and no model, and a call carries at most 64 MiB (the
# working tree, ~5 MiB, included). The model (94 MiB as the Q4_1 GGUF that tools/prepare_models.py converts)
# cannot travel in one call, so the bundle has two parts, carried by two calls in a row: the machine stays warm
# for 30 s after a call and keeps the ignored paths the next call does not name.
#   1. run(command="true", carry=[".gpu_check/part1"])                        (~52 MiB: the GGUF's first half)
#   2. at once: run(command="bash scripts/gpu_check.sh", carry=[".gpu_check/part2"], timeout_s=600)
#                                                        (~47 MiB: the rest, wheels, the ALFWorld subset)
# A missing piece is named with what to carry. Without .gpu_check/part2, a full set-up's
# models/smollm2-135m-instruct and data/alfworld are used (GPU_CHECK_MODEL=DIR: another model folder).
# Sizes: every variable of scripts/profiles/base.sh may be set on the command line (they win); the defaults
# below are this check's. GPU_CHECK_WORK (default /tmp/spa_gpu_check) holds the run; GPU_CHECK_BUDGET_S
# (default 600) is the time after which the check warns that it ran over.
set -euo pipefail
# All of it in one function, read whole before it runs: editing this file during a run cannot change that run.
main() {
cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO="$PWD"
GC="${GPU_CHECK_DIR:-$REPO/.gpu_check}"
MODE="${1:-run}"
if [[ -x "${SPA_VENV:-$REPO/.venv}/bin/python" && "${SPA_SYSTEM_PYTHON:-0}" != 1 ]]; then
  PYTHON="${SPA_VENV:-$REPO/.venv}/bin/python"
else
  PYTHON="$(command -v python3)"; export SPA_SYSTEM_PYTHON=1   # the stage scripts take the same Python
fi
case "$MODE" in
  prepare) shift; exec "$PYTHON" tools/gpu_check_bundle.py --out "$GC" "$@" ;;
  run) ;;
  *) echo "usage: bash scripts/gpu_check.sh [prepare [flags] | run]" >&2; exit 2 ;;
esac
W="${GPU_CHECK_WORK:-/tmp/spa_gpu_check}"
BUDGET="${GPU_CHECK_BUDGET_S:-600}"
T_START=$(date +%s)
mkdir -p "$W"
missing() {  # missing WHAT: stop, naming what is missing and how to bring it
  echo "[gpu_check] MISSING: $1" >&2
  echo "[gpu_check] build the bundle here with 'bash scripts/gpu_check.sh prepare', then carry it in two calls in" \
       "a row: run(command=\"true\", carry=[\".gpu_check/part1\"]); run(command=\"bash scripts/gpu_check.sh\"," \
       "carry=[\".gpu_check/part2\"]) (see the head of scripts/gpu_check.sh)" >&2
  exit 3
}
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"   # the project, without installing it
echo "[gpu_check] python $("$PYTHON" -c 'import sys, torch, transformers; print(sys.version.split()[0], "torch", torch.__version__, "transformers", transformers.__version__, "cuda", torch.cuda.is_available())')"

# --- 1. packages the machine lacks (ALFWorld's; gguf to convert the model), from the carried wheels
# The bundle's model and data where it is here (the check is defined by its subset), else a set-up's.
MODEL_DIR="${GPU_CHECK_MODEL:-}"
if [[ -z "$MODEL_DIR" && ! -f "$GC/part2/MANIFEST.json" && -f "$REPO/models/smollm2-135m-instruct/model.safetensors" ]]; then
  MODEL_DIR="models/smollm2-135m-instruct"
fi
need="alfworld, textworld, fast_downward, tatsu"; [[ -n "$MODEL_DIR" ]] || need+=", gguf"
if [[ "${GPU_CHECK_INSTALL_WHEELS:-0}" == 1 ]] || ! "$PYTHON" -c "import $need" 2>/dev/null; then
  wheels=("$GC"/part2/wheels/*.whl)
  [[ -e "${wheels[0]}" ]] || missing "the ALFWorld packages (alfworld, textworld, fast_downward) and their wheels in $GC/part2/wheels"
  echo "[gpu_check] installing ${#wheels[@]} wheels into $W/site"
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$W/site" "${wheels[@]}"
  export PYTHONPATH="$W/site:$PYTHONPATH"
  "$PYTHON" -c "import $need" || missing "a dependency of the carried wheels (the error above)"
fi

# --- 2. data: the carried ALFWorld subset, else a full set-up's data/
if [[ -f "$GC/part2/data.tar.xz" ]]; then
  if [[ ! -f "$W/data/alfworld/.ready" ]]; then
    rm -rf "$W/data"; mkdir -p "$W/data"
    "$PYTHON" -c "import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2], filter='data')" "$GC/part2/data.tar.xz" "$W/data"
  fi
  export SPA_DATA_DIR="$W/data"
  [[ -f "$W/data/sft/alfworld_sft_icl0.json" ]] && export SFT_DATA="${SFT_DATA:-$W/data/sft/alfworld_sft_icl0.json}"
elif [[ ! -f "${SPA_DATA_DIR:-$REPO/data}/alfworld/.ready" ]]; then
  missing "the ALFWorld data ($GC/part2/data.tar.xz, or a set-up's data/alfworld)"
fi
echo "[gpu_check] data: ${SPA_DATA_DIR:-$REPO/data}"

# --- 3. the model: a set-up's folder, else converted from the GGUF file carried in two parts
if [[ -z "$MODEL_DIR" ]]; then
  MODEL_DIR="$W/models/smollm2-135m-instruct"
  if [[ ! -f "$MODEL_DIR/model.safetensors" ]]; then
    [[ -f "$GC/part2/MANIFEST.json" ]] || missing "$GC/part2 (the GGUF's second part and MANIFEST.json)"
    [[ -f "$GC/part1/model.gguf.00" ]] || missing "$GC/part1/model.gguf.00, the GGUF's first part: carry .gpu_check/part1 in a call just before this one (within 30 s)"
    "$PYTHON" - "$GC" "$W/SmolLM2-135M-Instruct.Q4_1.gguf" <<'EOF'
import hashlib, json, sys
from pathlib import Path
gc, dest = Path(sys.argv[1]), Path(sys.argv[2])
m = json.loads((gc / "part2" / "MANIFEST.json").read_text())["gguf"]
blob = b"".join((gc / p).read_bytes() for p in m["parts"])
if len(blob) != m["bytes"] or hashlib.sha256(blob).hexdigest() != m["sha256"]:
    sys.exit(f"[gpu_check] MISSING: the GGUF parts {m['parts']} do not add up to the model "
             f"({len(blob)} of {m['bytes']} bytes, or another checksum): carry both parts of one bundle")
dest.write_bytes(blob)
EOF
    echo "[gpu_check] converting the GGUF to $MODEL_DIR"
    SPA_SMOLLM2_GGUF="$W/SmolLM2-135M-Instruct.Q4_1.gguf" "$PYTHON" -c \
      "import sys; from pathlib import Path; sys.path.insert(0, 'tools'); import prepare_models as p; p.build_smollm2(Path(sys.argv[1]))" \
      "$MODEL_DIR"
    # The set-up's tokenizer, chat template and configs over the converted folder: another transformers may
    # convert the GGUF's tokenizer differently (5.17: <|im_start|> as the end-of-sequence token).
    "$PYTHON" -c "import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2], filter='data')" \
      "$GC/part2/model_files.tar.xz" "$MODEL_DIR"
  fi
fi
echo "[gpu_check] model: $MODEL_DIR"

# --- 4. sizes (command-line variables win over these, and these over the gpu profile)
export PROFILE="${PROFILE:-gpu}" RUN_DIR="${RUN_DIR:-$W/run}" BASE_MODEL="${BASE_MODEL:-$MODEL_DIR}"
d() { export "$1=${!1-$2}"; }   # d VAR DEFAULT: set unless given (an empty value given counts)
d ICL_EXAMPLES 0; d SFT_TASK_TYPES pick; d REPORT_TO none; d EVAL_SPLITS_CAP 1
d FUSE_VARIANTS "progress sparse"; d PPO_VARIANTS "progress sparse"; d SFT_SAVE_STEPS 100000
d NUM_GPUS 1; d SFT_DEEPSPEED ""; d PRM_DEEPSPEED ""; d PPO_MODE offline; d ROLLOUT_BACKEND hf
if [[ "${GPU_CHECK_SMALL:-0}" == 1 ]]; then
  d SFT_NUM_TRAJ 4; d SFT_EPOCHS 1; d SFT_LR 1e-4; d SFT_BATCH 1; d SFT_GRAD_ACCUM 1; d SFT_MAX_LEN 1024
  d EXPLORE_TASKS 2; d EXPLORE_M 2; d MAX_STEPS_CAP 3; d MAX_NEW_TOKENS 32; d BATCH_SIZE 4; d EXPLORE_BATCH 4
  d PRM_BACKBONE frozen; d PRM_EPOCHS 20; d PRM_BATCH 2; d PRM_MAX_LEN 2048; d PRM_LOG_STEPS 10
  d PPO_ITERS 2; d PPO_ROLLOUTS 2; d PPO_EPOCHS 1; d PPO_MB 1; d PPO_ACCUM 1; d PPO_LR 1e-4; d NUM_TASKS 2
else
  d NUM_TASKS ""; d SFT_NUM_TRAJ ""; d SFT_EPOCHS 2; d SFT_LR 1e-4; d SFT_BATCH 8; d SFT_GRAD_ACCUM 2; d SFT_MAX_LEN 2048
  d EXPLORE_TASKS 32; d EXPLORE_M 4; d MAX_STEPS_CAP 15; d MAX_NEW_TOKENS 96; d BATCH_SIZE 64; d EXPLORE_BATCH 128
  d PRM_BACKBONE lora; d PRM_EPOCHS 2; d PRM_LR 1e-4; d PRM_BATCH 8; d PRM_MAX_LEN 2048; d PRM_LOG_STEPS 10
  d PPO_ITERS 8; d PPO_ROLLOUTS 32; d PPO_EPOCHS 2; d PPO_MB 8; d PPO_ACCUM 1; d PPO_LR 1e-4
fi
[[ "${GPU_CHECK_KEEP:-0}" == 1 ]] || rm -rf "$RUN_DIR"
mkdir -p "$RUN_DIR"

# --- the summary (rewritten after every stage, so a run stopped at its time limit still reports the stages
# it finished: $W/gpu_check.md and $OUT/gpu_check.md)
cat > "$W/summary.py" <<'EOF'
import json, sys, time
from pathlib import Path
w, run, budget, out, show = Path(sys.argv[1]), Path(sys.argv[2]), float(sys.argv[3]), sys.argv[4], sys.argv[5] == "print"
mem = [tuple(map(float, ln.split())) for ln in (w / "gpu_mem.txt").read_text().splitlines() if len(ln.split()) == 2]
def load(p):
    try:
        return json.loads(Path(p).read_text())
    except (OSError, ValueError):
        return None
def throughput(name):
    if name == "sft" and (s := load(run / "sft" / "train_summary.json")):
        return f"{s['tokens_per_second']:.0f} train tok/s ({s['trajectories']} traj, {s['tokens_per_epoch']} tok/epoch)"
    if name == "exploration" and (s := load(run / "exploration" / "summary.json")):
        r = s["this_run"]
        return f"{r['generated_tokens_per_second']:.0f} gen tok/s ({r['episodes']} episodes, {r['steps']} steps)"
    ppo = sorted(run.glob(f"ppo_*_{name[4:]}/summary.json")) if name.startswith("ppo_") else []
    if ppo and (s := load(ppo[0])):
        c = s["config"]
        return f"{c['rollouts_per_iteration'] * s['iterations'] / max(s['seconds_this_run'], 1e-9):.2f} rollouts/s ({s['iterations']} updates)"
    if name.startswith("eval_"):
        found = sorted((run / "eval").glob("sft_unseen" if name == "eval_sft" else f"ppo_*_{name[5:]}_unseen"))
        if found and (s := load(found[0] / "summary.json")):
            r = s["this_run"]
            return f"{r['generated_tokens_per_second']:.0f} gen tok/s ({r['episodes']} episodes, {r['steps']} steps)"
    return ""
rows, total = [], 0.0
for ln in (w / "stages.tsv").read_text().splitlines():
    name, t0, t1, rc = ln.split("\t")
    t0, t1 = float(t0), float(t1)
    total += t1 - t0
    peak = max((m for t, m in mem if t0 <= t <= t1), default=None)
    rows.append(f"| {name} | {t1 - t0:.0f} | {'-' if peak is None else f'{peak / 1024:.1f}'} | {throughput(name)} | {'ok' if rc == '0' else 'FAILED ' + rc} |")
lines = ["# GPU check", "", f"stages {total:.0f} s in all (budget {budget:.0f} s)", "",
         "| stage | seconds | peak GPU memory (GiB, nvidia-smi) | throughput | status |", "|---|---|---|---|---|", *rows, ""]
results = ["| model | n | success | avg reward | grounding | avg steps |", "|---|---|---|---|---|---|"]
for d in sorted((run / "eval").glob("*_unseen")):
    if s := load(d / "summary.json"):
        m = s["metrics"]
        results.append(f"| {d.name} | {m['n']} | {m['success_rate']:.3f} | {m['avg_reward']:.3f} | {m['grounding']:.3f} | {m['avg_steps']:.1f} |")
lines += ["## results (unseen games)", "", *results, ""]
report = run / "report" / "report.md"
if report.exists():
    lines += ["## eval/report.py", "", report.read_text()]
text = "\n".join(lines)
if show:
    print(text)
(w / "gpu_check.md").write_text(text)
if out:
    Path(out).mkdir(parents=True, exist_ok=True)
    (Path(out) / "gpu_check.md").write_text(text)
EOF

# --- 5. GPU memory, sampled every 0.5 s while the stages run
SAMPLER=""
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  nvidia-smi -L
  ( while :; do echo "$(date +%s.%N) $(nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits | head -1)"; sleep 0.5; done ) > "$W/gpu_mem.txt" 2>/dev/null &
  SAMPLER=$!
else
  : > "$W/gpu_mem.txt"
fi
trap '[[ -n "$SAMPLER" ]] && kill "$SAMPLER" 2>/dev/null || true' EXIT
STAGES="$W/stages.tsv"; : > "$STAGES"
STARTED="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
stage() {  # stage NAME command...: run it, recording start and end (and in timings.tsv, for eval/report.py)
  local name="$1" t0 rc=0; shift
  t0=$(date +%s.%N)
  echo "=== [gpu_check $name] $(date -u +%H:%M:%S) (elapsed $(( $(date +%s) - T_START )) s)"
  "$@" || rc=$?
  printf '%s\t%s\t%s\t%s\n' "$name" "$t0" "$(date +%s.%N)" "$rc" >> "$STAGES"
  printf '%s\t%s\t%s\t%s\n' "$name" "$(( ${EPOCHREALTIME%.*} - ${t0%.*} ))" "$STARTED" "${PPO_MODE:-offline}" >> "$RUN_DIR/timings.tsv"
  if (( rc != 0 )); then echo "[gpu_check] stage $name failed (status $rc)" >&2; REPORT_ONLY=1; fi
  "$PYTHON" "$W/summary.py" "$W" "$RUN_DIR" "$BUDGET" "${OUT:-}" quiet || true
  if (( $(date +%s) - T_START > BUDGET )); then echo "[gpu_check] WARNING: past the ${BUDGET} s budget"; fi
  return 0
}
REPORT_ONLY=0
run() { (( REPORT_ONLY == 0 )) && stage "$@" || true; }
run sft bash sft/run_sft.sh alfworld
run exploration bash exploration/run_explore.sh alfworld --no-progress
run estimator bash prm/run_prm.sh alfworld
for v in $PPO_VARIANTS; do run "ppo_$v" bash ppo/run_ppo.sh alfworld "$v"; done
run eval_sft env MODEL="$RUN_DIR/sft/model" EVAL_DIR="$RUN_DIR/eval/sft" bash eval/run_eval.sh alfworld --no-progress
ppo_dir() { echo "$RUN_DIR/ppo_${PPO_MODE:-offline}$([[ "${PPO_GAE_LEVEL:-token}" == token ]] || echo "-$PPO_GAE_LEVEL")_$1"; }
for v in $PPO_VARIANTS; do
  run "eval_$v" env MODEL="$(ppo_dir "$v")/merged" EVAL_DIR="$RUN_DIR/eval/$(basename "$(ppo_dir "$v")")" \
    bash eval/run_eval.sh alfworld --no-progress
done
run report "$PYTHON" eval/report.py --run-dir "$RUN_DIR"
[[ -n "$SAMPLER" ]] && kill "$SAMPLER" 2>/dev/null || true

"$PYTHON" "$W/summary.py" "$W" "$RUN_DIR" "$BUDGET" "${OUT:-}" print
(( REPORT_ONLY == 0 )) || exit 1
}
main "$@"
