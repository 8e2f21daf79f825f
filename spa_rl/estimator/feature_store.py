"""A frozen backbone's features on disk: the last hidden state at every step position of each rollout,
written by prm/train.py and read by prm/infer.py and by a rerun of train.py (folds switched on later), so
that the backbone, by far the costliest part of the stage on a CPU, reads each rollout once.

A rollout's key is the SHA-256 of its exact token ids and step positions, so a hit is the same input
whatever file or split it came from. The store's identity (the backbone's files and the compute dtype)
is kept in the safetensors header: a store of another backbone or dtype is ignored, never mixed in. Only a
``frozen`` backbone's features are stored; a trained one (``lora``, ``full``) changes them.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from spa_rl.fingerprint import input_identity

FILE = "features.safetensors"
FORMAT = 1


def feature_key(item: Mapping[str, Any]) -> str:
    """The key of an encoded rollout (``encode_rollout``'s output): its token ids and step positions."""
    return hashlib.sha256(json.dumps([item["input_ids"], item["step_pos"]]).encode()).hexdigest()


def store_identity(base_model: str | Path, compute_dtype: str) -> str:
    ident = {"format": FORMAT, "backbone": input_identity(base_model), "compute_dtype": compute_dtype}
    return json.dumps(ident, sort_keys=True)


def load_features(
    directory: str | Path, base_model: str | Path, compute_dtype: str
) -> dict[str, torch.Tensor]:
    """The stored features of this backbone and dtype; empty when there is no store, or it belongs to
    another backbone or dtype, or it cannot be read (a store is a cache: it is written again)."""
    path = Path(directory) / FILE
    if not path.exists():
        return {}
    try:
        with safe_open(str(path), framework="pt") as f:
            if (f.metadata() or {}).get("identity") != store_identity(base_model, compute_dtype):
                return {}
            return {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as e:
        print(f"ignoring the feature store {path}: {e}")
        return {}


def save_features(
    directory: str | Path, base_model: str | Path, compute_dtype: str, feats: Mapping[str, torch.Tensor]
) -> Path:
    """Write the store atomically (one file, identity in its header)."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    path, tmp = d / FILE, d / f".{FILE}.tmp{os.getpid()}"
    tensors = {k: v.detach().float().contiguous() for k, v in feats.items()}
    save_file(tensors, str(tmp), metadata={"identity": store_identity(base_model, compute_dtype)})
    tmp.replace(path)
    return path
