"""WebShop (1000-product setting), written from WebShop's published rules (see README.md here)."""

from envs.webshop.env import (
    CATEGORIES,
    ENV_OPTIONS,
    INVALID_ACTION,
    MAX_STEPS,
    NAME,
    WebShopEnv,
    expert_trajectory,
    load_tasks,
    parse_action,
)

__all__ = [
    "CATEGORIES",
    "ENV_OPTIONS",
    "INVALID_ACTION",
    "MAX_STEPS",
    "NAME",
    "WebShopEnv",
    "expert_trajectory",
    "load_tasks",
    "parse_action",
]
