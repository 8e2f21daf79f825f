#!/usr/bin/env bash
# Does SFT reproduce its weights bit for bit on this machine? Two identical short runs (8 pick trajectories,
# 2 optimizer steps, the study's settings otherwise), compared by SHA-256. The study's mirror relies on it:
# on a new machine SFT is trained again, and the restored stages continue only if its weights are the same.
#   bash tools/check_sft_determinism.sh            (after scripts/setup.sh; about 5 minutes on 2 cores)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/common.sh
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
data=data/sft/alfworld_sft_icl0.json  # what the study's SFT stage builds (a few minutes, once)
[[ -f "$data" ]] || "$PY" sft/build_expert_data.py --env alfworld --output "$data" --icl-examples 0
for i in 1 2; do
  "$PY" sft/train.py --data "$data" --model models/smollm2-135m-instruct --output-dir "$tmp/run$i" \
    --num-train-epochs 1 --learning-rate 1e-4 --warmup-steps 0.03 --lr-scheduler-type cosine \
    --per-device-train-batch-size 2 --gradient-accumulation-steps 2 --max-length 4096 --logging-steps 1 \
    --save-strategy no --report-to none --seed 0 --icl-examples 0 --num-trajectories 8 --task-types pick \
    > "$tmp/run$i.log" 2>&1 || { tail -20 "$tmp/run$i.log" >&2; exit 1; }
done
a="$(sha256sum "$tmp/run1/model/model.safetensors" | cut -c1-16)"
b="$(sha256sum "$tmp/run2/model/model.safetensors" | cut -c1-16)"
echo "machine: $(machine_tag); torch $("$PY" -c 'import torch; print(torch.__version__)')"
echo "run 1: $a"
echo "run 2: $b"
if [[ "$a" == "$b" ]]; then echo "identical: SFT is reproducible here"; else echo "DIFFERENT: SFT is not reproducible here"; exit 1; fi
