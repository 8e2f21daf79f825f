"""WebShop products: raw scraped records cleaned by WebShop's published loading rules.

The rules (WebShop's product loader): skip records whose ASIN is 'nan' or longer than 10 characters and
repeated ASINs; title = ``name``, description = ``full_description``, features (bullet points) =
``small_description`` as a list; ``pricing`` "$a" or "$a - $b" becomes one price or a (low, high) range
shown as "$a" or "$a to $b" (no price: $100.0); option types are lower-cased and each value is
stripped, lower-cased, with "/" written " | "; attributes come from ``items_ins_v2`` (no entry:
``DUMMY_ATTR``); the query is lower-cased. The 1000-product setting has no review file, so every
product shows "Rating: N.A." and no reviews, as WebShop's own 1000-product index stored them.
A price range is turned into one price per product, drawn uniformly from the range as WebShop does,
but from a generator seeded by the ASIN (WebShop drew it unseeded at every start).
"""

from __future__ import annotations

import random
import re
from dataclasses import asdict, dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

DEFAULT_PRICE = 100.0
NO_RATING = "N.A."
DUMMY_ATTR = "DUMMY_ATTR"
PRICE_SEED = "webshop-price"


class ProductDataError(ValueError):
    """A raw product record that cannot be read; the message names the record and field."""


@dataclass(frozen=True)
class Product:
    asin: str
    title: str
    description: str
    bullet_points: tuple[str, ...]
    pricing: tuple[float, ...]  # one price, or (low, high)
    price_tag: str  # what the pages show: "$12.99" or "$10.0 to $20.0"
    price: float  # the one price this product costs in the simulation (drawn from a range)
    options: dict[str, list[str]]  # option type -> clickable values, in page order
    attributes: tuple[str, ...]
    category: str  # WebShop's coarse category: beauty, electronics, fashion, garden, grocery
    query: str  # the search query the product was scraped under
    product_category: str  # the breadcrumb "A › B › C"
    rating: str = NO_RATING
    reviews: tuple[dict[str, Any], ...] = ()
    instruction: str | None = None  # generated goal text from items_ins_v2, if any
    instruction_attributes: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("extra")
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Product:
        d = dict(d)
        for key in ("bullet_points", "pricing", "attributes", "reviews", "instruction_attributes"):
            d[key] = tuple(d.get(key) or ())
        return cls(**d)

    def search_text(self) -> str:
        """The text WebShop's search engine indexes: title, description, first bullet point and the
        options ("type: v1, v2, and type2: ..."), lower-cased."""
        option_text = ", and ".join(f"{name}: {', '.join(values)}" for name, values in self.options.items())
        first_bullet = self.bullet_points[0] if self.bullet_points else ""
        return " ".join([self.title, self.description, first_bullet, option_text]).lower()


def parse_pricing(raw: Any, asin: str) -> tuple[tuple[float, ...], str]:
    """'$a' -> ((a,), '$a'); '$a - $b' -> ((a, b), '$a to $b'); empty -> the $100.0 default."""
    if raw is None or raw == "" or raw == []:
        return (DEFAULT_PRICE,), f"${DEFAULT_PRICE}"
    if not isinstance(raw, str):
        raise ProductDataError(f"product {asin}: 'pricing' must be a '$x' or '$x - $y' string, got {raw!r}")
    try:
        prices = [float(Decimal(re.sub(r"[^\d.]", "", part))) for part in raw.split("$")[1:]]
    except InvalidOperation as e:
        raise ProductDataError(f"product {asin}: cannot read a price in 'pricing' {raw!r}") from e
    if not prices:
        raise ProductDataError(f"product {asin}: 'pricing' {raw!r} holds no '$' price")
    if len(prices) == 1:
        return (prices[0],), f"${prices[0]}"
    return (prices[0], prices[1]), f"${prices[0]} to ${prices[1]}"


def draw_price(asin: str, pricing: tuple[float, ...]) -> float:
    """A product's one price: the price, or a uniform draw from its range (seeded by the ASIN)."""
    if len(pricing) == 1:
        return pricing[0]
    return random.Random(f"{PRICE_SEED}:{asin}").uniform(pricing[0], pricing[1])


def parse_options(raw: Any, asin: str) -> dict[str, list[str]]:
    if not raw:
        return {}
    if not isinstance(raw, dict):
        raise ProductDataError(f"product {asin}: 'customization_options' must be an object, got {type(raw)}")
    options: dict[str, list[str]] = {}
    for name, contents in raw.items():
        if contents is None:
            continue
        try:
            options[name.lower()] = [c["value"].strip().replace("/", " | ").lower() for c in contents]
        except (KeyError, TypeError, AttributeError) as e:
            raise ProductDataError(
                f"product {asin}: option {name!r} has a value without a 'value' text"
            ) from e
    return options


def clean_products(raw_products: list[dict[str, Any]], raw_attributes: dict[str, Any]) -> list[Product]:
    """Raw records (items_shuffle_1000.json) + attributes (items_ins_v2_1000.json) -> products."""
    if not isinstance(raw_products, list):
        raise ProductDataError("the product file must hold a JSON list of product records")
    if not isinstance(raw_attributes, dict):
        raise ProductDataError("the attribute file must hold a JSON object keyed by ASIN")
    seen: set[str] = set()
    products = []
    for i, p in enumerate(raw_products):
        if not isinstance(p, dict):
            raise ProductDataError(f"product record {i} is not an object")
        asin = p.get("asin")
        if not isinstance(asin, str):
            raise ProductDataError(f"product record {i} has no 'asin' string")
        if asin == "nan" or len(asin) > 10 or asin in seen:
            continue
        seen.add(asin)
        missing = [
            k for k in ("name", "full_description", "small_description", "category", "query") if k not in p
        ]
        if missing:
            raise ProductDataError(f"product {asin} (record {i}) lacks {missing}")
        bullets = p["small_description"]
        bullets = list(bullets) if isinstance(bullets, list) else [bullets]
        pricing, price_tag = parse_pricing(p.get("pricing"), asin)
        attrs = raw_attributes.get(asin, {})
        products.append(
            Product(
                asin=asin,
                title=p["name"],
                description=p["full_description"] or "",
                bullet_points=tuple(b or "" for b in bullets),
                pricing=pricing,
                price_tag=price_tag,
                price=draw_price(asin, pricing),
                options=parse_options(p.get("customization_options"), asin),
                attributes=tuple(attrs["attributes"]) if "attributes" in attrs else (DUMMY_ATTR,),
                category=p["category"],
                query=p["query"].lower().strip(),
                product_category=p.get("product_category") or "",
                instruction=attrs.get("instruction") or None,
                instruction_attributes=tuple(attrs.get("instruction_attributes") or ()),
            )
        )
    return products
