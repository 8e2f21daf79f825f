"""Chat rendering that works with any tokenizer chat template.

SFT, the progress estimator and PPO all need, for a conversation: its token ids, a mask of the
assistant tokens to learn from, and the index of the last token of each assistant turn (where a
step's value is read and its reward placed). The template is treated as a black box: we render growing
prefixes of the conversation, find where each assistant turn starts and ends in the text, and tokenize
the pieces between those boundaries separately so no token straddles a turn boundary.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

Message = dict[str, str]


class ChatTemplateError(ValueError):
    """The tokenizer's chat template cannot be used for per-turn rendering."""


@dataclass
class RenderedChat:
    input_ids: list[int]
    assistant_mask: list[bool]  # True on the tokens of the trainable assistant turns
    turn_ends: list[int]  # index of the last token (the end-of-turn token) of each trainable turn
    turn_starts: list[int]  # index of the first token of each trainable turn
    truncated: bool = False  # max_length cut the conversation; turns cut off are dropped


def _template(tokenizer: Any, messages: list[Message], add_generation_prompt: bool) -> str:
    if not messages and add_generation_prompt:
        return ""
    return tokenizer.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=add_generation_prompt
    )


def render_prompt(tokenizer: Any, messages: list[Message]) -> str:
    """The text a model is given to write the next assistant turn."""
    if getattr(tokenizer, "chat_template", None) is None:
        raise ChatTemplateError(f"tokenizer {getattr(tokenizer, 'name_or_path', '?')} has no chat template")
    return _template(tokenizer, messages, add_generation_prompt=True)


def render_chat(
    tokenizer: Any, messages: list[Message], train_from: int = 0, max_length: int | None = None
) -> RenderedChat:
    """Token ids, assistant mask and turn boundaries of ``messages``.

    Only assistant messages with index >= ``train_from`` are masked in and reported (earlier ones, e.g.
    an in-context example, are context). The mask covers each turn's content and its end-of-turn token.
    """
    if getattr(tokenizer, "chat_template", None) is None:
        raise ChatTemplateError(f"tokenizer {getattr(tokenizer, 'name_or_path', '?')} has no chat template")
    for i, m in enumerate(messages):
        if m.get("role") not in ("system", "user", "assistant") or not isinstance(m.get("content"), str):
            raise ValueError(f"message {i} must have role system/user/assistant and string content: {m!r}")
    full = _template(tokenizer, messages, add_generation_prompt=False)
    spans: list[tuple[int, int]] = []
    for i, m in enumerate(messages):
        if m["role"] != "assistant" or i < train_from:
            continue
        before = _template(tokenizer, messages[:i], add_generation_prompt=True)
        upto = _template(tokenizer, messages[: i + 1], add_generation_prompt=False)
        if not full.startswith(before) or not full.startswith(upto) or len(upto) <= len(before):
            raise ChatTemplateError(
                f"the chat template does not render message {i} as a prefix of the whole conversation "
                "(templates that rewrite earlier turns, e.g. by dropping past reasoning, are not supported)"
            )
        end = len(upto.rstrip())  # keep the end-of-turn marker, drop the newline after it
        spans.append((len(before), end))

    ids: list[int] = []
    mask: list[bool] = []
    starts: list[int] = []
    ends: list[int] = []
    pos = 0
    for s, e in spans:
        ids += _encode(tokenizer, full[pos:s])
        mask += [False] * (len(ids) - len(mask))
        piece = _encode(tokenizer, full[s:e])
        starts.append(len(ids))
        ids += piece
        mask += [True] * len(piece)
        ends.append(len(ids) - 1)
        pos = e
    tail = _encode(tokenizer, full[pos:])
    ids += tail
    mask += [False] * len(tail)

    truncated = False
    if max_length is not None and len(ids) > max_length:
        truncated = True
        ids, mask = ids[:max_length], mask[:max_length]
        keep = [k for k, e in enumerate(ends) if e < max_length]
        # A turn cut in the middle is not a whole step: unmask its remainder.
        for k, s in enumerate(starts):
            if k not in keep:
                for j in range(s, min(max_length, len(mask))):
                    mask[j] = False
        starts, ends = [starts[k] for k in keep], [ends[k] for k in keep]
    return RenderedChat(ids, mask, ends, starts, truncated)


def _encode(tokenizer: Any, text: str) -> list[int]:
    if not text:
        return []
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


@lru_cache(maxsize=16)
def _end_of_turn_text(tokenizer: Any) -> str:
    probe = [{"role": "user", "content": "u"}, {"role": "assistant", "content": "XQZXQZ"}]
    text = _template(tokenizer, probe, add_generation_prompt=False)
    after = text.split("XQZXQZ", 1)[1]
    return after.strip().split("\n")[0].strip() if after.strip() else ""


def end_of_turn_ids(tokenizer: Any) -> list[int]:
    """Token ids that end an assistant turn: the template's end-of-turn token (e.g. ``<|im_end|>``,
    ``<|eot_id|>``) when it is a single token, plus the tokenizer's eos."""
    out: list[int] = []
    marker = _end_of_turn_text(tokenizer)
    if marker:
        enc = _encode(tokenizer, marker)
        if len(enc) == 1:
            out.append(enc[0])
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in out:
        out.append(tokenizer.eos_token_id)
    return out
