"""Metrics over trajectory records: success rate, average final reward, grounding accuracy (accepted
actions / all actions, format errors included), by task type and by trajectory length."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from spa_rl.agent.schema import TrajectoryRecord

LENGTH_BUCKET = 5  # steps per trajectory-length bucket (1-5, 6-10, ...)


def _block(recs: list[TrajectoryRecord]) -> dict:
    n = len(recs)
    actions = sum(r.n_steps for r in recs)
    grounded = sum(s.grounded for r in recs for s in r.steps)
    return {
        "n": n,
        "success_rate": sum(r.success for r in recs) / n if n else 0.0,
        "avg_reward": sum(r.reward for r in recs) / n if n else 0.0,
        "grounding": grounded / actions if actions else 0.0,
        "avg_steps": actions / n if n else 0.0,
    }


def length_bucket(n_steps: int, width: int = LENGTH_BUCKET) -> str:
    lo = ((max(n_steps, 1) - 1) // width) * width + 1
    return f"{lo}-{lo + width - 1}"


def summarize(records: Iterable[TrajectoryRecord]) -> dict:
    recs = list(records)
    by_type: dict[str, list] = defaultdict(list)
    by_len: dict[str, list] = defaultdict(list)
    reasons: dict[str, int] = defaultdict(int)
    for r in recs:
        by_type[r.task_type or "all"].append(r)
        by_len[length_bucket(r.n_steps)].append(r)
        reasons[r.finish_reason] += 1
    return {
        **_block(recs),
        "finish_reasons": dict(sorted(reasons.items())),
        "by_task_type": {k: _block(v) for k, v in sorted(by_type.items())},
        "by_length": {
            k: _block(v) for k, v in sorted(by_len.items(), key=lambda kv: int(kv[0].split("-")[0]))
        },
    }
