"""A committed mirror of a study's run folder: every small file (results, logs, fingerprints, the estimator's
head), none of the weights, so that a study survives the loss of the machine it ran on.

    python tools/study_mirror.py --mode save --run-dir RUN_DIR --mirror MIRROR     # after each stage
    python tools/study_mirror.py --mode restore --run-dir RUN_DIR --mirror MIRROR  # on a new machine, first

(scripts/run_study.sh does both.)

``save`` copies into MIRROR every file of RUN_DIR except model weights (folders that hold a weight file over
--max-weight-mb: SFT models, PPO adapters and merged models; checkpoints), inputs derived by a deterministic
function of mirrored files (the estimator's data and backbone features, the fused PPO data: prm/run_prm.sh writes
them again), locks
and temporary files, and any file over --max-file-mb (listed as skipped). Of a weights folder only its
summaries are kept (``train_summary.json``, ``summary.json``, ``task_ids.txt``), for the report. It writes
``manifest.json``: each mirrored file's size and SHA-256 (spa_rl/fingerprint.py's file identity), what was
skipped and why.

``restore`` copies every mirrored file that RUN_DIR lacks (never into a weights folder) and checks the ones it
has: a file that differs stops it, naming the file, and nothing is overwritten, except that a file which
begins with the mirror's bytes and goes on (an episode file or a log that grew after the save) is newer work
of the same run and is kept. The stages then resume from what is there. So a save in the middle of a long
stage (exploration, a PPO run) is safe: ``--mode save`` by hand before a session ends keeps the episodes
played so far, and both a new machine and this one resume from them. Models are trained again: SFT
reproduces its weights only on a machine that computes as the first one did (same CPU and compute dtype),
and every later stage's fingerprint names the SFT model's identity, so on any other machine the restored
stages refuse to continue (their fingerprints differ) instead of mixing two SFT models in one study. ``eval/study_report.py --run-dir MIRROR`` makes the tables from the
mirror alone.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from spa_rl.agent.schema import command_line, write_json_atomic  # noqa: E402
from spa_rl.cli import arg, parse  # noqa: E402
from spa_rl.fingerprint import file_identity  # noqa: E402

MANIFEST = "manifest.json"
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf")
SUMMARIES = {"train_summary.json", "summary.json", "task_ids.txt"}  # kept from a weights folder
# prm/run_prm.sh writes them again from mirrored inputs (the backbone's features: a cache of the SFT model's)
DERIVED = ("estimator/data/", "estimator/features/", "ppo_data/")
DERIVED_KEEP_SUFFIX = ".info.json"  # the fused data's statistics stay (the report reads them)


def _copy(src: Path, dest: Path) -> None:
    """Copy atomically: a reader never sees half a file. Of a JSONL file (episodes, logs) only its complete
    lines: a stage may be writing its last one."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.tmp{os.getpid()}")
    shutil.copyfile(src, tmp)
    if dest.suffix == ".jsonl":
        raw = tmp.read_bytes()
        if raw and not raw.endswith(b"\n"):
            tmp.write_bytes(raw[: raw.rfind(b"\n") + 1])
    tmp.replace(dest)


def weights_dirs(run: Path, max_weight_bytes: int) -> set[Path]:
    """Folders (relative to ``run``) that hold a weight file over the limit: models, adapters, checkpoints."""
    out = set()
    for f in run.rglob("*"):
        if f.is_file() and f.suffix in WEIGHT_SUFFIXES and f.stat().st_size > max_weight_bytes:
            out.add(f.parent.relative_to(run))
    return out


def _skip_reason(rel: Path, size: int, weights: set[Path], max_file_bytes: int) -> str | None:
    name, parts, posix = rel.name, rel.parts, rel.as_posix()
    if name.startswith(".") or name.endswith((".tmp", ".partial")):
        return "lock or temporary file"
    if any(p == "checkpoint" or p.startswith("checkpoint-") for p in parts[:-1]):
        return "checkpoint (weights, optimizer state)"
    if any(parent in weights for parent in rel.parents):
        return None if name in SUMMARIES and rel.parent in weights else "weights folder"
    if posix.startswith(DERIVED) and not name.endswith(DERIVED_KEEP_SUFFIX):
        return "derived (prm/run_prm.sh writes it again)"
    if size > max_file_bytes:
        return f"over the size limit ({size / 2**20:.1f} MiB)"
    return None


