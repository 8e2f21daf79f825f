"""The WebShop site in text mode: pages, what can be clicked on each, and where each click leads.

A page is rendered exactly as WebShop's text mode (``observation_mode="text"``, the mode ETO and
SPA-RL run) renders its HTML page: the page's text nodes, in document order, each stripped, joined
with " [SEP] ". Each page below lists the text nodes of WebShop's template for it (the text-agent
templates: "Instruction:" on its own line, "Page p (Total results: n)", "< Prev" on item pages):
- search page:  WebShop | Instruction: | <goal> | Search            (a search box; nothing clickable)
- results page: Instruction: | <goal> | Back to Search | Page p (Total results: n) | [< Prev] | Next >
                | then per product: ASIN | title | price            (10 products a page, 50 at most;
                "< Prev" from page 2; "Next >" always, past the last result too, onto empty pages)
- item page:    Instruction: | <goal> | Back to Search | < Prev | per option type: type | values...
                | title | Price: $x | Rating: N.A. | Description | Features | Reviews | Buy Now
- sub pages:    Instruction: | <goal> | Back to Search | < Prev | the description / each feature /
                per review: "title" | score | body
- done page:    Thank you for shopping with us! | Your code: | None | (Paste it in your MTurk
                interface.) | Purchased | asin | <ASIN> | options | <chosen options as JSON> | attrs |
                None | category | None | query | None | product category | None | Target | asin |
                options | attrs | price upper | instuction text | category | product category | query |
                Goal | None | Reward | Your score (min 0.0, max 1.0) | <reward> | Reward Details | None
                (the hidden purchase/target fields are text nodes too; WebShop's text env passes the
                done template no MTurk code, goal or reward details, so those print None or nothing).
How a text node becomes an observation text (BeautifulSoup's html.parser, then the text mode's filter):
an empty value makes no node; a node of ASCII whitespace only is collapsed to a newline (which the
filter drops) when it holds one, else to a space (kept: an empty text between two [SEP]s); any other
node is stripped.
Clicks name a button's text, a product's ASIN or an option value, in any letter case. "< Prev" goes back
one page (item -> its results page, sub page -> item page); choosing options stays on the item page
(one value per option type), and a results page always starts with no options chosen, as in WebShop.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from envs.webshop.catalog import Catalog
from envs.webshop.goals import Goal
from envs.webshop.reward import DEFAULT_REWARD_MODE, RewardInfo, compute_reward, reward_mode

SEP = " [SEP] "
PRODUCT_WINDOW = 10
BACK_TO_SEARCH, NEXT_PAGE, PREV_PAGE, BUY_NOW = "Back to Search", "Next >", "< Prev", "Buy Now"
SUB_PAGES = ("Description", "Features", "Reviews")
_ASCII_SPACES = " \n\t\f\r"  # what BeautifulSoup counts as collapsible whitespace


def visible_texts(nodes: list[str]) -> list[str]:
    """A page's text nodes as WebShop's text mode keeps them (see the module docstring)."""
    out = []
    for t in nodes:
        if t == "":
            continue  # an empty element holds no text node
        if not t.strip(_ASCII_SPACES):  # BeautifulSoup collapses ASCII whitespace to "\n" or " "
            if "\n" not in t:
                out.append("")  # " ", kept by the filter (which drops only "\n"), stripped to ""
            continue
        out.append(t.strip())
    return out


def options_json(options: dict[str, str]) -> str:
    """The done page's ``{{ options | tojson }}``: Flask's tojson (sorted keys, ASCII only, and the
    HTML-unsafe characters written as JSON escapes)."""
    text = json.dumps(options, sort_keys=True)
    for char, escape in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("'", "\\u0027")):
        text = text.replace(char, escape)
    return text


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

    def __init__(self, catalog: Catalog, reward: str = DEFAULT_REWARD_MODE):
        self.catalog = catalog
        self.reward_mode = reward_mode(reward).name  # the option rule of the reward (reward.REWARD_MODES)

    # --- what the agent sees -------------------------------------------------------------------
    def render(self, s: Session) -> str:
        return SEP.join(visible_texts(self._text_nodes(s)))

    def _text_nodes(self, s: Session) -> list[str]:
        """The text nodes of WebShop's template for the page, as the template writes them (a literal
        and a value in one element make one node: "Price: $x", " <feature>")."""
        if s.page == "search":  # <h2>WebShop</h2> <h4>Instruction: <br>{{ goal }}</h4> ... Search</button>
            return ["WebShop", "Instruction: ", s.goal.instruction_text, "Search"]
        if s.page == "done":
            return self._done_nodes(s)
        # <h4>Instruction:<br>{{ goal }}</h4>, then the Back to Search button
        head = ["Instruction:", s.goal.instruction_text, BACK_TO_SEARCH]
        if s.page == "results":
            texts = [*head, f"Page {s.page_num} (Total results: {len(s.results)})", *self._pager(s)]
            for asin in self._page_asins(s):
                p = self.catalog.products[asin]
                texts += [asin, p.title, p.price_tag]
            return texts
        p = self.catalog.products[s.asin]
        texts = [*head, PREV_PAGE]
        if s.page == "item":
            for kind, values in p.options.items():  # <h4>{{ type }}</h4>, then a <label> per value
                texts += [kind, *values]
            texts += [p.title, f"Price: {p.price_tag}", f"Rating: {p.rating}", *SUB_PAGES, BUY_NOW]
        elif s.page == "Description":
            texts.append(p.description)
        elif s.page == "Features":  # <p class="product-info"> {{bulletpoint}}</p>
            texts += [f" {b}" for b in p.bullet_points]
        elif s.page == "Reviews":  # <h4>"{{title}}"</h4> <span>{{score}}</span> <p>{{body}}</p>
            for r in p.reviews:
                texts += [f'"{r.get("title", "")}"', str(r.get("score", "")), str(r.get("body", ""))]
        return texts

    def _done_nodes(self, s: Session) -> list[str]:
        """WebShop's done page as its text env renders it: the env passes the template the reward, the
        ASIN and the options only, so the MTurk code, the purchased product's fields and the goal print
        "None" (or nothing, for the goal's fields). The display:none and hidden parts are text too."""
        purchased = ["attrs", "None", "category", "None", "query", "None", "product category", "None"]
        target = ["asin", "options", "attrs", "price upper", "instuction text", "category"]  # sic
        target += ["product category", "query"]
        return [
            "Thank you for shopping with us!",
            "Your code: ",
            "None",  # <pre>{{ mturk_code }}</pre>
            " (Paste it in your MTurk interface.)",
            "Purchased",
            "asin",
            s.asin,
            "options",
            options_json(s.options),
            *purchased,
            "Target",
            *target,
            "Goal ",
            "None",  # {{ goal | pprint }}
            "Reward",
            "Your score (min 0.0, max 1.0)",
            str(s.reward.reward),
            "Reward Details ",
            "None",  # {{ reward_info | pprint }}
        ]

    def _pager(self, s: Session) -> list[str]:
        """WebShop's text-agent results template: "< Prev" from page 2, "Next >" on every page."""
        return [PREV_PAGE, NEXT_PAGE] if s.page_num > 1 else [NEXT_PAGE]

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
            s.reward = compute_reward(
                self.catalog.products[s.asin], s.goal, dict(s.options), self.reward_mode
            )
            s.page = "done"

    def _show_results(self, s: Session, page_num: int) -> None:
        s.page, s.page_num, s.asin, s.options = "results", page_num, None, {}
