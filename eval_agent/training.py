"""Pieces every training recipe shares: padding collation, the SFT loss at labelled positions, atomic
model saving, and the training log. (Mixed precision by hardware: eval_agent/precision.py.)"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch

from eval_agent.schema import write_jsonl_atomic

IGNORE_INDEX = -100  # label value the loss skips


def pad_right(seqs: list[list[int]], value: int) -> torch.Tensor:
    width = max(len(s) for s in seqs)
    return torch.tensor([list(s) + [value] * (width - len(s)) for s in seqs], dtype=torch.long)


class CausalLMCollator:
    """Right-pads ``input_ids`` / ``labels`` and builds the attention mask."""

    def __init__(self, pad_token_id: int):
        self.pad_token_id = pad_token_id

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        ids = [f["input_ids"] for f in features]
        return {
            "input_ids": pad_right(ids, self.pad_token_id),
            "labels": pad_right([f["labels"] for f in features], IGNORE_INDEX),
            "attention_mask": pad_right([[1] * len(s) for s in ids], 0),
        }


def labelled_positions_loss(
    model: torch.nn.Module, inputs: dict[str, torch.Tensor], num_items_in_batch: int | None = None
) -> torch.Tensor:
    """The causal-LM loss, with logits computed only where a label follows (the expert's turns).

    The same value as ``model(**inputs, labels=labels).loss``: the output layer (about a fifth of a
    135M model's compute, 49k vocabulary) and the softmax then skip the prompt and observation tokens,
    ~80% of an ALFWorld expert trajectory's tokens (scripts/bench_sft.py counts them)."""
    labels = inputs["labels"]
    keep = (labels[:, 1:] != IGNORE_INDEX).any(dim=0).nonzero().squeeze(-1)  # positions predicting a label
    out = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"], logits_to_keep=keep)
    unwrapped = getattr(model, "module", model)
    return unwrapped.loss_function(
        logits=out.logits,
        labels=None,
        shift_labels=labels[:, keep + 1],
        vocab_size=unwrapped.config.get_text_config().vocab_size,
        num_items_in_batch=num_items_in_batch,
    )


def last_checkpoint(directory: str | Path) -> str | None:
    """The newest ``checkpoint-N`` folder under ``directory`` that finished saving, if any."""
    d = Path(directory)
    if not d.is_dir():
        return None
    done = [
        p for p in d.glob("checkpoint-*") if (p / "trainer_state.json").exists() and p.name[11:].isdigit()
    ]
    return str(max(done, key=lambda p: int(p.name[11:]))) if done else None


def publish_dir(tmp: Path, final: Path) -> None:
    """Move a finished output folder into place (the previous one, if any, is replaced)."""
    if final.exists():
        old = final.with_name(final.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, final)


def write_log_history(path: str | Path, history: list[dict[str, Any]]) -> None:
    write_jsonl_atomic(path, [json.dumps(h) for h in history])


class ListDataset(torch.utils.data.Dataset):
    """A list of ready examples as a torch dataset."""

    def __init__(self, items: list):
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int):
        return self.items[i]
