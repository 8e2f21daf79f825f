"""Stepwise progress prediction: run the trained estimator over every exploration rollout and write
c_t for each step to a JSONL file beside the rollouts (one line per rollout).

    python prm/infer.py --estimator runs/demo/alfworld/estimator/estimator \\
        --rollouts runs/demo/alfworld/exploration/episodes.jsonl \\
        --output runs/demo/alfworld/exploration/step_values.jsonl
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from eval_agent.backends.hf import load_tokenizer, pick_device
from eval_agent.progress import ProgressEstimator, estimate_step_values
from eval_agent.schema import read_records, write_json_atomic, write_jsonl_atomic
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
    model = ProgressEstimator.load(args.estimator).to(pick_device(args.device))
    tokenizer = load_tokenizer(model.cfg.base_model)
    records = read_records(args.rollouts)
    results = estimate_step_values(model, tokenizer, records, args.batch_size, args.max_length)
    lines = [
        json.dumps(
            {
                "task_id": r.task_id,
                "rollout": r.rollout,
                "values": c,
                "prediction": sum(c),
                "reward": final_reward(r),
                "steps_past_max_length": cut,
            }  # fmt: skip
        )
        for r, (c, cut) in zip(records, results, strict=True)
    ]
    missing = sum(cut for _, cut in results)
    out = Path(args.output)
    write_jsonl_atomic(out, lines)
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
