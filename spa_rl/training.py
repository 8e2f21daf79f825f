"""Pieces every training recipe shares: padding collation, the SFT loss at labelled positions, atomic
model saving, and the training log. (Mixed precision by hardware: spa_rl/models/precision.py.)"""

from __future__ import annotations

import json
import math
import os
import shutil
import warnings
from pathlib import Path
from typing import Any

import torch

from spa_rl.agent.schema import write_jsonl_atomic

IGNORE_INDEX = -100  # label value the loss skips


# Trainer settings that change the weights, for run fingerprints (the rest: logging, saving, output places).
TRAINING_SETTINGS = (
    "learning_rate", "num_train_epochs", "max_steps", "per_device_train_batch_size",
    "gradient_accumulation_steps", "warmup_steps", "warmup_ratio", "lr_scheduler_type", "weight_decay",
    "max_grad_norm", "adam_beta1", "adam_beta2", "adam_epsilon", "optim", "seed", "data_seed",
    "gradient_checkpointing", "world_size",
)  # fmt: skip


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
    ~80% of an ALFWorld expert trajectory's tokens (bench/bench_sft.py counts them)."""
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


def recover_published(final: Path) -> None:
    """Undo a kill between publish_dir's two renames: the previous complete folder goes back in place."""
    old = final.with_name(final.name + ".old")
    if not final.exists() and old.exists():
        os.replace(old, final)


def publish_dir(tmp: Path, final: Path) -> None:
    """Move a finished output folder into place (the previous one, if any, is replaced; see
    recover_published for a kill in between)."""
    if final.exists():
        old = final.with_name(final.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, final)


def json_safe(obj: Any, where: str, key: str = "") -> Any:
    """``obj`` with every NaN / infinite float replaced by None, warning with ``where`` and the key.

    For logs only: a log records what happened, and refusing a NaN loss would stop a run (perhaps hours
    in) over a diagnostic figure, while json.dumps' default would write NaN / Infinity, which is not JSON
    and which strict readers refuse. Hand-off files (episodes, step values, PPO data) refuse non-finite
    numbers instead: later stages compute with them."""
    if isinstance(obj, float) and not math.isfinite(obj):
        warnings.warn(f"{where}: '{key}' is {obj}; written as null", RuntimeWarning, stacklevel=2)
        return None
    if isinstance(obj, dict):
        return {k: json_safe(v, where, f"{key}.{k}" if key else str(k)) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v, where, f"{key}[{i}]") for i, v in enumerate(obj)]
    return obj


def write_log_history(path: str | Path, history: list[dict[str, Any]]) -> None:
    lines = [json.dumps(json_safe(h, f"{path} entry {i}"), allow_nan=False) for i, h in enumerate(history)]
    write_jsonl_atomic(path, lines)


class ListDataset(torch.utils.data.Dataset):
    """A list of ready examples as a torch dataset."""

    def __init__(self, items: list):
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int):
        return self.items[i]
