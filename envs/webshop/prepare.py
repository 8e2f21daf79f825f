"""Build the prepared WebShop data from the raw public files (called by ``tools/prepare_data.py``).

Atomic (built in a temporary folder renamed into place) and idempotent (skipped while the ``.ready``
stamp names the same BUILD_VERSION). About two seconds from the mirror.

Inputs: the raw products (items_shuffle_1000.json), their attributes and generated instructions
(items_ins_v2_1000.json), the human instructions (items_human_ins*.json), and optionally the documents
of WebShop's own 1000-product search index (search_documents_1000.jsonl): when given, the search text
rebuilt here must equal theirs, product by product, which checks the cleaning rules against WebShop's.
Outputs (see ``catalog.py``): products.json, goals.json, documents.jsonl.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from envs.base import EnvError
from envs.webshop.catalog import DOCUMENTS_FILE, GOALS_FILE, PRODUCTS_FILE
from envs.webshop.goals import GoalDataError, generated_goals, human_goals, split_goals
from envs.webshop.products import ProductDataError, clean_products

# Bump when the build rules change (cleaning, goals, seeds, split), so that set-up rebuilds the data.
BUILD_VERSION = 1
# The mirror's files (``<mirror>/webshop/``), and the public downloads of the same data (WebShop's
# setup.sh, Google Drive ids) used when no mirror is given; the human file there covers all products.
MIRROR_FILES = {
    "products": "items_shuffle_1000.json",
    "attributes": "items_ins_v2_1000.json",
    "human": "items_human_ins_1000.json",
    "index": "search_documents_1000.jsonl.zst",
}
GDRIVE = {
    "products": ("items_shuffle_1000.json", "1EgHdxQ_YxqIQlvvq5iKlCrkEKR6-j0Ib"),
    "attributes": ("items_ins_v2_1000.json", "1IduG0xl544V_A_jv3tHXC0kyFi7PnyBu"),
    "human": ("items_human_ins.json", "14Kb5SPBk_jfdLZ_CDBNitW98QLDlKR5O"),
}


def build(
    raw_products: list[dict[str, Any]],
    raw_attributes: dict[str, Any],
    raw_human: dict[str, Any],
    index_documents: list[dict[str, Any]] | None = None,
) -> tuple[list[dict], dict[str, list[dict]], list[dict], dict[str, Any]]:
    """(products, goals by split, search documents, counts) as JSON-ready records."""
    products = clean_products(raw_products, raw_attributes)
    documents = [{"id": p.asin, "contents": p.search_text()} for p in products]
    if index_documents is not None:
        theirs = {d.get("id"): d.get("contents") for d in index_documents}
        if set(theirs) != {d["id"] for d in documents}:
            raise ProductDataError(
                "the search documents do not list the same product ids as the product file"
            )
        bad = [d["id"] for d in documents if theirs[d["id"]] != d["contents"]]
        if bad:
            raise ProductDataError(
                f"{len(bad)} products' search text differs from WebShop's index, e.g. {bad[0]}"
            )
    generated = generated_goals(products)
    train, test = split_goals(generated)
    human = human_goals(products, raw_human)
    goals = {"train": train, "test": test, "human": human}
    counts = {
        "products": len(products),
        "goal_products": len({g.asin for g in generated}),
        "generated_goals": len(generated),
        **{f"{k}_goals": len(v) for k, v in goals.items()},
    }
    return (
        [p.to_json() for p in products],
        {k: [g.to_json() for g in v] for k, v in goals.items()},
        documents,
        counts,
    )


def write(root: Path, products: list[dict], goals: dict[str, list[dict]], documents: list[dict]) -> None:
    root.mkdir(parents=True, exist_ok=True)
    (root / PRODUCTS_FILE).write_text(json.dumps(products))
    (root / GOALS_FILE).write_text(json.dumps(goals))
    with open(root / DOCUMENTS_FILE, "w") as f:
        for d in documents:
            f.write(json.dumps(d) + "\n")


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise EnvError(f"cannot read WebShop input {path}: {e}") from e


def _read_index_documents(path: Path, log: Callable[[str], None]) -> list[dict] | None:
    """The mirror's search documents (zstd-compressed JSON lines), or None without the zstd tool."""
    if shutil.which("zstd") is None:
        log("webshop: zstd not found; skipping the check against WebShop's search documents")
        return None
    out = subprocess.run(["zstd", "-dc", str(path)], capture_output=True)
    if out.returncode != 0:
        raise EnvError(f"cannot decompress {path}: {out.stderr.decode(errors='replace').strip()}")
    docs = []
    for n, line in enumerate(out.stdout.decode().splitlines(), 1):
        try:
            doc = json.loads(line)
        except json.JSONDecodeError as e:
            raise EnvError(f"{path} line {n}: not JSON ({e})") from e
        docs.append({"id": doc.get("id"), "contents": doc.get("contents")})
    return docs


