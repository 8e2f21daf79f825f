"""The trajectory record: one line of a rollout JSONL file, written by evaluation and exploration and
read by every later stage. Reading validates each line and names the file, line and field at fault."""

from __future__ import annotations

import json
import os
import re
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

FINISH_REASONS = ("success", "done", "max_steps", "context_limit")
# meta field of a record whose text held lone UTF-16 surrogates (which UTF-8 cannot encode): how many
# were replaced by U+FFFD when it was written.
SURROGATES_FIELD = "lone_surrogates_replaced"
_SURROGATE = re.compile("[\ud800-\udfff]")


class RecordError(ValueError):
    """A malformed record in a hand-off file."""


@dataclass
class StepRecord:
    reply: str  # the assistant message as kept in the conversation
    action: str | None  # the parsed action (None: the reply had no action)
    observation: str  # what the environment (or the format check) answered
    grounded: bool  # the environment accepted the action
    reward: float  # the environment's reward for this step


@dataclass
class TrajectoryRecord:
    env: str
    split: str
    task_id: str
    task_type: str | None
    rollout: int  # index of this rollout among the task's rollouts
    messages: list[dict[str, str]]  # prompt, in-context example (unless icl_examples 0), task, agent turns
    prefix_len: int  # messages before the agent's first reply
    steps: list[StepRecord]
    reward: float  # final reward (ALFWorld: 1.0 on success)
    success: bool
    n_steps: int
    finish_reason: str  # one of FINISH_REASONS
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, int]:
        return (self.task_id, self.rollout)

    def to_json(self) -> str:
        d, fixed = replace_lone_surrogates(asdict(self))
        if fixed:
            d["meta"][SURROGATES_FIELD] = d["meta"].get(SURROGATES_FIELD, 0) + sum(fixed.values())
            warn_surrogates(f"{self.env} task {self.task_id!r} rollout {self.rollout}", fixed)
        return json.dumps(d, ensure_ascii=False)


def fix_surrogates(text: str) -> tuple[str, int]:
    """``text`` with each lone surrogate replaced by U+FFFD (a split pair is joined), and how many were
    replaced. A model's reply can hold one (an OpenAI-compatible server may send ``"\\ud800"``), and
    UTF-8 (the record files, httpx's request bodies) refuses it."""
    if not _SURROGATE.search(text):
        return text, 0
    fixed = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return fixed, fixed.count("\ufffd") - text.count("\ufffd")


def replace_lone_surrogates(obj: Any, where: str = "") -> tuple[Any, dict[str, int]]:
    """A copy of the JSON value ``obj`` with lone surrogates replaced in every string (keys too), and
    ``{field path: count}`` of the strings that held some (e.g. ``steps[2].reply``)."""
    fixed: dict[str, int] = {}

    def walk(v: Any, at: str) -> Any:
        if isinstance(v, str):
            v, n = fix_surrogates(v)
            if n:
                fixed[at or "<value>"] = fixed.get(at or "<value>", 0) + n
            return v
        if isinstance(v, dict):
            out = {}
            for k, x in v.items():
                key = walk(k, f"{at}.<key>" if at else "<key>") if isinstance(k, str) else k
                out[key] = walk(x, f"{at}.{key}" if at else str(key))
            return out
        if isinstance(v, (list, tuple)):
            return [walk(x, f"{at}[{i}]") for i, x in enumerate(v)]
        return v

    return walk(obj, where), fixed


def warn_surrogates(what: str, fixed: dict[str, int]) -> None:
    """Say on stderr that ``what`` was written with lone surrogates replaced (once per record/file)."""
    fields = ", ".join(list(fixed)[:5]) + (f" and {len(fixed) - 5} more" if len(fixed) > 5 else "")
    print(
        f"warning: {what}: {sum(fixed.values())} lone surrogate(s) replaced by U+FFFD in {fields}",
        file=sys.stderr,
        flush=True,
    )


def _need(d: dict, name: str, types: type | tuple[type, ...], where: str) -> Any:
    if name not in d:
        raise RecordError(f"{where}: missing field '{name}'")
    v = d[name]
    allowed = types if isinstance(types, tuple) else (types,)
    # JSON true/false must not pass as a number.
    if not isinstance(v, allowed) or (isinstance(v, bool) and bool not in allowed):
        names = "/".join(t.__name__ for t in allowed)
        raise RecordError(f"{where}: field '{name}' must be {names}, got {type(v).__name__}")
    return v


# Every environment here rewards in [0, 1], per step and final (ALFWorld, VirtualHome: 0 or 1; WebShop:
# its score, capped at 1); anything else (NaN, 1e30) would reach PPO's losses as NaN / Infinity.
REWARD_RANGE = (0.0, 1.0)


def _reward(d: dict, where: str) -> float:
    v = _need(d, "reward", (int, float), where)
    lo, hi = REWARD_RANGE
    if not lo <= v <= hi:  # NaN fails every comparison; a huge JSON int compares without overflowing
        raise RecordError(f"{where}: field 'reward' must be a finite number in [{lo}, {hi}], got {v!r}")
    return float(v)