def save(run: Path, mirror: Path, max_weight_mb: float, max_file_mb: float) -> dict:
    if not run.is_dir():
        raise SystemExit(f"no run folder at {run}")
    # One save at a time (jobs side by side, scripts/run_study.sh STUDY_JOBS): two overlapping saves could
    # leave the manifest of one beside a file copied by the other.
    with (run / ".mirror.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _save(run, mirror, max_weight_mb, max_file_mb)


def _save(run: Path, mirror: Path, max_weight_mb: float, max_file_mb: float) -> dict:
    weights = weights_dirs(run, int(max_weight_mb * 2**20))
    old = json.loads((mirror / MANIFEST).read_text())["files"] if (mirror / MANIFEST).exists() else {}
    files, skipped = {}, {}
    for f in sorted(run.rglob("*")):
        if not f.is_file():
            continue
        rel = f.relative_to(run)
        size = f.stat().st_size
        if reason := _skip_reason(rel, size, weights, int(max_file_mb * 2**20)):
            skipped[rel.as_posix()] = reason
            continue
        ident = file_identity(f)  # files under the size limit are hashed whole
        dest = mirror / rel
        if not (dest.exists() and old.get(rel.as_posix()) == ident):  # copied by an earlier save
            _copy(f, dest)
            # A running stage may append between the hash and the copy: record what the mirror holds.
            ident = file_identity(dest)
        files[rel.as_posix()] = ident
    manifest = {
        "command": command_line(),
        "run_dir": str(run),
        "files": files,
        "weights_dirs": sorted(p.as_posix() for p in weights),
        "skipped": skipped,
    }
    write_json_atomic(mirror / MANIFEST, manifest)
    return manifest


def _extends(path: Path, prefix: Path) -> bool:
    """Whether ``path`` is ``prefix`` with more bytes after it (a log or an episode file that grew)."""
    n = prefix.stat().st_size
    if path.stat().st_size <= n:
        return False
    with path.open("rb") as a, prefix.open("rb") as b:
        while chunk := b.read(1 << 20):
            if a.read(len(chunk)) != chunk:
                return False
    return True


def restore(mirror: Path, run: Path) -> tuple[int, int]:
    """Copies the mirrored files ``run`` lacks; returns (copied, already there or grown since the save).
    Stops on a file that differs otherwise."""
    path = mirror / MANIFEST
    if not path.exists():
        raise SystemExit(
            f"no {MANIFEST} in {mirror}: not a study mirror (tools/study_mirror.py save writes one)"
        )
    manifest = json.loads(path.read_text())
    weights = {Path(p) for p in manifest.get("weights_dirs", [])}
    todo, same, differ = [], 0, []
    for rel, meta in manifest["files"].items():
        src, dest = mirror / rel, run / rel
        if not src.exists() or file_identity(src) != meta:
            raise SystemExit(f"the mirror's {src} is missing or differs from its manifest entry")
        if any(parent in weights for parent in Path(rel).parents):
            continue  # a model's summary: the model is trained again, and writes its own
        if dest.exists():
            if file_identity(dest) == meta or _extends(dest, src):
                same += 1
            else:
                differ.append(rel)
        else:
            todo.append((src, dest))
    if differ:
        raise SystemExit(
            f"{len(differ)} file(s) of {run} differ from the mirror {mirror} (nothing was restored): "
            + ", ".join(differ[:10])
            + ". The run folder holds other work: restore into a new folder (RUN_DIR) or move these files."
        )
    for src, dest in todo:
        _copy(src, dest)
    return len(todo), same


@dataclass
class MirrorConfig:
    mode: str = arg(
        "save", "save (run folder -> mirror) | restore (mirror -> run folder)", choices=("save", "restore")
    )
    run_dir: Path = arg(Path("runs/study/alfworld"), "the study's run folder")
    mirror: Path = arg(Path("results/study/alfworld/run"), "the mirror (committed)")
    max_weight_mb: float = arg(1.0, "save: a weight file over this marks a weights folder, left out (1: the "
                               "estimator's head is kept, models and adapters are not)")  # fmt: skip
    max_file_mb: float = arg(20.0, "save: leave out (and list) any file over this")


def main(argv: list[str] | None = None) -> None:
    cfg = parse(MirrorConfig, argv=argv, doc=__doc__)
    if cfg.mode == "save":
        m = save(Path(cfg.run_dir), Path(cfg.mirror), cfg.max_weight_mb, cfg.max_file_mb)
        size = sum(f["size"] for f in m["files"].values())
        print(f"[mirror] {len(m['files'])} files ({size / 2**20:.1f} MiB) of {cfg.run_dir} in {cfg.mirror}")
        for rel, why in m["skipped"].items():
            if why.startswith("over the size limit"):  # the others are left out by design
                print(f"[mirror]   left out {rel}: {why}")
    else:
        copied, same = restore(Path(cfg.mirror), Path(cfg.run_dir))
        print(f"[mirror] restored {copied} files from {cfg.mirror} into {cfg.run_dir} ({same} already there)")


if __name__ == "__main__":
    main()
