"""Expert conversations for SFT: the environment's expert episode, written as the agent's ReAct turns.

The original ETO / SPA-RL data had thoughts written by GPT-4. Offline we write short thoughts from the
expert's plan (what it will do next and why), with templates per environment. They are plainer than
GPT-4's, and they know the plan in hindsight (e.g. which place holds the object), as ETO's did.
"""

from __future__ import annotations

import importlib

from envs import Task, env_spec, expert_trajectory
from spa_rl.agent.prompts import DEFAULT_ICL_EXAMPLES, get_prompt
from spa_rl.agent.react import format_turn


def write_thoughts(env: str, first_observation: str, actions: list[str]) -> list[str]:
    """The expert's thoughts: ``thoughts`` in ``spa_rl.agent.experts.<env>``."""
    return importlib.import_module(f"{__name__}.{env_spec(env).name}").thoughts(first_observation, actions)


def expert_messages(task: Task, icl_examples: int = DEFAULT_ICL_EXAMPLES) -> tuple[list[dict[str, str]], int]:
    """The whole expert conversation exactly as the agent would see it at evaluation (same prompt, with
    ``icl_examples`` in-context examples), and the index of the expert's first turn (``prefix_len``)."""
    first_obs, pairs = expert_trajectory(task)
    if not pairs:
        raise ValueError(f"{task.env} task {task.task_id!r}: the expert trajectory is empty")
    messages = get_prompt(task.env).build(first_obs, icl_examples)
    prefix_len = len(messages)
    actions = [a for a, _ in pairs]
    for k, (thought, (action, obs)) in enumerate(
        zip(write_thoughts(task.env, first_obs, actions), pairs, strict=True)
    ):
        messages.append({"role": "assistant", "content": format_turn(thought, action)})
        if k < len(pairs) - 1:  # the final observation is never shown to the agent
            messages.append({"role": "user", "content": obs})
    return messages, prefix_len
