"""The WebShop site in text mode: pages, what can be clicked on each, and where each click leads.

A page is rendered as WebShop's text observation: its visible texts joined with " [SEP] ".
- search page:  WebShop | Instruction: | <goal> | Search            (a search box; nothing clickable)
- results page: Instruction: | <goal> | Back to Search | Page p (Total results: n) | [< Prev] | [Next >]
                | then per product: ASIN | title | price            (10 products a page, 50 at most)
- item page:    Instruction: | <goal> | Back to Search | < Prev | per option type: type | values...
                | title | Price: $x | Rating: N.A. | Description | Features | Reviews | Buy Now
- sub pages:    Instruction: | <goal> | Back to Search | < Prev | the description / features / reviews
- done page:    Thank you for shopping with us! | Your score (min 0.0, max 1.0) | <reward>
Clicks name a button's text, a product's ASIN or an option value, in any letter case. "< Prev" goes back
one page (item -> its results page, sub page -> item page); choosing options stays on the item page
(one value per option type), and a results page always starts with no options chosen, as in WebShop.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from envs.webshop.catalog import Catalog
from envs.webshop.goals import Goal
from envs.webshop.reward import RewardInfo, compute_reward

SEP = " [SEP] "
PRODUCT_WINDOW = 10
BACK_TO_SEARCH, NEXT_PAGE, PREV_PAGE, BUY_NOW = "Back to Search", "Next >", "< Prev", "Buy Now"
SUB_PAGES = ("Description", "Features", "Reviews")


def click_key(text: str) -> str:
    """How a click names a clickable: any letter case, runs of spaces as one."""
    return " ".join(text.split()).lower()


@dataclass
class Session:
    """One shopper's state on the site."""

    goal: Goal
    page: str = "search"  # search | results | item | Description | Features | Reviews | done
    keywords: str = ""
    results: list[str] = field(default_factory=list)  # ASINs of the whole result list (<= 50)
    page_num: int = 1
    asin: str | None = None
    options: dict[str, str] = field(default_factory=dict)  # option type -> chosen value
    reward: RewardInfo | None = None


class WebShopSite:
    """The shop: renders pages for a session and applies searches and clicks to it."""

    def __init__(self, catalog: Catalog):
        self.catalog = catalog

    # --- what the agent sees -------------------------------------------------------------------
    def render(self, s: Session) -> str:
        return SEP.join(t for t in (x.strip() for x in self._texts(s)) if t)

    def _texts(self, s: Session) -> list[str]:
        head = ["Instruction:", s.goal.instruction_text]
        if s.page == "search":
            return ["WebShop", *head, "Search"]
        if s.page == "done":
            return ["Thank you for shopping with us!", "Your score (min 0.0, max 1.0)", str(s.reward.reward)]
        if s.page == "results":
            texts = [*head, BACK_TO_SEARCH, f"Page {s.page_num} (Total results: {len(s.results)})"]
            texts += self._pager(s)
            for asin in self._page_asins(s):
                p = self.catalog.products[asin]
                texts += [asin, p.title, p.price_tag]
            return texts
        p = self.catalog.products[s.asin]
        texts = [*head, BACK_TO_SEARCH, PREV_PAGE]
        if s.page == "item":
            for kind, values in p.options.items():
                texts += [kind, *values]
            texts += [p.title, f"Price: {p.price_tag}", f"Rating: {p.rating}", *SUB_PAGES, BUY_NOW]
        elif s.page == "Description":
            texts.append(p.description)
        elif s.page == "Features":
            texts += list(p.bullet_points)
        elif s.page == "Reviews":
            for r in p.reviews:
                texts += [str(r.get("title", "")), str(r.get("score", "")), str(r.get("body", ""))]
        return texts

    def _pager(self, s: Session) -> list[str]:
        out = [PREV_PAGE] if s.page_num > 1 else []
        if s.page_num * PRODUCT_WINDOW < len(s.results):
            out.append(NEXT_PAGE)
        return out

    def _page_asins(self, s: Session) -> list[str]:
        start = (s.page_num - 1) * PRODUCT_WINDOW
        return s.results[start : start + PRODUCT_WINDOW]

    def clickables(self, s: Session) -> dict[str, tuple[str, Any]]:
        """``click_key`` of each clickable text on the current page -> (kind, argument)."""
        if s.page == "results":
            out = {BACK_TO_SEARCH.lower(): ("back", None)}
            out |= {b.lower(): ("pager", b) for b in self._pager(s)}
            out |= {a.lower(): ("product", a) for a in self._page_asins(s)}
            return out
        if s.page == "item":
            out = {BACK_TO_SEARCH.lower(): ("back", None), PREV_PAGE.lower(): ("prev", None)}
            out |= {name.lower(): ("sub", name) for name in SUB_PAGES}
            out[BUY_NOW.lower()] = ("buy", None)
            # A value shared by two option types selects the later type, as WebShop's page did.
            for kind, values in self.catalog.products[s.asin].options.items():
                for v in values:
                    out[click_key(v)] = ("option", (kind, v))
            return out
        if s.page in SUB_PAGES:
            return {BACK_TO_SEARCH.lower(): ("back", None), PREV_PAGE.lower(): ("prev", None)}
        return {}  # search page (only the search box) and done page

    def can_search(self, s: Session) -> bool:
        return s.page == "search"

    # --- what the agent does --------------------------------------------------------------------
    def search(self, s: Session, keywords: str) -> None:
        s.keywords = keywords
        s.results = self.catalog.search(keywords)
        self._show_results(s, 1)

    def click(self, s: Session, target: str) -> None:
        """Apply a click on ``target`` (a key of ``clickables``; the caller has checked it)."""
        kind, arg = self.clickables(s)[click_key(target)]
        if kind == "back":
            s.page, s.keywords, s.results, s.asin, s.options = "search", "", [], None, {}
        elif kind == "pager":
            self._show_results(s, s.page_num + (1 if arg == NEXT_PAGE else -1))
        elif kind == "product":
            s.page, s.asin = "item", arg
        elif kind == "prev":
            if s.page == "item":
                self._show_results(s, s.page_num)
            else:
                s.page = "item"
        elif kind == "sub":
            s.page = arg
        elif kind == "option":
            option_type, value = arg
            s.options[option_type] = value
        elif kind == "buy":
            s.reward = compute_reward(self.catalog.products[s.asin], s.goal, dict(s.options))
            s.page = "done"

    def _show_results(self, s: Session, page_num: int) -> None:
        s.page, s.page_num, s.asin, s.options = "results", page_num, None, {}
