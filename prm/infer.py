"""Stepwise progress prediction: run the trained estimator over every exploration rollout and write
c_t for each step to a JSONL file beside the rollouts (one line per rollout).

    python prm/infer.py --estimator runs/demo/alfworld/estimator/estimator \\
        --rollouts runs/demo/alfworld/exploration/episodes.jsonl \\
        --output runs/demo/alfworld/exploration/step_values.jsonl
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch
from tqdm import tqdm

from eval_agent.backends.hf import load_tokenizer, pick_device
from eval_agent.progress import ProgressEstimator
from eval_agent.progress_data import StepCollator, encode_rollout
from eval_agent.schema import read_records, write_json_atomic
from eval_agent.step_rewards import final_reward


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--estimator", required=True, help="estimator folder (prm/train.py)")
    ap.add_argument("--rollouts", required=True, help="exploration JSONL")
    ap.add_argument("--output", required=True, help="step-values JSONL to write")
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--max-length", type=int, default=4096)
    ap.add_argument("--device", default=None)
    args = ap.parse_args()

    t0 = time.time()
    device = pick_device(args.device)
    model = ProgressEstimator.load(args.estimator).to(device)
    tokenizer = load_tokenizer(model.cfg.base_model)
    records = read_records(args.rollouts)
    collate = StepCollator(tokenizer.pad_token_id)
    order = sorted(range(len(records)), key=lambda i: len(records[i].messages))  # less padding
    lines: dict[int, str] = {}
    missing = 0
    with torch.no_grad():
        for start in tqdm(range(0, len(order), args.batch_size), desc="step values", unit="batch"):
            idx = order[start : start + args.batch_size]
            feats = [encode_rollout(tokenizer, records[i], args.max_length) for i in idx]
            batch = {k: v.to(device) for k, v in collate(feats).items() if k != "target"}
            values = model(**batch)["values"].tolist()
            k = 0
            for i, f in zip(idx, feats, strict=True):
                rec, n = records[i], len(f["step_pos"])
                c = values[k : k + n] + [0.0] * (rec.n_steps - n)  # steps past max_length get 0
                k += n
                missing += rec.n_steps - n
                lines[i] = json.dumps(
                    {
                        "task_id": rec.task_id,
                        "rollout": rec.rollout,
                        "values": c,
                        "prediction": sum(c),
                        "reward": final_reward(rec),
                        "steps_past_max_length": rec.n_steps - n,
                    }
                )
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text("".join(lines[i] + "\n" for i in range(len(records))))
    os.replace(tmp, out)
    write_json_atomic(
        out.with_suffix(".info.json"),
        {
            "estimator": args.estimator,
            "rollouts": args.rollouts,
            "n": len(records),
            "steps_past_max_length": missing,
            "seconds": round(time.time() - t0, 1),
        },  # fmt: skip
    )
    print(f"wrote step values of {len(records)} rollouts to {out} ({missing} steps past max length)")


if __name__ == "__main__":
    main()
