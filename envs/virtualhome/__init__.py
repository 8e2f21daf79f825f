"""VirtualHome text environment on the evolving-graph simulator of ``virtualhome-eval`` (see ``env.py``)."""

from envs.virtualhome.env import (
    INVALID_FEEDBACK,
    MAX_STEPS,
    NAME,
    SPLITS,
    VirtualHomeEnv,
    expert_trajectory,
    load_tasks,
)

__all__ = [
    "INVALID_FEEDBACK",
    "MAX_STEPS",
    "NAME",
    "SPLITS",
    "VirtualHomeEnv",
    "expert_trajectory",
    "load_tasks",
]
