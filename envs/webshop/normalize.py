"""WebShop's color normalisation for option matching: an option value that contains a known color word
is reduced to the first such word in WebShop's color list order (so "dark navy blue" -> "blue", and,
as in WebShop, any value is scanned, e.g. "standard" -> "tan")."""

from __future__ import annotations

# WebShop's color list, in its order (the order decides which word wins).
COLOR_SET: tuple[str, ...] = (
    "alabaster", "apricot", "aqua", "ash", "asphalt", "azure", "banana", "beige", "black", "blue",
    "blush", "bordeaux", "bronze", "brown", "burgundy", "camel", "camo", "caramel", "champagne",
    "charcoal", "cheetah", "chestnut", "chocolate", "christmas", "coffee", "cognac", "copper", "coral",
    "cranberry", "cream", "crystal", "dark", "denim", "eggplant", "elephant", "espresso", "fuchsia",
    "gold", "granite", "grape", "graphite", "grass", "gray", "green", "grey", "heather", "indigo",
    "ivory", "ivy", "khaki", "lavender", "lemon", "leopard", "light", "lilac", "lime", "magenta",
    "maroon", "mauve", "merlot", "midnight", "mint", "mocha", "multicolor", "mushroom", "mustard",
    "natural", "navy", "nude", "olive", "orange", "peach", "pewter", "pink", "plum", "purple",
    "rainbow", "red", "rose", "royal", "rust", "sand", "sapphire", "seashell", "silver", "skull",
    "slate", "steel", "stone", "stonewash", "sunflower", "tan", "taupe", "teal", "tiger", "turquoise",
    "violet", "walnut", "wheat", "white", "wine", "yellow",
)  # fmt: skip


def normalize_color(value: str | tuple[str, ...]) -> str | tuple[str, ...]:
    """The first color word of COLOR_SET found inside ``value`` (a substring test), else ``value``. As in
    WebShop, a tuple (the ``(type, value)`` goal options of its reward) gets a membership test instead:
    only an element that is exactly a color word normalises it."""
    for color in COLOR_SET:
        if color in value:
            return color
    return value
