"""Text environments (no LLM code): tasks, splits, experts, and a common step interface."""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from envs.base import Env, EnvError, EnvOption, EnvOptionError, StepResult, Task


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


def expert_trajectory(
    task: Task, options: Mapping[str, str] | None = None
) -> tuple[str, list[tuple[str, str]]]:
    """The expert's episode for ``task``: its first observation and (action, observation) pairs, played with
    the environment options ``options`` (defaults filled; WebShop's reward shows on its last page only)."""
    return env_spec(task.env).module().expert_trajectory(task, **resolve_env_options(task.env, options))


def env_options(env: str) -> dict[str, EnvOption]:
    """The options environment ``env`` takes (its package's ``ENV_OPTIONS``; most take none)."""
    return dict(getattr(env_spec(env).module(), "ENV_OPTIONS", {}))


def resolve_env_options(env: str, options: Mapping[str, str] | None = None) -> dict[str, str]:
    """``options`` checked against the environment's, with every option it does not name at its default.
    An unknown name or value raises EnvOptionError naming the option and what is allowed."""
    declared = env_options(env)
    for name, value in (options or {}).items():
        if name not in declared:
            known = f"its options: {', '.join(declared)}" if declared else "it takes no environment option"
            raise EnvOptionError(f"{env} has no environment option {name!r} ({known})")
        if value not in declared[name].choices:
            raise EnvOptionError(
                f"{env} option {name}: {value!r} is not one of {', '.join(declared[name].choices)}"
            )
    return {name: (options or {}).get(name, opt.default) for name, opt in declared.items()}


def parse_env_options(env: str, items: Iterable[str]) -> dict[str, str]:
    """``NAME=VALUE`` strings (the ``--env-option`` flag, repeatable) as the environment's resolved options
    (see ``resolve_env_options``); a malformed or repeated item raises EnvOptionError."""
    given: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        name, value = name.strip(), value.strip()
        if not sep or not name or not value:
            raise EnvOptionError(f"--env-option takes NAME=VALUE, got {item!r}")
        if name in given and given[name] != value:
            raise EnvOptionError(f"--env-option {name} given twice ({given[name]!r} and {value!r})")
        given[name] = value
    return resolve_env_options(env, given)


def make_env(env: str, options: Mapping[str, str] | None = None, **kwargs) -> Env:
    """A fresh environment instance (one per concurrently running episode). ``options``: its environment
    options (checked, defaults filled: ``resolve_env_options``); ``kwargs``: constructor arguments
    (``max_steps``)."""
    spec = env_spec(env)
    return getattr(spec.module(), spec.env_class)(**kwargs, **resolve_env_options(env, options))


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
    "EnvOption",
    "EnvOptionError",
    "env_options",
    "parse_env_options",
    "resolve_env_options",
    "StepResult",
    "Task",
    "expert_trajectory",
    "load_tasks",
    "make_env",
]
