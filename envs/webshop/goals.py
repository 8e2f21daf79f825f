"""WebShop goals: the generated instructions of items_ins_v2 (one goal per option combination) and the
human-written ones, each with a price upper bound; and this project's train/test split.

Generated goals follow WebShop's rules: for a product with an ``instruction``, every combination of
its option values (option types in sorted order) is one goal, written
"<instruction> with <type>: <value>, and <type>: <value>, and price lower than <P> dollars". P is drawn
once per product: two of the first four multiples of $10 above the product's price, the larger one kept
(no price clause, and no bound, when fewer than two such multiples are below $1,000). Human goals take
their instruction (trailing periods stripped), attributes and options from items_human_ins and get a
bound drawn the same way per instruction. WebShop drew the bounds unseeded; here each draw is seeded by
the goal's identity, so every machine builds the same goals.

Split (this project's own; WebShop's split indexes the full catalogue's human goals): the products that
have generated goals are shuffled with SPLIT_SEED; the first TEST_PRODUCTS of them are held out as test
products, and each gives ONE test goal (its option combination drawn with the same seed). Train holds
every goal of the other products, in a seeded shuffled order; no goal of a test product is in train.
"""

from __future__ import annotations

import itertools
import random
from collections import defaultdict
from dataclasses import asdict, dataclass, replace
from typing import Any

from envs.webshop.products import Product

PRICE_STEPS = tuple(10.0 * i for i in range(1, 100))  # $10 ... $990
NO_PRICE_LIMIT = 1_000_000.0
UPPER_SEED = "webshop-price-upper"
SPLIT_SEED = 233  # WebShop shuffles its goals with seed 233; reused for this project's split
TEST_PRODUCTS = 200


class GoalDataError(ValueError):
    """A goal record that cannot be read; the message names the record and field."""


@dataclass(frozen=True)
class Goal:
    goal_id: str  # "<asin>-<k>" (k-th option combination) or "<asin>-h<k>" (k-th human instruction)
    asin: str  # the product the goal was written from
    instruction_text: str
    attributes: tuple[str, ...]
    goal_options: dict[str, str] | tuple[str, ...]  # type -> value (generated) or values (human)
    price_upper: float
    name: str  # the product's title (the type reward compares titles)
    query: str
    category: str
    product_category: str
    weight: float = 1.0  # WebShop's sampling weight (rare attributes count more); kept for reference
    human: bool = False

    @property
    def option_values(self) -> list[str]:
        return (
            list(self.goal_options.values())
            if isinstance(self.goal_options, dict)
            else list(self.goal_options)
        )

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["goal_options"] = (
            dict(self.goal_options) if isinstance(self.goal_options, dict) else list(self.goal_options)
        )
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Goal:
        d = dict(d)
        d["attributes"] = tuple(d["attributes"])
        if not isinstance(d["goal_options"], dict):
            d["goal_options"] = tuple(d["goal_options"])
        return cls(**d)


def price_upper(price: float, seed: str) -> tuple[float, str]:
    """(bound, text) for a product costing ``price``: WebShop's rule with a seeded draw."""
    steps = [p for p in PRICE_STEPS if p > price][:4]
    if len(steps) < 2:
        return NO_PRICE_LIMIT, ""
    upper = max(random.Random(seed).sample(steps, 2))
    return upper, f", and price lower than {upper:.2f} dollars"


def generated_goals(products: list[Product]) -> list[Goal]:
    goals: list[Goal] = []
    for p in products:
        if not p.instruction:
            continue
        if not p.instruction_attributes:
            raise GoalDataError(f"product {p.asin}: an instruction without instruction_attributes")
        upper, price_text = price_upper(p.price, f"{UPPER_SEED}:{p.asin}")
        names = sorted(p.options)
        for k, combo in enumerate(itertools.product(*(p.options[n] for n in names))):
            options = dict(zip(names, combo, strict=True))
            option_text = ", and ".join(f"{n}: {v}" for n, v in options.items())
            option_text = f" with {option_text}" if option_text else ""
            goals.append(
                Goal(
                    goal_id=f"{p.asin}-{k}",
                    asin=p.asin,
                    instruction_text=f"{p.instruction}{option_text}{price_text}",
                    attributes=p.instruction_attributes,
                    goal_options=options,
                    price_upper=upper,
                    name=p.title,
                    query=p.query,
                    category=p.category,
                    product_category=p.product_category,
                )
            )
    # WebShop's weight: the mean inverse frequency of a goal's attributes over all goals.
    counts: dict[str, int] = defaultdict(int)
    for g in goals:
        for a in g.attributes:
            counts[a] += 1
    return [replace(g, weight=sum(1.0 / counts[a] for a in g.attributes) / len(g.attributes)) for g in goals]


def human_goals(products: list[Product], raw_human: dict[str, Any]) -> list[Goal]:
    """Goals from items_human_ins (asin -> list of instructions), for products in the catalogue;
    instructions without attributes are skipped, as WebShop skips them."""
    if not isinstance(raw_human, dict):
        raise GoalDataError("the human instruction file must hold a JSON object keyed by ASIN")
    goals = []
    for p in products:
        for k, rec in enumerate(raw_human.get(p.asin, [])):
            try:
                text, attrs, options = (
                    rec["instruction"],
                    rec["instruction_attributes"],
                    rec["instruction_options"],
                )
            except (KeyError, TypeError) as e:
                raise GoalDataError(f"human instruction {k} of {p.asin} lacks {e}") from e
            if not attrs:
                continue
            upper, price_text = price_upper(p.price, f"{UPPER_SEED}:{p.asin}:h{k}")
            goals.append(
                Goal(
                    goal_id=f"{p.asin}-h{k}",
                    asin=p.asin,
                    instruction_text=text.strip(".") + price_text,
                    attributes=tuple(attrs),
                    goal_options=tuple(options),
                    price_upper=upper,
                    name=p.title,
                    query=p.query,
                    category=p.category,
                    product_category=p.product_category,
                    human=True,
                )
            )
    return goals


def split_goals(goals: list[Goal], n_test_products: int = TEST_PRODUCTS, seed: int = SPLIT_SEED):
    """(train, test): test = one goal from each of ``n_test_products`` held-out products."""
    by_product: dict[str, list[Goal]] = defaultdict(list)
    for g in goals:
        by_product[g.asin].append(g)
    asins = sorted(by_product)
    if n_test_products >= len(asins):
        raise GoalDataError(f"cannot hold out {n_test_products} of {len(asins)} goal products")
    rng = random.Random(seed)
    rng.shuffle(asins)
    test_asins = asins[:n_test_products]
    test = [rng.choice(by_product[a]) for a in test_asins]
    held = set(test_asins)
    train = [g for g in goals if g.asin not in held]
    rng.shuffle(train)
    return train, test
