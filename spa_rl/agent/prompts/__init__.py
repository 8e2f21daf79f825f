"""Prompts per environment: an instruction, one in-context example, and how a task is introduced.

A conversation is built as (``icl_examples=1``, the paper's prompt):
    user: instruction + example task      (the example, as real turns:)
    assistant: Thought/Action, user: observation, ...
    user: example's last observation + the real task's first observation
    assistant: ... (the agent's own turns start here)
or, with ``icl_examples=0`` (no in-context example; SPA-RL's own data script drops the example before
the progress estimator):
    user: instruction + the real task's first observation
    assistant: ...
``prefix_len`` in trajectory records counts the messages before the agent's first reply.

The setting is recorded with everything it shapes (trajectory records' ``meta``, ShareGPT records, the
``spa_rl.json`` of trained model folders) and :func:`check_icl_examples` is the one check every stage
makes on its input.
"""

from __future__ import annotations

import importlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spa_rl.agent.react import format_turn

DEFAULT_ICL_EXAMPLES = 1  # the paper's prompt: instruction + one in-context example + task
ICL_SETTINGS = (0, 1)
MODEL_INFO_FILE = "spa_rl.json"  # written beside a trained model's weights: {"icl_examples": n, ...}


@dataclass(frozen=True)
class PromptSpec:
    env: str
    instruction: str
    example_task: str  # the example's first observation
    example_turns: tuple[tuple[str, str, str], ...]  # (thought, action, observation)
    next_task_intro: str = "Now it is your turn. A new task begins."
    task_intro: str = "The task begins."  # without an in-context example

    def build(self, first_observation: str, icl_examples: int = DEFAULT_ICL_EXAMPLES) -> list[dict[str, str]]:
        """The message list up to and including the real task's first observation, with
        ``icl_examples`` in-context examples (1: the paper's prompt; 0: instruction + task only)."""
        if validate_icl_examples(icl_examples) == 0:
            return [
                {"role": "user", "content": f"{self.instruction}\n\n{self.task_intro}\n{first_observation}"}
            ]
        msgs = [{"role": "user", "content": f"{self.instruction}\n\nExample task.\n{self.example_task}"}]
        for i, (thought, action, obs) in enumerate(self.example_turns):
            msgs.append({"role": "assistant", "content": format_turn(thought, action)})
            if i < len(self.example_turns) - 1:
                msgs.append({"role": "user", "content": obs})
        last_obs = self.example_turns[-1][2]
        msgs.append({"role": "user", "content": f"{last_obs}\n\n{self.next_task_intro}\n{first_observation}"})
        return msgs


def get_prompt(env: str) -> PromptSpec:
    """The environment's prompt: ``PROMPT`` in ``spa_rl.agent.prompts.<env>``."""
    from envs import env_spec

    return importlib.import_module(f"{__name__}.{env_spec(env).name}").PROMPT


class IclMismatch(ValueError):
    """An input made with the other in-context-example setting."""


def describe_icl(n: int) -> str:
    return "instruction + one in-context example + task" if n == 1 else "instruction + task, no example"


def validate_icl_examples(n: Any, where: str = "icl_examples") -> int:
    """``n`` if it is a supported setting (0 or 1), else a ValueError naming ``where``."""
    if not isinstance(n, int) or isinstance(n, bool) or n not in ICL_SETTINGS:
        raise ValueError(
            f"{where}: the number of in-context examples must be 0 or 1 (each environment has one "
            f"example), got {n!r}"
        )
    return n


def recorded_icl(d: dict | None, where: str) -> int:
    """The setting recorded in ``d`` (a record's ``meta``, a ShareGPT record, a model's spa_rl.json);
    missing: 1, the only setting that existed before it was recorded."""
    return validate_icl_examples(
        (d or {}).get("icl_examples", DEFAULT_ICL_EXAMPLES), f"{where}: icl_examples"
    )


def check_icl_examples(expected: int, found: int, source: str | Path, what: str) -> None:
    """The one check every stage makes on its input: ``what`` (in ``source``, a file or folder) was made
    with ``found`` in-context examples and this stage runs with ``expected``."""
    if found != expected:
        raise IclMismatch(
            f"{source}: {what} was made with icl_examples={found} ({describe_icl(found)}), but this stage "
            f"runs with icl_examples={expected} ({describe_icl(expected)}). Use input made with "
            f"icl_examples={expected}, or run the stage with --icl-examples {found} (shell: "
            f"ICL_EXAMPLES={found})."
        )


def check_records_icl(records, expected: int, source: str | Path, what: str = "the rollout") -> None:
    """:func:`check_icl_examples` on every trajectory record (or PPO record) of a file: ``meta``."""
    for r in records:
        where = f"{source} ({r.task_id} rollout {r.rollout})"
        check_icl_examples(expected, recorded_icl(r.meta, where), where, what)


def read_model_info(model: str | Path) -> dict | None:
    """A model folder's ``spa_rl.json`` (None: the folder has none, e.g. an untrained base model, or
    ``model`` is a served model's name)."""
    path = Path(model) / MODEL_INFO_FILE
    if not path.is_file():
        return None
    try:
        info = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(info, dict):
        raise ValueError(f"{path}: expected a JSON object")
    return info


def write_model_info(folder: str | Path, icl_examples: int, **extra: Any) -> None:
    info = {"icl_examples": validate_icl_examples(icl_examples), **extra}
    (Path(folder) / MODEL_INFO_FILE).write_text(json.dumps(info, indent=2) + "\n")


def check_model_icl(model: str | Path, expected: int) -> int | None:
    """Refuse a model folder whose spa_rl.json records the other setting; accept one without it.
    Returns the recorded setting (None: none recorded)."""
    info = read_model_info(model)
    if info is None:
        return None
    path = Path(model) / MODEL_INFO_FILE
    found = recorded_icl(info, str(path))
    check_icl_examples(expected, found, path, "the model")
    return found


__all__ = [
    "DEFAULT_ICL_EXAMPLES",
    "ICL_SETTINGS",
    "MODEL_INFO_FILE",
    "IclMismatch",
    "PromptSpec",
    "check_icl_examples",
    "check_model_icl",
    "check_records_icl",
    "get_prompt",
    "read_model_info",
    "recorded_icl",
    "validate_icl_examples",
    "write_model_info",
]
