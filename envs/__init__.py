"""Text environments (no LLM code): tasks, splits, experts, and a common step interface."""

from __future__ import annotations

from envs.base import Env, EnvError, StepResult, Task

ENV_NAMES = ("alfworld", "virtualhome", "webshop")


def load_tasks(env: str, split: str, limit: int | None = None) -> list[Task]:
    """Tasks of ``split`` for environment ``env``, in the split's canonical order."""
    if env == "alfworld":
        from envs.alfworld import load_tasks as _load

        return _load(split, limit=limit)
    if env == "virtualhome":
        from envs.virtualhome import load_tasks as _load_vh

        return _load_vh(split, limit=limit)
    if env == "webshop":
        from envs.webshop import load_tasks as _load_ws

        return _load_ws(split, limit=limit)
    raise EnvError(f"unknown environment {env!r}; known: {', '.join(ENV_NAMES)}")


def expert_trajectory(task: Task) -> tuple[str, list[tuple[str, str]]]:
    """The expert's episode for ``task``: its first observation and (action, observation) pairs."""
    if task.env == "alfworld":
        from envs.alfworld import expert_trajectory as _expert

        return _expert(task)
    if task.env == "virtualhome":
        from envs.virtualhome import expert_trajectory as _expert_vh

        return _expert_vh(task)
    if task.env == "webshop":
        from envs.webshop import expert_trajectory as _expert_ws

        return _expert_ws(task)
    raise EnvError(f"no expert trajectories for environment {task.env!r}")


def make_env(env: str, **kwargs) -> Env:
    """A fresh environment instance (one per concurrently running episode)."""
    if env == "alfworld":
        from envs.alfworld import AlfWorldEnv

        return AlfWorldEnv(**kwargs)
    if env == "virtualhome":
        from envs.virtualhome import VirtualHomeEnv

        return VirtualHomeEnv(**kwargs)
    if env == "webshop":
        from envs.webshop import WebShopEnv

        return WebShopEnv(**kwargs)
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
