#!/usr/bin/env bash
# Throughput of one job using every core against one single-threaded copy per core run side by side, for a
# part of bench/bench_speed.py (fp32): do the study's stages get more done per hour run in parallel?
#   bash bench/bench_parallel_jobs.sh OUT_DIR [PART] [bench_speed flags...]
# PART: ppo (one PPO update, default) or rollouts (greedy ALFWorld episodes). Prints each run's timed
# seconds (model loading excluded) and the parallel runs' throughput over the single job's.
set -euo pipefail
OUT="${1:?usage: bench_parallel_jobs.sh OUT_DIR [PART] [flags]}"; PART="${2:-ppo}"; shift $(( $# < 2 ? $# : 2 ))
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY="${SPA_VENV:-.venv}/bin/python"
CORES="$(nproc)"
mkdir -p "$OUT"
flags=("$@")
one() { OMP_NUM_THREADS="$2" "$PY" bench/bench_speed.py --parts "$PART" --settings fp32 --repeats 1 \
  --output "$OUT/$1.json" "${flags[@]}" > "$OUT/$1.log" 2>&1; }
one single "$CORES"
for i in $(seq 1 "$CORES"); do one "parallel$i" 1 & done
wait
"$PY" - "$OUT" "$PART" "$CORES" <<'PYEOF'
import json, sys
from pathlib import Path
out, part, cores = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
sec = lambda name: json.loads((out / f"{name}.json").read_text())["results"][part]["fp32"]["seconds"]
single = sec("single")
par = [sec(f"parallel{i}") for i in range(1, cores + 1)]
ratio = cores * single / max(par)
lines = [f"part {part}, {cores} cores, fp32",
         f"one job with {cores} threads: {single:.1f} s",
         f"{cores} jobs with 1 thread each, side by side: " + ", ".join(f"{s:.1f} s" for s in par),
         f"work per second of the parallel jobs over the single job: {ratio:.2f}x"]
print("\n".join(lines))
(out / "summary.txt").write_text("\n".join(lines) + "\n")
PYEOF
