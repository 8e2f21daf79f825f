"""Run fingerprints and output locks: a stage resumes, skips or reports an output folder only when it was
written with the same settings and inputs, and only one run writes a folder at a time.

A fingerprint is the JSON of what determines a stage's output: its settings (the config, less the knobs
that change speed only) and the identity of every input file or folder (size and SHA-256; files over
64 MiB are hashed on their first and last 4 MiB plus size, so a 3B model is identified in a second).
It is written to ``<output>/fingerprint.json`` before the stage writes anything else. On a rerun:

- same fingerprint: the stage resumes (or skips, when its final output exists);
- other fingerprint: the stage stops and names every differing setting, with the two ways out (a new
  output folder, or ``--overwrite``, which removes the folder's contents and starts over);
- a non-empty folder without a fingerprint (written by hand or by an older version): refused likewise.

Outputs that are a deterministic function of their inputs (estimator data, step values, fused rewards, a
merged model) are instead written again when their fingerprint changed: that loses nothing that could not
be recomputed, and the stages that train or sample downstream still refuse the changed input.

    with claim_output(out, "sft", settings, {"data": path, "model": folder}, overwrite=False):
        ...  # the folder is locked and fingerprinted here
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from spa_rl.agent.schema import write_json_atomic

FINGERPRINT = "fingerprint.json"
LOCK = ".lock"
_WHOLE_HASH_LIMIT = 64 << 20
_PART = 4 << 20
# Files in a model or data folder that never change what a stage computes from it.
_IGNORED_NAMES = {FINGERPRINT, LOCK, "train_summary.json", "summary.json", "README.md"}


class OutputConflict(SystemExit):
    """An output folder holds another configuration's work, or another run is writing it."""


def file_identity(path: Path) -> dict[str, Any]:
    size = path.stat().st_size
    h = hashlib.sha256()
    with path.open("rb") as f:
        if size <= _WHOLE_HASH_LIMIT:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        else:
            h.update(f.read(_PART))
            f.seek(size - _PART)
            h.update(f.read(_PART))
    return {"size": size, "sha256": h.hexdigest()[:16]}


def input_identity(path: str | Path | None) -> Any:
    """A file's identity, a folder's (one entry per file, recursively), or the value itself when it is not
    a local path (a Hub id or a served model name)."""
    if path is None or path == "":
        return None
    p = Path(path)
    if p.is_file():
        return file_identity(p)
    if p.is_dir():
        return {
            str(f.relative_to(p)): file_identity(f)
            for f in sorted(p.rglob("*"))
            if f.is_file() and f.name not in _IGNORED_NAMES and not f.name.startswith(".")
        }
    return {"name": str(path)}


def make_fingerprint(
    stage: str, settings: Mapping[str, Any], inputs: Mapping[str, str | Path | None]
) -> dict:
    return {
        "stage": stage,
        "settings": json.loads(json.dumps(dict(settings), default=str)),
        "inputs": {k: input_identity(v) for k, v in inputs.items()},
    }


def differences(old: dict, new: dict) -> list[str]:
    """Human-readable differences between two fingerprints, one line per setting or input."""
    lines = []
    if old.get("stage") != new.get("stage"):
        lines.append(f"stage: {old.get('stage')!r} -> {new.get('stage')!r}")
    for part in ("settings", "inputs"):
        a, b = old.get(part, {}), new.get(part, {})
        for k in sorted(set(a) | set(b)):
            if a.get(k) != b.get(k):
                if part == "inputs":
                    lines.append(f"input {k}: its content differs")
                else:
                    lines.append(f"{k}: {a.get(k, '(unset)')!r} -> {b.get(k, '(unset)')!r}")
    return lines


def clear_folder(out: Path, keep: frozenset[str] = frozenset()) -> None:
    """Remove everything in ``out`` except the lock file and the names in ``keep`` (``--overwrite``)."""
    for p in out.iterdir():
        if p.name == LOCK or p.name in keep:
            continue
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        else:
            p.unlink()


