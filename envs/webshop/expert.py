"""The WebShop expert: it knows the goal's product and options, and shops for them as a person would.

Plan: search with the instruction (its price clause left out); if the product is on results page 1-3,
page to it; otherwise go back and search the product's title instead (paging again if needed); open the
product, click each goal option that the page offers, and buy. The plan is checked against the step
limit; a goal the expert cannot reach within it gets the shortest plan found, which may fail.
"""

from __future__ import annotations

import re

from envs.webshop.catalog import Catalog
from envs.webshop.engine import BACK_TO_SEARCH, BUY_NOW, NEXT_PAGE, PRODUCT_WINDOW
from envs.webshop.goals import Goal

MAX_PAGING = 2  # page forward at most this often before searching again
_PRICE_CLAUSE = re.compile(r",? and price lower than [\d.]+ dollars\s*$")


def search_query(goal: Goal) -> str:
    """The instruction as a search query: lower case, without the price clause."""
    return _PRICE_CLAUSE.sub("", goal.instruction_text).strip().lower()


def _reach(catalog: Catalog, query: str, asin: str) -> list[str] | None:
    """[search, Next > ...] actions that show ``asin`` for ``query``, or None."""
    results = catalog.search(query)
    if asin not in results:
        return None
    return [f"search[{query}]"] + [f"click[{NEXT_PAGE}]"] * (results.index(asin) // PRODUCT_WINDOW)


def _buy(catalog: Catalog, goal: Goal, asin: str) -> list[str]:
    """Open ``asin``, click the goal's options that its page offers, buy."""
    offered = {v for values in catalog.products[asin].options.values() for v in values}
    clicks = [f"click[{v}]" for v in goal.option_values if v in offered]
    return [f"click[{asin}]", *clicks, f"click[{BUY_NOW}]"]


def expert_actions(catalog: Catalog, goal: Goal, max_steps: int) -> list[str]:
    query = search_query(goal)
    tail = _buy(catalog, goal, goal.asin)
    first = _reach(catalog, query, goal.asin)
    plans = []
    if first is not None and len(first) - 1 <= MAX_PAGING:
        plans.append(first + tail)
    else:
        again = _reach(catalog, goal.name.lower(), goal.asin)
        if again is not None:
            plans.append([f"search[{query}]", f"click[{BACK_TO_SEARCH}]", *again, *tail])
        if first is not None:
            plans.append(first + tail)
    if not plans:  # neither query finds the product: buy the instruction's best hit, which may score
        hits = catalog.search(query)
        return [f"search[{query}]", *(_buy(catalog, goal, hits[0]) if hits else [])]
    fitting = [p for p in plans if len(p) <= max_steps]
    return fitting[0] if fitting else min(plans, key=len)
