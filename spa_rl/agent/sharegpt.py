"""The expert-data hand-off file: ShareGPT records ``{id, conversations: [{from, value}]}``, the format
ETO and SPA-RL train on (``from`` is ``human`` or ``gpt``, alternating from a ``human`` entry and ending
with ``gpt``; a leading ``system`` entry is allowed).

One optional key extends it: ``context_turns``, the number of leading conversation entries that are
prompt (instruction and in-context example) rather than the expert's own turns. SFT trains only on
``gpt`` entries from that index on. Files without it (ETO's originals) train on every ``gpt`` entry. Records built here also carry ``icl_examples``, the
number of in-context examples their prompt holds (0 or 1; missing: 1, as in ETO's originals), which SFT
checks against its own setting.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from spa_rl.agent.prompts import validate_icl_examples
from spa_rl.agent.schema import RecordError, write_json_atomic

ROLE_OF = {"human": "user", "gpt": "assistant", "system": "system"}
FROM_OF = {v: k for k, v in ROLE_OF.items()}


def to_messages(record: dict[str, Any]) -> tuple[list[dict[str, str]], int]:
    """Chat messages of a (validated) record and the index of the first message to train on."""
    msgs = [{"role": ROLE_OF[c["from"]], "content": c["value"]} for c in record["conversations"]]
    return msgs, int(record.get("context_turns", 0))


def from_messages(record_id: str, messages: list[dict[str, str]], context_turns: int, **extra: Any) -> dict:
    conv = [{"from": FROM_OF[m["role"]], "value": m["content"]} for m in messages]
    return {"id": record_id, "conversations": conv, "context_turns": context_turns, **extra}


def validate_record(d: Any, where: str) -> dict[str, Any]:
    if not isinstance(d, dict):
        raise RecordError(f"{where}: a record must be an object")
    if not isinstance(d.get("id"), (str, int)) or isinstance(d.get("id"), bool):
        raise RecordError(f"{where}: field 'id' must be a string or integer")
    conv = d.get("conversations")
    if not isinstance(conv, list) or not conv:
        raise RecordError(f"{where}: field 'conversations' must be a non-empty list")
    for i, c in enumerate(conv):
        if not isinstance(c, dict) or c.get("from") not in ROLE_OF or not isinstance(c.get("value"), str):
            raise RecordError(
                f"{where}: conversations[{i}] must be {{from: human|gpt|system, value: str}}, got {c!r:.120}"
            )
        if c["from"] == "system" and i != 0:
            raise RecordError(f"{where}: conversations[{i}]: a system entry may only come first")
    ctx = d.get("context_turns", 0)
    if not isinstance(ctx, int) or isinstance(ctx, bool) or not 0 <= ctx < len(conv):
        raise RecordError(f"{where}: field 'context_turns' must be an integer in [0, {len(conv) - 1}]")
    if "icl_examples" in d:
        try:
            validate_icl_examples(d["icl_examples"], f"{where}: field 'icl_examples'")
        except ValueError as e:
            raise RecordError(str(e)) from None
    if not any(c["from"] == "gpt" for c in conv[ctx:]):
        raise RecordError(f"{where}: no gpt turn to learn from after the first {ctx} entries")
    # Turns alternate human, gpt, ... (after an optional system entry) and end with the expert's gpt turn:
    # a file with the roles swapped would otherwise train the model to write the environment's part.
    first = 1 if conv[0]["from"] == "system" else 0
    for i in range(first, len(conv)):
        want = "human" if (i - first) % 2 == 0 else "gpt"
        if conv[i]["from"] != want:
            raise RecordError(
                f"{where} (id {d['id']!r}): conversations[{i}] is from {conv[i]['from']!r} where {want!r} is "
                "expected (turns alternate human, gpt, ... from the first non-system entry)"
            )
    if conv[-1]["from"] != "gpt":
        raise RecordError(
            f"{where} (id {d['id']!r}): conversations[{len(conv) - 1}] is the last entry and is from "
            f"{conv[-1]['from']!r}; a conversation must end with the expert's gpt turn"
        )
    return d


def read_sharegpt(path: str | Path) -> list[dict[str, Any]]:
    """Read and validate a ShareGPT JSON file (a list of records; ``.jsonl`` with one per line also works)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"expert data {path} does not exist (build it with sft/build_expert_data.py)")
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix == ".jsonl":
            items = [
                (f"{path}:{n}", json.loads(ln)) for n, ln in enumerate(text.splitlines(), 1) if ln.strip()
            ]
        else:
            data = json.loads(text)
            if not isinstance(data, list):
                raise RecordError(f"{path}: expected a JSON list of records")
            items = [(f"{path}: record {i}", d) for i, d in enumerate(data)]
    except json.JSONDecodeError as e:
        raise RecordError(f"{path}: not valid JSON ({e.msg}, line {e.lineno})") from None
    out, seen = [], set()
    for where, d in items:
        validate_record(d, where)
        if d["id"] in seen:
            raise RecordError(f"{where}: duplicate id {d['id']!r}")
        seen.add(d["id"])
        out.append(d)
    if not out:
        raise RecordError(f"{path}: no records")
    return out


def write_sharegpt(path: str | Path, records: list[dict[str, Any]]) -> None:
    for i, d in enumerate(records):
        validate_record(d, f"record {i}")
    write_json_atomic(path, records)
