"""Text environments (no LLM code): tasks, splits, experts, and a common step interface."""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from envs.base import Env, EnvError, StepResult, Task


@dataclass(frozen=True)
class EnvSpec:
    """One environment: the package that holds its ``load_tasks(split, limit)``, ``expert_trajectory(task)``
    and its ``Env`` class, and how its reward is scored. The agent side finds the environment's prompt and
    expert thoughts by the same name (``spa_rl.agent.prompts.<name>``, ``spa_rl.agent.experts.<name>``)."""

    name: str
    package: str
    env_class: str
    graded: bool  # True: the final reward is a score in [0, 1] (WebShop); False: success 0/1

    def module(self):
        return importlib.import_module(self.package)


# The registry: adding an environment is one line here plus its own package.
ENVS = {
    s.name: s
    for s in (
        EnvSpec("alfworld", "envs.alfworld", "AlfWorldEnv", graded=False),
        EnvSpec("virtualhome", "envs.virtualhome", "VirtualHomeEnv", graded=False),
        EnvSpec("webshop", "envs.webshop", "WebShopEnv", graded=True),
    )
}
ENV_NAMES = tuple(ENVS)


def env_spec(env: str) -> EnvSpec:
    if env not in ENVS:
        raise EnvError(f"unknown environment {env!r}; known: {', '.join(ENV_NAMES)}")
    return ENVS[env]


def load_tasks(env: str, split: str, limit: int | None = None) -> list[Task]:
    """Tasks of ``split`` for environment ``env``, in the split's canonical order."""
    return env_spec(env).module().load_tasks(split, limit=limit)


def expert_trajectory(task: Task) -> tuple[str, list[tuple[str, str]]]:
    """The expert's episode for ``task``: its first observation and (action, observation) pairs."""
    return env_spec(task.env).module().expert_trajectory(task)


def make_env(env: str, **kwargs) -> Env:
    """A fresh environment instance (one per concurrently running episode)."""
    spec = env_spec(env)
    return getattr(spec.module(), spec.env_class)(**kwargs)


from envs.selection import read_task_ids, select_tasks  # noqa: E402  (selection uses load_tasks)

__all__ = [
    "ENVS",
    "EnvSpec",
    "env_spec",
    "read_task_ids",
    "select_tasks",
    "ENV_NAMES",
    "Env",
    "EnvError",
    "StepResult",
    "Task",
    "expert_trajectory",
    "load_tasks",
    "make_env",
]
