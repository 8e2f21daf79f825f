"""VirtualHome text environment: household programs on the evolving-graph simulator.

Tasks come from ``data/virtualhome/tasks.json`` (built at set-up by ``tools/prepare_data.py`` from the
installed ``virtualhome-eval`` package; rules in ``data.py`` and ``goals.py``). The initial scene graph is
read from the package at ``reset``. One English command per step (``actions.py``); the simulator runs
the matching script line. A refused or unparsable command gets ``Nothing happens.`` and is not grounded.
The episode ends with success as soon as the goal test holds, or after ``max_steps`` steps.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from envs.base import EnvError, StepResult, Task
from envs.paths import data_dir
from envs.virtualhome.actions import LOOK_AROUND, parse_command
from envs.virtualhome.data import load_graphs, name_equivalence
from envs.virtualhome.goals import Goal, satisfied
from envs.virtualhome.world import World

NAME = "virtualhome"
MAX_STEPS = 40
SPLITS = ("train", "seen", "unseen")
SPLIT_ALIASES = {"test": "unseen"}  # the test split of the issue: tasks of unseen titles
INVALID_FEEDBACK = "Nothing happens."


def virtualhome_root() -> Path:
    root = data_dir() / NAME
    if not (root / ".ready").exists():
        raise EnvError(f"VirtualHome tasks not found at {root}: run `bash scripts/setup.sh` first")
    return root


@lru_cache(maxsize=2)
def _task_file(path: str, mtime: float) -> dict:
    data = json.loads(Path(path).read_text())
    if not isinstance(data, dict) or not isinstance(data.get("tasks"), list):
        raise EnvError(f"{path}: expected an object with a 'tasks' list; rebuild with tools/prepare_data.py")
    return data


def task_file() -> dict:
    path = virtualhome_root() / "tasks.json"
    return _task_file(str(path), path.stat().st_mtime)


def load_tasks(split: str, limit: int | None = None) -> list[Task]:
    split = SPLIT_ALIASES.get(split, split)
    if split not in SPLITS:
        raise EnvError(
            f"unknown VirtualHome split {split!r}; known: {', '.join(SPLITS + tuple(SPLIT_ALIASES))}"
        )
    tasks = []
    for k, r in enumerate(task_file()["tasks"]):
        if r.get("split") != split:
            continue
        try:
            tasks.append(
                Task(
                    env=NAME,
                    task_id=r["task_id"],
                    split=split,
                    task_type=r["task_type"],
                    expert_actions=tuple(r["expert_actions"]),
                    meta={
                        "title": r["title"],
                        "description": r["description"],
                        "goal": r["goal"],
                        "program": r["program"],
                    },
                )
            )
        except KeyError as e:
            raise EnvError(f"{virtualhome_root() / 'tasks.json'}: task record {k} lacks the field {e}") from e
    return tasks[:limit]


def task_text(task: Task) -> str:
    title = task.meta["title"].strip().rstrip(".")
    desc = task.meta["description"].strip()
    if desc and desc[-1] not in ".!?":
        desc += "."
    return f"Your task: {title}. {desc}".strip()


class VirtualHomeEnv:
    """One VirtualHome task at a time."""

    name = NAME

    def __init__(self, max_steps: int = MAX_STEPS):
        self.max_steps = max_steps
        self.world: World | None = None
        self.goal: Goal | None = None
        self.done_actions: list[str] = []  # script actions executed so far (for action goals)
        self._steps = 0
        self._done = True

    def reset(self, task: Task) -> str:
        if task.env != NAME:
            raise EnvError(f"task {task.task_id!r} belongs to {task.env!r}, not {NAME!r}")
        init, _ = load_graphs(task.task_id)
        self.world = World(init, name_equivalence())
        self.goal = Goal.from_json(task.meta["goal"])
        self.done_actions = []
        self._steps, self._done = 0, False
        return f"{self.world.intro()}\n\n{task_text(task)}"

    def step(self, action: str) -> StepResult:
        if self.world is None or self._done:
            raise EnvError("step() called before reset() or after the episode ended")
        self._steps += 1
        cmd = parse_command(action)
        out = self.world.act(cmd) if cmd is not None else None
        grounded = bool(out and out.ok)
        if grounded and cmd.action != LOOK_AROUND:
            self.done_actions.append(cmd.action)
        won = grounded and satisfied(self.goal, self.world, self.done_actions)
        truncated = not won and self._steps >= self.max_steps
        self._done = won or truncated
        return StepResult(
            observation=out.message if grounded else INVALID_FEEDBACK,
            reward=1.0 if won else 0.0,
            done=self._done,
            success=won,
            grounded=grounded,
            info={
                "command": cmd.action if cmd else None,
                "script": out.script_line if out else None,
                "truncated": truncated,
            },
        )

    def close(self) -> None:
        self.world = None


def expert_trajectory(task: Task) -> tuple[str, list[tuple[str, str]]]:
    """The ground-truth program played through the environment: first observation and (action, observation)
    pairs, up to the step where the goal first holds."""
    if not task.expert_actions:
        raise EnvError(f"VirtualHome task {task.task_id!r} has no expert program")
    env = VirtualHomeEnv(max_steps=max(MAX_STEPS, len(task.expert_actions)))
    first = env.reset(task)
    pairs = []
    for action in task.expert_actions:
        res = env.step(action)
        if not res.grounded:
            raise EnvError(f"VirtualHome task {task.task_id!r}: the expert's {action!r} was refused")
        pairs.append((action, res.observation))
        if res.done:
            break
    return first, pairs
