"""Thoughts for VirtualHome expert actions, written from the whole program: the first thought states the
task and the plan (the program's object actions), later thoughts say why the agent goes somewhere (for
what it will do there) or what the action is for."""

from __future__ import annotations

import re

from envs.virtualhome.actions import LOOK_AROUND, Command, format_command, parse_command

_TASK = re.compile(r"Your task:\s*(.+?)\.(?:\s|$)")
_ROOMS = re.compile(r"The house has \d+ rooms: (.+?)\.")
_MOVES = ("WALK", "RUN", "FIND", "TURNTO")


def _phrase(cmd: Command, it: str | None = None) -> str:
    """'put the bowl on the oven'; with ``it``, that object is called 'it'."""
    return format_command(cmd.action, ["it" if o == it else f"the {o}" for o in cmd.objects])


def _plan(cmds: list[Command]) -> str:
    steps = [_phrase(c) for c in cmds if c.action not in (*_MOVES, LOOK_AROUND)]
    steps = list(dict.fromkeys(steps))
    if not steps:
        return ""
    if len(steps) > 4:
        steps = [*steps[:3], "so on"]
    return " My plan: " + (", ".join(steps[:-1]) + " and " + steps[-1] if len(steps) > 1 else steps[0]) + "."


def thoughts(first_observation: str, actions: list[str]) -> list[str]:
    """One short thought per expert action."""
    m = _TASK.search(first_observation)
    task = m.group(1).strip().lower() if m else "finish the task"
    r = _ROOMS.search(first_observation)
    rooms = set(r.group(1).split(", ")) if r else set()
    cmds = [parse_command(a) for a in actions]
    if any(c is None for c in cmds):
        bad = actions[[c is None for c in cmds].index(True)]
        raise ValueError(f"expert action {bad!r} is not a VirtualHome command")
    out = []
    for i, c in enumerate(cmds):
        nxt = cmds[i + 1] if i + 1 < len(cmds) else None
        target = c.objects[0] if c.objects else None
        if c.action in ("WALK", "RUN") and target in rooms:
            later = next((n for n in cmds[i + 1 :] if n.objects and n.objects[0] not in rooms), None)
            t = f"I go to the {target}" + (f", where the {later.objects[0]} should be." if later else ".")
        elif c.action in _MOVES and nxt is not None and target in nxt.objects and nxt.action not in _MOVES:
            t = f"I go to the {target} so that I can {_phrase(nxt, it=target)}."
        elif c.action in _MOVES:
            t = f"I need the {target} next." if c.action != "TURNTO" else f"I turn to the {target}."
        elif c.action == "OPEN":
            t = f"The {target} is closed. I open it."
        elif c.action == "GRAB":
            uses = (n for n in cmds[i + 1 :] if target in n.objects and n.action not in (*_MOVES, "GRAB"))
            use = next(uses, None)
            t = f"I pick up the {target}" + (f" to {_phrase(use, it=target)} later." if use else ".")
        else:
            t = f"Now I {_phrase(c)}."
        if i == 0:
            t = f"My task: {task}.{_plan(cmds)} {t}"
        if nxt is None:
            t += " That should finish the task."
        out.append(t)
    return out
