"""Replay each task's expert action sequence in the environment and report the share won.

python tools/replay_experts.py --env alfworld --split train --num-tasks 200
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from envs import load_tasks, make_env  # noqa: E402
from spa_rl.agent.schema import command_line  # noqa: E402
from spa_rl.cli import arg, parse  # noqa: E402


@dataclass
class ReplayConfig:
    env: str = arg("alfworld", "the environment whose tasks are replayed")
    split: str = arg("train", "task split")
    num_tasks: int = arg(200, "tasks evenly spaced over the split")
    max_steps: int = arg(
        0, "episode step limit (0: no limit beyond the expert's length; the agent's limit is 40 on ALFWorld)"
    )
    output: Path | None = arg(None, "optional JSON with per-task results")


def main(argv: list[str] | None = None) -> None:
    cfg = parse(ReplayConfig, argv=argv, doc=__doc__)
    tasks = [t for t in load_tasks(cfg.env, cfg.split) if t.expert_actions]
    if not tasks:
        raise SystemExit(f"no task of {cfg.env}/{cfg.split} has an expert action sequence")
    stride = max(1, len(tasks) // cfg.num_tasks)
    tasks = tasks[::stride][: cfg.num_tasks]
    longest = max(len(t.expert_actions) for t in tasks)
    env = make_env(cfg.env, max_steps=cfg.max_steps or longest)
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
        "env": cfg.env,
        "split": cfg.split,
        "tasks": len(rows),
        "won": won,
        "share_won": won / len(rows),
        "max_steps": cfg.max_steps or longest,
        "seconds": round(time.time() - t0, 1),
    }
    print(json.dumps(summary))
    if cfg.output:
        cfg.output.parent.mkdir(parents=True, exist_ok=True)
        cfg.output.write_text(json.dumps({**summary, "command": command_line(), "tasks": rows}, indent=1))


if __name__ == "__main__":
    main()
