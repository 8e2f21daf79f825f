"""Replay each task's expert action sequence in the environment and report the share won.

python tools/replay_experts.py --env alfworld --split train --num-tasks 200
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from envs import load_tasks, make_env  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--env", default="alfworld")
    ap.add_argument("--split", default="train")
    ap.add_argument("--num-tasks", type=int, default=200, help="tasks evenly spaced over the split")
    ap.add_argument(
        "--max-steps",
        type=int,
        default=0,
        help="episode step limit (0: no limit beyond the expert's length; the agent's limit is 40 on ALFWorld)",
    )
    ap.add_argument("--output", type=Path, default=None, help="optional JSON with per-task results")
    args = ap.parse_args()
    tasks = [t for t in load_tasks(args.env, args.split) if t.expert_actions]
    if not tasks:
        raise SystemExit(f"no task of {args.env}/{args.split} has an expert action sequence")
    stride = max(1, len(tasks) // args.num_tasks)
    tasks = tasks[::stride][: args.num_tasks]
    longest = max(len(t.expert_actions) for t in tasks)
    env = make_env(args.env, max_steps=args.max_steps or longest)
    t0, rows = time.time(), []
    for task in tqdm(tasks, desc="expert replay", unit="task"):
        env.reset(task)
        res = None
        for action in task.expert_actions:
            res = env.step(action)
            if res.done:
                break
        rows.append(
            {
                "task_id": task.task_id,
                "task_type": task.task_type,
                "expert_steps": len(task.expert_actions),
                "won": bool(res and res.success),
            }
        )
    env.close()
    won = sum(r["won"] for r in rows)
    summary = {
        "env": args.env,
        "split": args.split,
        "tasks": len(rows),
        "won": won,
        "share_won": won / len(rows),
        "max_steps": args.max_steps or longest,
        "seconds": round(time.time() - t0, 1),
    }
    print(json.dumps(summary))
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(
            json.dumps({**summary, "command": " ".join(sys.argv), "tasks": rows}, indent=1)
        )


if __name__ == "__main__":
    main()
