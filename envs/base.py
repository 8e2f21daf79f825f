"""The interface every environment implements: tasks, a reset, and a step that reports grounding."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class Task:
    """One episode's worth of work in an environment."""

    env: str
    task_id: str  # unique within (env, split)
    split: str
    task_type: str | None = None
    expert_actions: tuple[str, ...] | None = None  # an action sequence that solves the task, if known
    meta: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)


@dataclass
class StepResult:
    observation: str
    reward: float  # the environment's reward for this step (final reward on the last step)
    done: bool  # the episode is over (task solved or failed for good, or the step limit reached)
    success: bool  # the task is solved
    grounded: bool  # the environment accepted the action as valid/executable
    info: dict[str, Any] = field(default_factory=dict)


class Env(Protocol):
    """A text environment. ``reset`` returns the first observation (which states the task)."""

    name: str
    max_steps: int

    def reset(self, task: Task) -> str: ...

    def step(self, action: str) -> StepResult: ...

    def close(self) -> None: ...


class EnvError(RuntimeError):
    """Raised for misuse of an environment (step before reset, unknown task, missing data)."""


@dataclass(frozen=True)
class EnvOption:
    """A setting an environment takes besides its task (``--env-option NAME=VALUE``): one of ``choices``,
    ``default`` when not given. An environment package lists its options in ``ENV_OPTIONS`` (name -> option)."""

    choices: tuple[str, ...]
    default: str
    help: str = ""


class EnvOptionError(EnvError, ValueError):
    """An unknown environment option or value; the message names the option and the allowed values. A
    ValueError too, so a config check (``spa_rl.validate.exit_on_error``) reports it as one line."""
