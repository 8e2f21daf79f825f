"""Rollouts as estimator inputs: token ids, the position of each step's last token, and the target R;
plus the step-values file the estimator writes beside the rollouts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from spa_rl.agent.chat import render_chat
from spa_rl.agent.schema import RecordError, TrajectoryRecord, json_lines
from spa_rl.rewards import final_reward
from spa_rl.training import pad_right
from spa_rl.validate import is_finite_number


def encode_rollout(tokenizer: Any, rec: TrajectoryRecord, max_length: int | None) -> dict[str, Any]:
    """``step_pos``: index of the last token (end-of-turn) of each agent turn; steps cut off by
    ``max_length`` are missing (``len(step_pos) < n_steps``)."""
    rc = render_chat(tokenizer, rec.messages, train_from=rec.prefix_len, max_length=max_length)
    if len(rc.turn_ends) > rec.n_steps or (not rc.truncated and len(rc.turn_ends) != rec.n_steps):
        raise RecordError(
            f"{rec.task_id}#{rec.rollout}: {len(rc.turn_ends)} turn ends for {rec.n_steps} steps"
        )
    return {"input_ids": rc.input_ids, "step_pos": rc.turn_ends, "target": final_reward(rec)}


class StepCollator:
    """Right-pads a batch and flattens the step positions into (row, position) pairs."""

    def __init__(self, pad_token_id: int):
        self.pad_token_id = pad_token_id

    def __call__(self, feats: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        ids = [f["input_ids"] for f in feats]
        index = [(row, p) for row, f in enumerate(feats) for p in f["step_pos"]]
        return {
            "input_ids": pad_right(ids, self.pad_token_id),
            "attention_mask": pad_right([[1] * len(s) for s in ids], 0),
            "step_index": torch.tensor(index, dtype=torch.long).reshape(-1, 2),
            "step_row": torch.tensor([r for r, _ in index], dtype=torch.long),
            "target": torch.tensor([float(f["target"]) for f in feats]),
        }


def read_step_values(path: str | Path) -> dict[tuple[str, int], list[float]]:
    """``{(task_id, rollout): [c_t, ...]}`` from a step-values JSONL file (prm/infer.py)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"step values {path} do not exist (run prm/infer.py)")
    out: dict[tuple[str, int], list[float]] = {}
    for where, d in json_lines(path):
        if (
            not isinstance(d, dict)
            or not isinstance(d.get("task_id"), str)
            or not isinstance(d.get("rollout"), int)
        ):
            raise RecordError(f"{where}: need string 'task_id' and integer 'rollout'")
        v = d.get("values")
        if not isinstance(v, list) or not all(is_finite_number(x) for x in v):
            raise RecordError(f"{where}: field 'values' must be a list of finite numbers")
        out[(d["task_id"], d["rollout"])] = [float(x) for x in v]
    return out
