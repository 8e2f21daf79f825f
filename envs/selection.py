"""Choosing tasks of a split: the first N or N at random (seeded), by task type, from or outside lists of
task ids (e.g. the games an SFT model was trained on)."""

from __future__ import annotations

import random
from pathlib import Path

from envs.base import Task


def read_task_ids(path: str | Path) -> list[str]:
    """Task ids from a text file, one per line (blank lines and ``#`` comments ignored)."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"task-id file {p} does not exist")
    ids = [ln.strip() for ln in p.read_text().splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    if not ids:
        raise ValueError(f"task-id file {p} lists no task id")
    return ids


def select_tasks(
    env: str,
    split: str,
    n: int | None,
    how: str = "first",
    seed: int = 0,
    types: str | None = None,
    include: str | Path | None = None,
    exclude: str | Path | None = None,
) -> list[Task]:
    """``n`` tasks of a split (optionally of some task types only, only those listed in the file
    ``include``, none listed in the file ``exclude``): the first ``n``, or ``n`` drawn at random
    (seeded), kept in split order."""
    if how not in ("first", "random"):
        raise ValueError(f"task_sample must be 'first' or 'random', got {how!r}")
    if n is not None and n < 1:
        raise ValueError(f"the number of tasks must be >= 1 (or unset for all), got {n}")
    filtered = bool(types or include or exclude)
    from envs import load_tasks

    tasks = load_tasks(env, split, limit=n if how == "first" and not filtered else None)
    if types:
        wanted = {t.strip() for t in types.split(",") if t.strip()}
        known = {t.task_type for t in tasks}
        if wanted - known:
            raise ValueError(
                f"unknown task types {sorted(wanted - known)}; {env}/{split} has {sorted(known)}"
            )
        tasks = [t for t in tasks if t.task_type in wanted]
    if include:
        keep = set(read_task_ids(include))
        missing = keep - {t.task_id for t in load_tasks(env, split)}
        if missing:
            raise ValueError(
                f"{include}: {len(missing)} task ids are not in {env}/{split}, e.g. {sorted(missing)[0]!r}"
            )
        tasks = [t for t in tasks if t.task_id in keep]
    if exclude:
        drop = set(read_task_ids(exclude))
        tasks = [t for t in tasks if t.task_id not in drop]
    if filtered and not tasks:
        raise ValueError(f"no task of {env}/{split} is left after the type / id filters")
    if how == "first":
        return tasks[:n]
    if n is None or n >= len(tasks):
        return tasks
    keep_idx = sorted(random.Random(seed).sample(range(len(tasks)), n))
    return [tasks[i] for i in keep_idx]
