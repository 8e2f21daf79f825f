"""WebShop as an agent environment: ``search[keywords]`` and ``click[value]`` actions, at most 10 steps.

Splits: ``train`` and ``test`` (generated goals; test products held out, see ``goals.py``) and ``human``
(the 13 human-written instructions whose products are among the 1000). An action that the current page
does not offer (a click on something not clickable there, a search where there is no search box, any
other text) is answered "Invalid action!", changes nothing, and is not grounded. The episode ends at
"Buy Now" with WebShop's reward (success = reward 1) or after ``max_steps`` actions with reward 0.
Environment option ``reward`` (``--env-option reward=...``): the reward's option rule, ``original``
(WebShop's, the default), ``corrected`` or ``legacy`` (see ``reward.py``).
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict

from envs.base import EnvError, EnvOption, StepResult, Task
from envs.webshop.catalog import SPLITS, load_catalog
from envs.webshop.engine import Session, WebShopSite, click_key
from envs.webshop.expert import expert_actions
from envs.webshop.reward import DEFAULT_REWARD_MODE, REWARD_OPTION

NAME = "webshop"
MAX_STEPS = 10  # the paper's limit
INVALID_ACTION = "Invalid action!"
CATEGORIES = ("beauty", "electronics", "fashion", "garden", "grocery")  # the task types
# The options make_env / --env-option accept (envs.resolve_env_options checks them).
ENV_OPTIONS: dict[str, EnvOption] = {"reward": REWARD_OPTION}
_ACTION = re.compile(r"^\s*(search|click)\s*\[(.*)\]\s*$", re.IGNORECASE | re.DOTALL)


def load_tasks(split: str, limit: int | None = None) -> list[Task]:
    if split not in SPLITS:
        raise EnvError(f"unknown WebShop split {split!r}; known: {', '.join(SPLITS)}")
    return [
        Task(
            env=NAME,
            task_id=g.goal_id,
            split=split,
            task_type=g.category,
            meta={"asin": g.asin, "instruction": g.instruction_text},
        )
        for g in load_catalog().goals[split][:limit]
    ]


def parse_action(action: str) -> tuple[str, str] | None:
    """('search' | 'click', lower-cased argument), or None for anything else."""
    m = _ACTION.match(action)
    if m is None:
        return None
    return m.group(1).lower(), m.group(2).strip().lower()


class WebShopEnv:
    """One shopping session at a time over the shared catalogue."""

    name = NAME

    def __init__(self, max_steps: int = MAX_STEPS, reward: str = DEFAULT_REWARD_MODE):
        self.max_steps = max_steps
        self.catalog = load_catalog()
        self.site = WebShopSite(self.catalog, reward)
        self.session: Session | None = None
        self._steps = 0
        self._done = True

    def reset(self, task: Task) -> str:
        if task.env != NAME:
            raise EnvError(f"task {task.task_id!r} belongs to {task.env!r}, not {NAME!r}")
        if task.split not in SPLITS:
            raise EnvError(f"unknown WebShop split {task.split!r}")
        self.session = Session(goal=self.catalog.goal(task.split, task.task_id))
        self._steps, self._done = 0, False
        return self.site.render(self.session)

    def valid(self, action: str) -> bool:
        """Whether ``action`` is executable on the current page."""
        parsed = parse_action(action)
        if parsed is None or self.session is None:
            return False
        kind, arg = parsed
        if kind == "search":
            return bool(arg) and self.site.can_search(self.session)
        return click_key(arg) in self.site.clickables(self.session)

    def available_actions(self) -> dict:
        """What the page offers: whether it has a search box, and its clickable texts."""
        s = self._session()
        return {"has_search_bar": self.site.can_search(s), "clickables": list(self.site.clickables(s))}

    def step(self, action: str) -> StepResult:
        s = self._session()
        if self._done:
            raise EnvError("step() called after the episode ended")
        self._steps += 1
        grounded = self.valid(action)
        if grounded:
            kind, arg = parse_action(action)
            if kind == "search":
                self.site.search(s, arg)
            else:
                self.site.click(s, arg)
        bought = s.page == "done"
        truncated = not bought and self._steps >= self.max_steps
        self._done = bought or truncated
        reward = s.reward.reward if bought else 0.0
        info = {"truncated": truncated, "page": s.page}
        if bought:
            info["reward_info"] = asdict(s.reward)
            info["bought"] = {"asin": s.asin, "options": dict(s.options)}
        return StepResult(
            observation=self.site.render(s) if grounded else INVALID_ACTION,
            reward=reward,
            done=self._done,
            success=bought and math.isclose(reward, 1.0),
            grounded=grounded,
            info=info,
        )

    def _session(self) -> Session:
        if self.session is None:
            raise EnvError("step() called before reset()")
        return self.session

    def close(self) -> None:
        self.session = None


def expert_trajectory(
    task: Task, max_steps: int = MAX_STEPS, reward: str = DEFAULT_REWARD_MODE
) -> tuple[str, list[tuple[str, str]]]:
    """The expert's episode, played on the live engine: first observation and (action, observation)."""
    env = WebShopEnv(max_steps=max_steps, reward=reward)
    first = env.reset(task)
    pairs = []
    for action in expert_actions(env.catalog, env.session.goal, max_steps):
        result = env.step(action)
        pairs.append((action, result.observation))
        if result.done:
            break
    env.close()
    return first, pairs
