"""Loading what a model folder holds and placing it: the tokenizer (left padding, a pad token), the device."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoTokenizer

from spa_rl.models.paths import resolve_model_path


def pick_device(device: str | None) -> torch.device:
    if device:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def load_tokenizer(model_path: str | Path):
    tok = AutoTokenizer.from_pretrained(resolve_model_path(model_path))  # a typo'd folder is no Hub id
    tok.padding_side = "left"
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok
