"""Set-up step: build ``<data>/virtualhome/tasks.json`` from the installed ``virtualhome-eval`` package.

Atomic (built in a temporary folder renamed into place) and idempotent (skipped while the ``.ready``
stamp names the same package version and build rules). The initial graphs stay in the package (read at
``reset``); the task file holds the rest: title, description, program, expert commands, goal, split.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

# Bump when the build rules change (naming, goals, splits), so that set-up rebuilds the task file.
BUILD_VERSION = 1


def _stamp() -> dict:
    from envs.virtualhome import data

    return {"package": f"{data.PACKAGE}=={data.PACKAGE_VERSION}", "build_version": BUILD_VERSION}


def _check_mirror(mirror: Path | None, log: Callable[[str], None]) -> None:
    """The mirror's resource files are the package's; say so if they ever differ."""
    from envs.virtualhome.data import package_root

    src = mirror / "virtualhome" / "resources" if mirror else None
    if src is None or not src.is_dir():
        return
    differ = [
        p.name
        for p in sorted(src.glob("*.json"))
        if (package_root() / "resources" / p.name).exists()
        and p.read_bytes() != (package_root() / "resources" / p.name).read_bytes()
    ]
    if differ:
        log(
            f"virtualhome: note: mirror resources differ from the package's ({', '.join(differ)}); using the package's"
        )


def prepare(dest: Path, mirror: Path | None, force: bool, log: Callable[[str], None]) -> dict:
    ready = dest / ".ready"
    if ready.exists() and not force:
        info = json.loads(ready.read_text())
        if {k: info.get(k) for k in _stamp()} == _stamp():
            log(f"virtualhome: ready at {dest}")
            return info
        log("virtualhome: task file is from another package version or build; rebuilding")
    from tqdm import tqdm

    from envs.virtualhome.data import build_all  # raises EnvError if the simulator is missing

    t0 = time.time()
    _check_mirror(mirror, log)
    built = build_all(progress=lambda ids: tqdm(ids, desc="virtualhome programs", unit="prog"))
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest.parent, prefix=".virtualhome-") as tmpdir:
        root = Path(tmpdir) / "virtualhome"
        root.mkdir()
        (root / "tasks.json").write_text(json.dumps(built, indent=1))
        info = {
            **_stamp(),
            "counts": built["counts"],
            "dropped_by_reason": built["dropped_by_reason"],
            "unseen_titles": built["unseen_titles"],
            "seconds": round(time.time() - t0, 1),
        }
        (root / ".ready").write_text(json.dumps(info, indent=1))
        if dest.exists():
            shutil.rmtree(dest)
        root.rename(dest)
    log(
        f"virtualhome: {built['counts']} tasks, dropped {built['dropped_by_reason']} of {built['programs']} "
        f"programs, at {dest} ({time.time() - t0:.0f}s)"
    )
    return info
