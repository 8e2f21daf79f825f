"""Thoughts for ALFWorld expert actions, written from the expert's whole plan (the objects it will take,
where it will put them, and the appliance it will use)."""

from __future__ import annotations

import re

_TAKE = re.compile(r"^take (.+?) from (.+)$")
_PUT = re.compile(r"^put (.+?) (?:in/on|in|on) (.+)$")
_USE_WITH = re.compile(r"^(clean|heat|cool) (.+?) with (.+)$")
_GOAL = re.compile(r"Your task is to:\s*(.+?)\.?\s*$", re.MULTILINE)
_PAST = {"clean": "cleaned", "heat": "heated", "cool": "cooled"}


def _kind(name: str) -> str:
    """'apple 1' -> 'apple'."""
    return re.sub(r"\s+\d+$", "", name.strip())


def _a(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


def goal_of(first_observation: str) -> str:
    m = _GOAL.search(first_observation)
    return m.group(1).strip() if m else "finish the task"


def _plan(goal: str, actions: list[str]) -> str:
    takes = [m.groups() for a in actions if (m := _TAKE.match(a))]
    puts = [m.groups() for a in actions if (m := _PUT.match(a))]
    treat = next((m.groups() for a in actions if (m := _USE_WITH.match(a))), None)
    uses = [a[4:] for a in actions if a.startswith("use ")]
    if not takes:
        return f"My task is to {goal}."
    obj = _kind(takes[0][0])
    parts = [f"My task is to {goal}. First I need to find {_a(obj)} {obj}"]
    if len(takes) > 1 and len(puts) > 1:
        parts[0] += " (two of them, one at a time)"
    if treat:
        parts.append(f"{treat[0]} it with the {_kind(treat[2])}")
    if uses:
        parts.append(f"look at it under the {_kind(uses[0])}")
    if puts:
        parts.append(f"put it in/on the {_kind(puts[-1][1])}")
    return ", then ".join(parts) + "."


def thoughts(first_observation: str, actions: list[str]) -> list[str]:
    """One short thought per expert action."""
    goal = goal_of(first_observation)
    takes = [m.group(1) for a in actions if (m := _TAKE.match(a))]
    target = _kind(takes[0]) if takes else "object"
    n_puts = sum(bool(_PUT.match(a)) for a in actions)
    holding: str | None = None
    put_done = 0
    out: list[str] = []
    for i, a in enumerate(actions):
        nxt = actions[i + 1] if i + 1 < len(actions) else ""
        after = actions[i + 2] if i + 2 < len(actions) else ""
        if a.startswith("go to "):
            place = a[6:]
            if holding is None:
                t = f"The {target} may be at the {place}. I go there to look."
                if nxt.startswith("use ") or after.startswith("use "):
                    t = f"I need a light to look at things under. I go to the {place}."
            elif (m := _USE_WITH.match(nxt)) and m.group(3) == place:
                t = f"Now I {m.group(1)} the {holding} with the {place}, so I go there."
            elif nxt.startswith("use "):
                t = f"With the {holding} in hand I go to the {place} to find a light."
            elif _PUT.match(nxt) or (nxt.startswith("open ") and _PUT.match(after)):
                t = f"Now I take the {holding} to the {place}."
            else:
                t = f"I go to the {place} with the {holding}."
        elif a.startswith("open "):
            t = f"The {a[5:]} is closed. I open it."
        elif a.startswith("close "):
            t = f"I close the {a[6:]} and move on." if holding is None else f"I close the {a[6:]}."
        elif m := _TAKE.match(a):
            holding = m.group(1)
            if put_done:
                t = f"Here is another {_kind(holding)}. I take the {holding} from the {m.group(2)}."
            else:
                t = f"I found the {holding}. I take it from the {m.group(2)}."
        elif m := _PUT.match(a):
            put_done += 1
            holding = None
            if put_done < n_puts:
                t = f"I put the {m.group(1)} in/on the {m.group(2)}. I still need one more {target}."
            else:
                t = f"I put the {m.group(1)} in/on the {m.group(2)}, which should finish the task."
        elif m := _USE_WITH.match(a):
            t = f"I {m.group(1)} the {m.group(2)} with the {m.group(3)}."
            holding = m.group(2)
            if nxt.startswith("go to "):
                t += f" Once it is {_PAST[m.group(1)]} I put it in place."
        elif a.startswith("use "):
            t = f"I turn on the {a[4:]} to look at the {holding or target} under it."
        elif a.startswith("examine "):
            t = f"I examine the {a[8:]}."
        elif a == "inventory":
            t = "I check what I am carrying."
        elif a == "look":
            t = "I look around."
        else:
            t = "I do the next step of my plan."
        if i == 0:
            t = f"{_plan(goal, actions)} {t}"
        out.append(t)
    return out
