"""The prepared WebShop data (``<data>/webshop``, written by ``tools/prepare_data.py``): products,
goals and their splits, and the search index over the products; loaded once per process."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from envs.base import EnvError
from envs.paths import data_dir
from envs.webshop.goals import Goal
from envs.webshop.products import Product
from envs.webshop.search import SEARCH_RETURN_N, SearchIndex

PRODUCTS_FILE = "products.json"
GOALS_FILE = "goals.json"  # {"train": [...], "test": [...], "human": [...]}
DOCUMENTS_FILE = "documents.jsonl"  # {"id", "contents"}: the text the search engine indexes
SPLITS = ("train", "test", "human")


def webshop_root() -> Path:
    root = data_dir() / "webshop"
    if not (root / ".ready").exists():
        raise EnvError(f"WebShop data not found at {root}: run `bash scripts/setup.sh` (SPA_ENVS=webshop)")
    return root


def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise EnvError(f"cannot read {path}: {e}; rerun tools/prepare_data.py --envs webshop --force") from e


@dataclass
class Catalog:
    products: dict[str, Product]
    goals: dict[str, list[Goal]]  # split -> goals, in the split's canonical order
    index: SearchIndex

    def search(self, keywords: str) -> list[str]:
        return self.index.search(keywords, SEARCH_RETURN_N)

    def __post_init__(self) -> None:
        self._by_id = {(s, g.goal_id): g for s, goals in self.goals.items() for g in goals}

    def goal(self, split: str, goal_id: str) -> Goal:
        try:
            return self._by_id[(split, goal_id)]
        except KeyError:
            raise EnvError(f"no WebShop goal {goal_id!r} in split {split!r}") from None


@lru_cache(maxsize=2)
def _load(root: Path) -> Catalog:
    products = {p["asin"]: Product.from_json(p) for p in _read_json(root / PRODUCTS_FILE)}
    raw_goals = _read_json(root / GOALS_FILE)
    missing = [s for s in SPLITS if s not in raw_goals]
    if missing:
        raise EnvError(f"{root / GOALS_FILE} lacks the splits {missing}")
    goals = {s: [Goal.from_json(g) for g in raw_goals[s]] for s in SPLITS}
    ids, texts = [], []
    with open(root / DOCUMENTS_FILE) as f:
        for n, line in enumerate(f, 1):
            doc = json.loads(line)
            if doc.get("id") not in products:
                raise EnvError(f"{root / DOCUMENTS_FILE} line {n}: unknown product id {doc.get('id')!r}")
            ids.append(doc["id"])
            texts.append(doc["contents"])
    return Catalog(products=products, goals=goals, index=SearchIndex(ids, texts))


def load_catalog() -> Catalog:
    return _load(webshop_root())
