"""The trajectory record: one line of a rollout JSONL file, written by evaluation and exploration and
read by every later stage. Reading validates each line and names the file, line and field at fault."""

from __future__ import annotations

import json
import math
import os
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

FINISH_REASONS = ("success", "done", "max_steps", "context_limit")


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
        return json.dumps(asdict(self), ensure_ascii=False)


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
                reward=float(_need(s, "reward", (int, float), w)),
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
        reward=float(_need(d, "reward", (int, float), where)),
        success=_need(d, "success", bool, where),
        n_steps=_need(d, "n_steps", int, where),
        finish_reason=_need(d, "finish_reason", str, where),
        meta=d.get("meta") or {},
    )
    if not math.isfinite(rec.reward):
        raise RecordError(f"{where}: field 'reward' must be finite")
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
    write_text_atomic(path, json.dumps(obj, indent=2, ensure_ascii=False) + "\n")
