"""Prompts per environment: an instruction, one in-context example, and how a task is introduced.

A conversation is built as:
    user: instruction + example task      (the example, as real turns:)
    assistant: Thought/Action, user: observation, ...
    user: example's last observation + the real task's first observation
    assistant: ... (the agent's own turns start here)
``prefix_len`` in trajectory records counts the messages before the agent's first reply.
"""

from __future__ import annotations

from dataclasses import dataclass

from eval_agent.react import format_turn


@dataclass(frozen=True)
class PromptSpec:
    env: str
    instruction: str
    example_task: str  # the example's first observation
    example_turns: tuple[tuple[str, str, str], ...]  # (thought, action, observation)
    next_task_intro: str = "Now it is your turn. A new task begins."

    def build(self, first_observation: str) -> list[dict[str, str]]:
        """The message list up to and including the real task's first observation."""
        msgs = [{"role": "user", "content": f"{self.instruction}\n\nExample task.\n{self.example_task}"}]
        for i, (thought, action, obs) in enumerate(self.example_turns):
            msgs.append({"role": "assistant", "content": format_turn(thought, action)})
            if i < len(self.example_turns) - 1:
                msgs.append({"role": "user", "content": obs})
        last_obs = self.example_turns[-1][2]
        msgs.append({"role": "user", "content": f"{last_obs}\n\n{self.next_task_intro}\n{first_observation}"})
        return msgs


def get_prompt(env: str) -> PromptSpec:
    if env == "alfworld":
        from eval_agent.prompts.alfworld import PROMPT

        return PROMPT
    if env == "webshop":
        from eval_agent.prompts.webshop import PROMPT as WEBSHOP_PROMPT

        return WEBSHOP_PROMPT
    if env == "virtualhome":
        from eval_agent.prompts.virtualhome import PROMPT as VIRTUALHOME_PROMPT

        return VIRTUALHOME_PROMPT
    raise KeyError(f"no prompt for environment {env!r}")


__all__ = ["PromptSpec", "get_prompt"]
