"""Thoughts for WebShop expert actions, written from the instruction on the first page and the expert's
actions (search, paging or a second search, the product, its options, Buy Now)."""

from __future__ import annotations

import re

_INSTRUCTION = re.compile(r"Instruction:\s*\[SEP\]\s*(.+?)\s*\[SEP\]\s*Search\s*$", re.DOTALL)
_PRICE = re.compile(r",? and price lower than ([\d.]+) dollars\s*$")
_ACTION = re.compile(r"^(search|click)\[(.*)\]$", re.DOTALL)


def instruction_of(first_observation: str) -> str:
    m = _INSTRUCTION.search(first_observation)
    return m.group(1).strip() if m else ""


def _option_kind(instruction: str, value: str) -> str | None:
    """'size' for value '13' in '... with color: black, and size: 13 ...'."""
    at = instruction.lower().find(f": {value.lower()}")
    if at < 0:
        return None
    kind = re.split(r", and | with ", instruction[:at])[-1].strip()
    return kind or None


def _plan(instruction: str) -> str:
    m = _PRICE.search(instruction)
    budget = f", for less than ${float(m.group(1)):g}" if m else ""
    want = _PRICE.sub("", instruction).strip()
    want = re.sub(r"^(find me|i need|i want|i am looking for)\s+", "", want, flags=re.IGNORECASE)
    return f"I need to buy {want}{budget}."


def thoughts(first_observation: str, actions: list[str]) -> list[str]:
    """One short thought per expert action."""
    instruction = instruction_of(first_observation)
    has_budget = bool(_PRICE.search(instruction))
    searches, options, opened = 0, 0, False
    out = []
    for i, action in enumerate(actions):
        m = _ACTION.match(action.strip())
        kind, arg = (m.group(1), m.group(2).strip()) if m else ("", action)
        low = arg.lower()
        if kind == "search":
            searches, opened = searches + 1, False
            t = (
                "I will search with the words of the instruction."
                if searches == 1
                else "I will search again, now with words closer to the product's name."
            )
        elif low == "back to search":
            t = "The product I want is not among these results. I will go back and search with other words."
        elif low == "next >":
            t = "None of the products on this page is the right one. I will look at the next page."
        elif low == "< prev":
            t = "I will go back to the previous page."
        elif low in ("description", "features", "reviews"):
            t = f"I will read the {low} to check the product."
        elif low == "buy now":
            t = (
                "All the options the instruction asks for are selected. I will buy it."
                if options
                else "This product matches the instruction"
                + (" and its price is within the limit" if has_budget else "")
                + ". I will buy it."
            )
        elif not opened:  # the first other click after a search opens a product
            opened = True
            t = f"{arg.upper()} looks like the product the instruction describes"
            t += ", and its price is within the limit. I will open it." if has_budget else ". I will open it."
        else:
            options += 1
            option_kind = _option_kind(instruction, arg)
            t = (
                f"The instruction asks for {option_kind} {arg}, so I select it."
                if option_kind
                else (f'The instruction asks for "{arg}", so I select that option.')
            )
        if i == 0:
            t = f"{_plan(instruction)} {t}"
        out.append(t)
    return out