@contextlib.contextmanager
def locked(out: Path, lock_name: str = LOCK) -> Iterator[None]:
    """An exclusive lock on the folder ``out`` (or, with another ``lock_name``, on one file in it) for the
    duration; the system releases it if the process dies."""
    out.mkdir(parents=True, exist_ok=True)
    fd = os.open(out / lock_name, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "?"
            raise OutputConflict(
                f"{out} is being written by another run (pid {holder}); wait for it to finish or choose "
                "another output folder"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def check_fingerprint(
    out: Path, fp: dict, overwrite: bool = False, what: str = "output", foreign: frozenset[str] = frozenset()
) -> None:
    """Write ``fp`` into ``out`` or check it against the one there (see the module doc). ``out`` must be
    locked by the caller when another run could write it. ``foreign``: names in ``out`` that another stage
    owns (e.g. the estimator's input data folder): neither counted nor removed."""
    path = out / FINGERPRINT
    if overwrite and out.exists():
        clear_folder(out, foreign)
    if path.exists():
        try:
            old = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise OutputConflict(
                f"{path}: not valid JSON ({e}); remove the folder or pass --overwrite"
            ) from e
        diff = differences(old, fp)
        if diff:
            raise OutputConflict(
                f"{out} holds {what} of another configuration:\n  "
                + "\n  ".join(diff)
                + f"\nUse a new output folder, or pass --overwrite to remove {out}'s contents and start over."
            )
        return
    others = (
        [p.name for p in out.iterdir() if p.name != LOCK and p.name not in foreign] if out.exists() else []
    )
    if others:
        raise OutputConflict(
            f"{out} already holds {', '.join(sorted(others)[:4])} but no {FINGERPRINT}: written by hand or by "
            "an older version, so its settings are unknown. Use a new output folder, or pass --overwrite to "
            "remove its contents and start over."
        )
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, fp)


@contextlib.contextmanager
def claim_output(
    out: str | Path,
    stage: str,
    settings: Mapping[str, Any],
    inputs: Mapping[str, str | Path | None],
    overwrite: bool = False,
    foreign: frozenset[str] = frozenset(),
) -> Iterator[dict]:
    """Lock ``out``, then write or check its fingerprint (see the module doc); yields the fingerprint."""
    out = Path(out)
    fp = make_fingerprint(stage, settings, inputs)
    with locked(out):
        check_fingerprint(out, fp, overwrite, foreign=foreign)
        yield fp


def sidecar(path: Path) -> Path:
    """Where a one-file output keeps its fingerprint."""
    return path.with_name(path.name + ".fingerprint.json")


@contextlib.contextmanager
def claim_file(
    path: str | Path,
    fp: dict,
    overwrite: bool = False,
    work_files: tuple[Path, ...] = (),
    redo_when_changed: bool = False,
) -> Iterator[bool]:
    """For a stage whose output is one file (or one folder it publishes whole): lock it; refuse when its
    fingerprint (``<path>.fingerprint.json``) differs, or is missing beside an existing output, unless
    ``overwrite`` (which also deletes ``work_files``, the stage's resumable partial work); then yield True
    when the output exists with this fingerprint (the stage skips), else False. The stage calls
    ``mark_file`` before it starts writing, so its partial work is covered by the fingerprint too.
    ``redo_when_changed``: for outputs that are a deterministic function of their inputs (step values,
    fused rewards, a merge), a changed fingerprint means "write it again" (said on stdout), not a refusal.
    Writing again (or ``overwrite``) first removes the old output: a redo that fails must not leave it
    beside the new fingerprint, where the next run would take it as up to date."""
    path = Path(path)
    with locked(path.parent, f".{path.name}.lock"):
        side = sidecar(path)
        if overwrite:
            side.unlink(missing_ok=True)
            for w in (path, *work_files):
                _remove(w)
            yield False
            return
        old = json.loads(side.read_text()) if side.exists() else None
        if old is None and path.exists():
            why = f"no {side.name}, so its settings are unknown"
        elif old is not None and differences(old, fp):
            why = "\n  ".join(differences(old, fp))
        else:
            yield path.exists()
            return
        if redo_when_changed:
            print(f"{path}: inputs or settings changed, writing it again:\n  {why}")
            side.unlink(missing_ok=True)
            _remove(path)
            yield False
            return
        raise OutputConflict(
            f"{path} (or its partial work) was written with other settings:\n  {why}\nUse another output "
            "path, or pass --overwrite to write it again."
        )


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def mark_file(path: str | Path, fp: dict) -> None:
    write_json_atomic(sidecar(Path(path)), fp)


def env_option_settings(env: str, items: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """A run's ``--env-option NAME=VALUE`` items as fingerprint settings: ``{"env_options": every option of
    the environment, defaults filled}`` (so giving a default explicitly changes nothing), or ``{}`` for an
    environment that takes no option (its fingerprints read as before options existed)."""
    from envs import parse_env_options

    resolved = parse_env_options(env, items)
    return {"env_options": resolved} if resolved else {}


def settings_of(config: Any, exclude: set[str] | frozenset[str] = frozenset()) -> dict[str, Any]:
    """A config dataclass (or dict) as fingerprint settings, less the fields in ``exclude``."""
    from dataclasses import asdict, is_dataclass

    d = asdict(config) if is_dataclass(config) else dict(config)
    return {k: v for k, v in d.items() if k not in exclude}
