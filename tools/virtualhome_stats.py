"""VirtualHome task statistics and expert replay: tasks per split, dropped programs by reason, goal
sources, and the expert's success over every task through the environment at the agent's step limit.

    python tools/virtualhome_stats.py [--max-steps 40] [--output results/virtualhome_stats.json]
"""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from envs import load_tasks, make_env  # noqa: E402
from envs.virtualhome.env import MAX_STEPS, SPLITS, task_file  # noqa: E402
from spa_rl.agent.schema import command_line  # noqa: E402
from spa_rl.cli import arg, parse  # noqa: E402


@dataclass
class VirtualHomeStatsConfig:
    max_steps: int = arg(MAX_STEPS, "episode step limit of the expert replay (the agent's)")
    output: Path | None = arg(None, "optional JSON with every figure")


def replay(tasks, max_steps: int) -> list[dict]:
    env = make_env("virtualhome", max_steps=max_steps)
    rows = []
    for t in tasks:
        env.reset(t)
        res, refused = None, 0
        for action in t.expert_actions:
            res = env.step(action)
            refused += not res.grounded
            if res.done:
                break
        if res is not None and res.success:
            why = "success"
        elif len(t.expert_actions) > max_steps:
            why = f"expert longer than {max_steps} steps"
        elif refused:
            why = "expert action refused"
        else:
            why = "goal not met after the whole program"
        rows.append({"task_id": t.task_id, "split": t.split, "steps": len(t.expert_actions), "result": why})
    env.close()
    return rows


def main(argv: list[str] | None = None) -> None:
    cfg = parse(VirtualHomeStatsConfig, argv=argv, doc=__doc__)
    t0 = time.time()
    data = task_file()
    tasks = {s: load_tasks("virtualhome", s) for s in SPLITS}
    rows = [r for s in SPLITS for r in replay(tasks[s], cfg.max_steps)]
    won = sum(r["result"] == "success" for r in rows)
    summary = {
        "programs": data["programs"],
        "tasks_per_split": {s: len(v) for s, v in tasks.items()},
        "unseen_titles": data["unseen_titles"],
        "titles_per_split": {s: len({t.meta["title"] for t in v}) for s, v in tasks.items()},
        "dropped_by_reason": data["dropped_by_reason"],
        "dropped": {
            reason: [d["task_id"] for d in data["dropped"] if d["reason"] == reason]
            for reason in data["dropped_by_reason"]
        },
        "goal_source": dict(Counter(t["goal"]["source"] for t in data["tasks"])),
        "package_final_graph_gives_same_derived_goal": sum(t["final_graph_agrees"] for t in data["tasks"]),
        "expert_steps": {
            "mean": round(sum(r["steps"] for r in rows) / len(rows), 2),
            "max": max(r["steps"] for r in rows),
            "stopped_before_program_end": sum(
                len(t["expert_actions"]) < len(t["program"]) for t in data["tasks"]
            ),
        },
        "expert": {
            "max_steps": cfg.max_steps,
            "tasks": len(rows),
            "won": won,
            "success_rate": round(won / len(rows), 4),
            "by_result": dict(Counter(r["result"] for r in rows)),
            "failures": [r for r in rows if r["result"] != "success"],
        },
        "seconds": round(time.time() - t0, 1),
    }
    print(json.dumps(summary, indent=1))
    if cfg.output:
        cfg.output.parent.mkdir(parents=True, exist_ok=True)
        cfg.output.write_text(json.dumps({**summary, "command": command_line()}, indent=1))


if __name__ == "__main__":
    main()
