"""ALFWorld text environment (see ``env.py``)."""

from envs.alfworld.env import (
    MAX_STEPS,
    NAME,
    TASK_TYPES,
    AlfWorldEnv,
    expert_trajectory,
    load_tasks,
    normalize_action,
)

__all__ = [
    "MAX_STEPS",
    "NAME",
    "TASK_TYPES",
    "AlfWorldEnv",
    "expert_trajectory",
    "load_tasks",
    "normalize_action",
]