def record_from_dict(d: Any, where: str) -> TrajectoryRecord:
    if not isinstance(d, dict):
        raise RecordError(f"{where}: a record must be a JSON object")
    steps_raw = _need(d, "steps", list, where)
    steps = []
    for i, s in enumerate(steps_raw):
        w = f"{where}: steps[{i}]"
        if not isinstance(s, dict):
            raise RecordError(f"{w}: must be an object")
        action = s.get("action")
        if action is not None and not isinstance(action, str):
            raise RecordError(f"{w}: field 'action' must be a string or null")
        steps.append(
            StepRecord(
                reply=_need(s, "reply", str, w),
                action=action,
                observation=_need(s, "observation", str, w),
                grounded=_need(s, "grounded", bool, w),
                reward=_reward(s, w),
            )
        )
    messages = _need(d, "messages", list, where)
    for i, m in enumerate(messages):
        if not (
            isinstance(m, dict)
            and m.get("role") in ("system", "user", "assistant")
            and isinstance(m.get("content"), str)
        ):
            raise RecordError(f"{where}: messages[{i}] must be {{role: system|user|assistant, content: str}}")
    task_type = d.get("task_type")
    if task_type is not None and not isinstance(task_type, str):
        raise RecordError(f"{where}: field 'task_type' must be a string or null")
    rec = TrajectoryRecord(
        env=_need(d, "env", str, where),
        split=_need(d, "split", str, where),
        task_id=_need(d, "task_id", str, where),
        task_type=task_type,
        rollout=_need(d, "rollout", int, where),
        messages=messages,
        prefix_len=_need(d, "prefix_len", int, where),
        steps=steps,
        reward=_reward(d, where),
        success=_need(d, "success", bool, where),
        n_steps=_need(d, "n_steps", int, where),
        finish_reason=_need(d, "finish_reason", str, where),
        meta=_need(d, "meta", dict, where) if d.get("meta") is not None else {},
    )
    n_fixed = rec.meta.get(SURROGATES_FIELD, 0)
    if not isinstance(n_fixed, int) or isinstance(n_fixed, bool) or n_fixed < 0:
        raise RecordError(f"{where}: field 'meta.{SURROGATES_FIELD}' must be a count >= 0, got {n_fixed!r}")
    if rec.n_steps != len(rec.steps):
        raise RecordError(f"{where}: field 'n_steps' is {rec.n_steps} but there are {len(rec.steps)} steps")
    if rec.finish_reason not in FINISH_REASONS:
        raise RecordError(
            f"{where}: field 'finish_reason' must be one of {FINISH_REASONS}, got {rec.finish_reason!r}"
        )
    agent_turns = [m for m in messages[rec.prefix_len :] if m["role"] == "assistant"]
    if not 0 <= rec.prefix_len <= len(messages) or len(agent_turns) != len(rec.steps):
        raise RecordError(
            f"{where}: field 'prefix_len' ({rec.prefix_len}) leaves {len(agent_turns)} agent turns for {len(rec.steps)} steps"
        )
    return rec


def read_records(path: str | Path, repair_torn_tail: bool = False) -> list[TrajectoryRecord]:
    """Read and validate a rollout JSONL file.

    A run killed mid-write can leave a last line without its newline. With ``repair_torn_tail`` that
    line is cut off the file (the rollout is simply redone); otherwise it is an error like any other.
    """
    path = Path(path)
    if not path.exists():
        return []
    raw = path.read_bytes()
    if raw and not raw.endswith(b"\n"):
        cut = raw.rfind(b"\n") + 1
        if not repair_torn_tail:
            line = raw.count(b"\n") + 1
            raise RecordError(f"{path}:{line}: incomplete last line (the writer was interrupted)")
        with open(path, "r+b") as f:
            f.truncate(cut)
        raw = raw[:cut]
    records, seen = [], set()
    for where, d in json_lines(path, raw.decode("utf-8")):
        rec = record_from_dict(d, where)
        if rec.key in seen:
            raise RecordError(f"{where}: duplicate record for task {rec.task_id!r} rollout {rec.rollout}")
        seen.add(rec.key)
        records.append(rec)
    return records


class RecordWriter:
    """Append-only writer: each record is one line, flushed and fsynced, so a kill loses at most the
    episodes still running."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._f = open(self.path, "a", encoding="utf-8")

    def write(self, rec: TrajectoryRecord) -> None:
        self._f.write(rec.to_json() + "\n")
        self._f.flush()
        os.fsync(self._f.fileno())

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> RecordWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def json_lines(path: str | Path, text: str | None = None):
    """Yield ``("<path>:<line>", object)`` for every non-blank line of a JSONL file (or of ``text``);
    a line that is not JSON raises RecordError naming the file and line."""
    if text is None:
        text = Path(path).read_text(encoding="utf-8")
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{n}"
        try:
            yield where, json.loads(line)
        except json.JSONDecodeError as e:
            raise RecordError(f"{where}: not valid JSON ({e.msg})") from None


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write to a temporary file beside ``path`` and rename it into place (no torn file on a kill)."""
    path = Path(path)
    text, n = fix_surrogates(text)
    if n:  # the last guard: lines dumped with ensure_ascii=False (PPORecord.to_json) hold them raw
        warn_surrogates(str(path), {"<text>": n})
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_jsonl_atomic(path: str | Path, lines: list[str]) -> None:
    write_text_atomic(path, "".join(ln + "\n" for ln in lines))


def command_line() -> str:
    """This process's command (``python script.py --flags``), recorded in results files."""
    return " ".join([Path(sys.executable).name, *sys.argv])


def write_json_atomic(path: str | Path, obj: Any) -> None:
    obj, fixed = replace_lone_surrogates(obj)
    if fixed:
        warn_surrogates(str(path), fixed)
    write_text_atomic(path, json.dumps(obj, indent=2, ensure_ascii=False) + "\n")