def _inputs_from_mirror(mirror: Path, log: Callable[[str], None]) -> tuple[list, dict, dict, list | None]:
    src = mirror / "webshop"
    missing = [n for k, n in MIRROR_FILES.items() if k != "index" and not (src / n).exists()]
    if missing:
        raise EnvError(f"mirror {src} lacks {missing}; see its README.md")
    docs = (
        _read_index_documents(src / MIRROR_FILES["index"], log)
        if (src / MIRROR_FILES["index"]).exists()
        else None
    )
    return (
        _read_json(src / MIRROR_FILES["products"]),
        _read_json(src / MIRROR_FILES["attributes"]),
        _read_json(src / MIRROR_FILES["human"]),
        docs,
    )


def _inputs_from_gdown(tmp: Path, log: Callable[[str], None]) -> tuple[list, dict, dict, None]:
    try:
        import gdown
    except ImportError as e:  # pragma: no cover - gdown is pinned in requirements.txt
        raise EnvError("gdown is not installed; run scripts/setup.sh") from e
    paths = {}
    for key, (name, file_id) in GDRIVE.items():
        log(f"webshop: downloading {name} (Google Drive id {file_id}) with gdown")
        try:
            got = gdown.download(id=file_id, output=str(tmp / name), quiet=True)
        except Exception as e:  # network errors come in many types
            got, err = None, e
        else:
            err = None
        if not got:
            raise EnvError(
                f"could not download {name} ({err or 'no file'}); point SPA_DATA_MIRROR at an offline mirror "
                "holding webshop/items_shuffle_1000.json, items_ins_v2_1000.json, items_human_ins_1000.json"
            )
        paths[key] = tmp / name
    return _read_json(paths["products"]), _read_json(paths["attributes"]), _read_json(paths["human"]), None


def prepare(dest: Path, mirror: Path | None, force: bool, log: Callable[[str], None]) -> dict:
    """Build ``dest`` (normally ``<data>/webshop``) from the mirror, or from the public downloads."""
    ready = dest / ".ready"
    if ready.exists() and not force:
        info = json.loads(ready.read_text())
        if info.get("build_version") == BUILD_VERSION:
            log(f"webshop: ready at {dest}")
            return info
        log("webshop: data is from another build version; rebuilding")
    t0 = time.time()
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest.parent, prefix=".webshop-") as tmpdir:
        tmp = Path(tmpdir)
        if mirror is not None:
            raw, attrs, human, docs = _inputs_from_mirror(mirror, log)
            source = f"mirror:{mirror}"
        else:
            raw, attrs, human, docs = _inputs_from_gdown(tmp, log)
            source = "gdown"
        try:
            products, goals, documents, counts = build(raw, attrs, human, docs)
        except (ProductDataError, GoalDataError) as e:
            raise EnvError(f"WebShop data from {source}: {e}") from e
        root = tmp / "webshop"
        write(root, products, goals, documents)
        info = {
            "build_version": BUILD_VERSION,
            "source": source,
            "checked_against_index": docs is not None,
            "counts": counts,
            "seconds": round(time.time() - t0, 1),
        }
        (root / ".ready").write_text(json.dumps(info, indent=1))
        if dest.exists():
            shutil.rmtree(dest)
        root.rename(dest)
    log(f"webshop: {counts} at {dest} ({time.time() - t0:.1f}s)")
    return info
