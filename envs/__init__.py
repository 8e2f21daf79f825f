"""Text environments (no LLM code): tasks, splits, experts, and a common step interface."""

from __future__ import annotations

from envs.base import Env, EnvError, StepResult, Task

ENV_NAMES = ("alfworld",)


def load_tasks(env: str, split: str, limit: int | None = None) -> list[Task]:
    """Tasks of ``split`` for environment ``env``, in the split's canonical order."""
    if env == "alfworld":
        from envs.alfworld import load_tasks as _load

        return _load(split, limit=limit)
    raise EnvError(f"unknown environment {env!r}; known: {', '.join(ENV_NAMES)}")


def expert_trajectory(task: Task) -> tuple[str, list[tuple[str, str]]]:
    """The expert's episode for ``task``: its first observation and (action, observation) pairs."""
    if task.env == "alfworld":
        from envs.alfworld import expert_trajectory as _expert

        return _expert(task)
    raise EnvError(f"no expert trajectories for environment {task.env!r}")


def make_env(env: str, **kwargs) -> Env:
    """A fresh environment instance (one per concurrently running episode)."""
    if env == "alfworld":
        from envs.alfworld import AlfWorldEnv

        return AlfWorldEnv(**kwargs)
    raise EnvError(f"unknown environment {env!r}; known: {', '.join(ENV_NAMES)}")


__all__ = [
    "ENV_NAMES",
    "Env",
    "EnvError",
    "StepResult",
    "Task",
    "expert_trajectory",
    "load_tasks",
    "make_env",
]
