"""Where the project keeps unpacked data and models (both git-ignored)."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def data_dir() -> Path:
    """Root of the unpacked environment data (``$SPA_DATA_DIR``, default ``<repo>/data``)."""
    return Path(os.environ.get("SPA_DATA_DIR", REPO_ROOT / "data"))


def models_dir() -> Path:
    """Root of the prepared model folders (``$SPA_MODELS_DIR``, default ``<repo>/models``)."""
    return Path(os.environ.get("SPA_MODELS_DIR", REPO_ROOT / "models"))


def default_mirror() -> Path | None:
    """The offline data mirror: ``$SPA_DATA_MIRROR``, else ``../shared/data`` beside the repo if present."""
    env = os.environ.get("SPA_DATA_MIRROR")
    if env:
        return Path(env)
    sibling = REPO_ROOT.parent / "shared" / "data"
    return sibling if sibling.is_dir() else None
