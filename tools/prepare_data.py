"""Unpack environment data from an offline mirror, or download it with gdown.

Idempotent: an environment whose data folder carries a ``.ready`` stamp is skipped. Unpacking goes to a
temporary folder that is renamed into place at the end, so a killed run never leaves half a data set.

    python tools/prepare_data.py --envs alfworld [--mirror DIR] [--force]
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from envs.paths import data_dir, default_mirror  # noqa: E402
from spa_rl.cli import arg, parse  # noqa: E402

# Public archives linked from the SPA-RL README (Google Drive ids), used when no mirror is given.
GDRIVE = {
    "alfworld": {"alfworld_data.zip": "1y7Vqeo0_xm9d3I07vZaP6qbPFtyuJ6kI"},
}


def log(msg: str) -> None:
    print(f"[data] {msg}", flush=True)


def check_manifest(mirror: Path, rel_paths: list[str]) -> None:
    """Verify mirror files against MANIFEST.sha256 (when the mirror has one)."""
    manifest = mirror / "MANIFEST.sha256"
    if not manifest.exists():
        return
    sums = {}
    for line in manifest.read_text().splitlines():
        if line.strip():
            digest, name = line.split(maxsplit=1)
            sums[name.lstrip("*").removeprefix("./")] = digest
    for rel in rel_paths:
        if rel not in sums:
            continue
        h = hashlib.sha256()
        with open(mirror / rel, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        if h.hexdigest() != sums[rel]:
            raise SystemExit(f"checksum mismatch for {mirror / rel}: the mirror is corrupt")


def untar_zst(archive: Path, dest: Path) -> None:
    # --long=27: the archives were written with a 128 MiB window.
    zstd = subprocess.Popen(["zstd", "-dc", "--long=27", str(archive)], stdout=subprocess.PIPE)
    tar = subprocess.run(["tar", "-x", "-C", str(dest)], stdin=zstd.stdout)
    zstd.stdout.close()
    if zstd.wait() != 0 or tar.returncode != 0:
        raise SystemExit(f"failed to unpack {archive}")


def alfworld_from_mirror(mirror: Path, tmp: Path) -> dict:
    src = mirror / "alfworld"
    archives = ["alfworld/alfworld_valid.tar.zst", "alfworld/alfworld_train.tar.zst"]
    missing = [a for a in archives if not (mirror / a).exists()]
    if missing:
        raise SystemExit(f"mirror {mirror} lacks {missing}; see its README.md")
    check_manifest(mirror, archives)
    for a in archives:
        log(f"unpacking {a}")
        untar_zst(mirror / a, tmp)  # -> tmp/alfworld/json_2.1.1/...
    root = tmp / "alfworld"
    shutil.copytree(src / "logic", root / "logic")
    shutil.copytree(src / "meta", root / "meta")
    for name in ("base_config.yaml", "gamefile_id.txt"):
        shutil.copy2(src / name, root / name)
    return {"source": f"mirror:{mirror}"}


def alfworld_from_gdown(tmp: Path) -> dict:
    try:
        import gdown
    except ImportError as e:  # pragma: no cover - gdown is pinned in requirements.txt
        raise SystemExit("gdown is not installed; run scripts/setup.sh") from e
    ((name, file_id),) = GDRIVE["alfworld"].items()
    out = tmp / name
    log(f"downloading {name} (Google Drive id {file_id}) with gdown")
    try:
        got = gdown.download(id=file_id, output=str(out), quiet=False)
    except Exception as e:  # network errors come in many types
        got = None
        log(f"download failed: {e}")
    if not got or not out.exists():
        raise SystemExit(
            "Could not download the ALFWorld data (offline?). Point SPA_DATA_MIRROR at an offline "
            "mirror (a folder holding alfworld/alfworld_{train,valid}.tar.zst, logic/, meta/, "
            "gamefile_id.txt) and rerun scripts/setup.sh."
        )
    with zipfile.ZipFile(out) as z:
        z.extractall(tmp / "unzipped")
    found = next((p.parent for p in (tmp / "unzipped").rglob("json_2.1.1")), None)
    if found is None:
        raise SystemExit(f"{name} has no json_2.1.1 folder; the archive layout changed")
    shutil.move(str(found), str(tmp / "alfworld"))
    return {"source": f"gdown:{file_id}"}


def prepare_alfworld(mirror: Path | None, force: bool) -> None:
    dest = data_dir() / "alfworld"
    if (dest / ".ready").exists() and not force:
        log(f"alfworld: ready at {dest}")
        return
    t0 = time.time()
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest.parent, prefix=".alfworld-") as tmpdir:
        tmp = Path(tmpdir)
        info = alfworld_from_mirror(mirror, tmp) if mirror else alfworld_from_gdown(tmp)
        root = tmp / "alfworld"
        counts = {
            s: len(list((root / "json_2.1.1" / s).glob("*/*")))
            for s in ("train", "valid_seen", "valid_unseen")
        }
        info.update(counts=counts, seconds=round(time.time() - t0, 1))
        (root / ".ready").write_text(json.dumps(info, indent=1))
        if dest.exists():
            shutil.rmtree(dest)
        root.rename(dest)
    log(f"alfworld: {counts} game folders at {dest} ({time.time() - t0:.0f}s)")


def prepare_virtualhome(mirror: Path | None, force: bool) -> None:
    """Tasks built from the installed virtualhome-eval package (rules: envs/virtualhome/data.py)."""
    from envs.base import EnvError
    from envs.virtualhome.prepare import prepare

    try:
        prepare(data_dir() / "virtualhome", mirror, force, log)
    except EnvError as e:
        raise SystemExit(str(e)) from e


def prepare_webshop(mirror: Path | None, force: bool) -> None:
    """Products, goals, splits and search text from the 1000-product files (rules: envs/webshop/)."""
    from envs.base import EnvError
    from envs.webshop.prepare import MIRROR_FILES, prepare

    if mirror is not None:
        present = [f"webshop/{n}" for n in MIRROR_FILES.values() if (mirror / "webshop" / n).exists()]
        check_manifest(mirror, present)
    try:
        prepare(data_dir() / "webshop", mirror, force, log)
    except EnvError as e:
        raise SystemExit(str(e)) from e


PREPARERS = {"alfworld": prepare_alfworld, "virtualhome": prepare_virtualhome, "webshop": prepare_webshop}


@dataclass
class PrepareDataConfig:
    envs: str = arg("alfworld", "comma-separated: " + ",".join(PREPARERS))
    mirror: Path | None = arg(None, "offline mirror (default: $SPA_DATA_MIRROR)")
    force: bool = arg(False, "unpack again even if the data is ready")


def main(argv: list[str] | None = None) -> None:
    cfg = parse(PrepareDataConfig, argv=argv, doc=__doc__)
    mirror = cfg.mirror or default_mirror()
    if mirror is not None and not mirror.is_dir():
        raise SystemExit(f"data mirror {mirror} is not a directory")
    for env in [e.strip() for e in cfg.envs.split(",") if e.strip()]:
        if env not in PREPARERS:
            raise SystemExit(f"unknown environment {env!r}; known: {sorted(PREPARERS)}")
        PREPARERS[env](mirror, cfg.force)


if __name__ == "__main__":
    main()
