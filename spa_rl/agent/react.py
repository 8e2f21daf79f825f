"""The ReAct turn format: ``Thought: ...`` then ``Action: ...``; formatting and a tolerant parser."""

from __future__ import annotations

import re
from dataclasses import dataclass

# Answer to a reply without an action; the step counts, is not grounded, and the env is not stepped.
INVALID_FORMAT_OBSERVATION = (
    "Invalid format: no action found. Reply with 'Thought: <reasoning>' and then 'Action: <one action>'."
)
_ACTION = re.compile(r"^[ \t>*#-]*action[ \t]*[:：][ \t]*(.*?)[ \t]*$", re.IGNORECASE | re.MULTILINE)
_THOUGHT = re.compile(r"^[ \t>*#-]*thought[ \t]*[:：][ \t]*", re.IGNORECASE | re.MULTILINE)
# A model that keeps going after its action starts writing the environment's part; cut it there.
_CONTINUATION = re.compile(r"^[ \t]*(observation|obs)[ \t]*:", re.IGNORECASE | re.MULTILINE)


@dataclass(frozen=True)
class ParsedReply:
    thought: str
    action: str | None  # None: the reply has no usable action


def format_turn(thought: str, action: str) -> str:
    return f"Thought: {thought.strip()}\nAction: {action.strip()}"


def truncate_reply(text: str) -> str:
    """Drop anything after the first action line, and any invented 'Observation:' continuation."""
    m = _CONTINUATION.search(text)
    if m:
        text = text[: m.start()]
    a = _ACTION.search(text)
    if a:
        text = text[: a.end()]
    return text.strip()


def parse_reply(text: str) -> ParsedReply:
    """Parse a model reply. Tolerates surrounding whitespace, any letter case, markdown bullets and a
    missing 'Thought:' label; the first 'Action:' line with text wins."""
    text = truncate_reply(text)
    action = None
    for m in _ACTION.finditer(text):
        candidate = m.group(1).strip().strip("`'\"").strip()
        if candidate:
            action = candidate
            break
    a = _ACTION.search(text)
    thought_part = text[: a.start()] if a else text
    thought = _THOUGHT.sub("", thought_part, count=1).strip()
    return ParsedReply(thought=thought, action=action)
