"""The policy interface: turn a batch of conversations into one assistant reply each."""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from typing import Protocol

Message = dict[str, str]


@dataclass(frozen=True)
class GenerationConfig:
    max_new_tokens: int = 128
    temperature: float = 0.0  # 0 means greedy decoding
    top_p: float = 1.0
    seed: int = 0  # seeds sampling; a batch drawn with the same seed and inputs is reproduced


@dataclass
class Generation:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str  # "stop" (end of turn), "length" (max_new_tokens), "context_limit" (prompt too long)


class Policy(Protocol):
    """``keys`` name the episode each conversation belongs to, so a backend may keep per-episode state
    (the ``hf`` backend's cross-turn cache); ``release`` is called when episodes end."""

    name: str

    def generate(
        self, conversations: list[list[Message]], cfg: GenerationConfig, keys: list[Hashable] | None = None
    ) -> list[Generation]: ...

    def release(self, keys: list[Hashable]) -> None: ...
