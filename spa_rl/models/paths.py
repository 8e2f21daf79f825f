"""Tell a local model folder from a Hugging Face Hub id before transformers does.

``from_pretrained`` takes anything that is not an existing folder for a Hub id: a typo in a local path
costs a minute of network retries and ends in "check your internet connection", and a typo that happens
to name a real Hub repo downloads it. Every stage that loads a model or tokenizer from a user-given path
resolves it here first."""

from __future__ import annotations

import os
from pathlib import Path


class ModelPathError(ValueError):
    """A model path that names no usable local model folder."""


def looks_local(value: str) -> bool:
    """A value that can only mean a local path: absolute, relative ('.', '~'), Windows-style, deeper than
    'org/name', or whose first component is a folder here (``models/typo``, ``runs/...``)."""
    if value.startswith(("/", ".", "~")) or "\\" in value or value.count("/") > 1:
        return True
    first = value.split("/", 1)[0]
    return "/" in value and Path(first).is_dir()


def resolve_model_path(value: str | os.PathLike, flag: str = "--model", marker: str = "config.json") -> str:
    """The model folder ``value`` names (``~`` expanded), or ``value`` unchanged when it is a Hub id
    (a bare ``org/name`` whose ``org`` is no local folder). Raises ModelPathError naming ``flag``
    when a local-looking value is no folder, or a folder holds no ``marker`` file (a PEFT adapter:
    ``adapter_config.json``)."""
    raw = os.fspath(value)
    if not raw.strip():
        raise ModelPathError(f"{flag}: empty model path")
    path = Path(raw).expanduser()
    shown = f"{raw} ({path})" if raw.startswith("~") else raw
    if path.is_dir():
        if not (path / marker).is_file():
            raise ModelPathError(
                f"{flag}: {shown} is not a model folder (no {marker} in it); "
                f"pass the folder that holds {marker} and the weights"
            )
        return str(path) if raw.startswith("~") else raw  # as given: run fingerprints record it
    if path.exists():
        raise ModelPathError(f"{flag}: {shown} is a file, not a model folder")
    if looks_local(raw):
        raise ModelPathError(
            f"{flag}: no model folder {shown} (a local path, so it is not looked up on the Hugging Face Hub)"
        )
    if "/" not in raw:  # a bare name ("gpt2") is a legacy Hub id too, but here far likelier a missing folder
        raise ModelPathError(f"{flag}: no model folder {shown} (a Hugging Face Hub id is written org/name)")
    return raw
