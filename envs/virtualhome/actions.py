"""The agent's action language: one English command per turn, mapped to one simulator script action.

Each command names 0, 1 or 2 objects the way observations name them (``cup 2``, ``dining room``). Parsing
only splits a command into a script action and object phrases; which node a phrase means is decided by
the world (``world.py``), which knows the names. ``look around`` is the one command with no script
action: it re-lists the current room.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

LOOK_AROUND = "LOOKAROUND"  # pseudo-action: describe the room, change nothing


@dataclass(frozen=True)
class Verb:
    action: str  # the simulator's script action (virtualhome_eval ... scripts.Action member name)
    canonical: str  # how the expert writes it; {0}, {1} are object names
    patterns: tuple[str, ...]  # accepted forms, as regexes over the normalized command; groups = objects


def _v(action: str, canonical: str, *patterns: str) -> Verb:
    return Verb(action, canonical, patterns or (re.escape(canonical).replace(r"\{0\}", "(.+)"),))


# Order matters: the first verb with a matching pattern wins ("get up" before "get X", "take off X"
# before "take X", "put back X" / "put on X" before "put X on Y").
VERBS: tuple[Verb, ...] = (
    _v("STANDUP", "stand up", r"stand(?: up)?", r"get up"),
    _v("SLEEP", "sleep", r"sleep", r"go to sleep"),
    _v("WAKEUP", "wake up", r"wake up"),
    _v("WALK", "walk to {0}", r"(?:walk|go) (?:to|into|towards?) (.+)"),
    _v("RUN", "run to {0}", r"run (?:to|into|towards?) (.+)"),
    _v("FIND", "find {0}", r"(?:find|look for) (.+)"),
    _v("PUTOFF", "take off {0}", r"take off (.+)", r"take (.+) off"),
    _v(
        "GRAB",
        "grab {0}",
        r"(?:grab|take|pick up|get) (.+?) from .+",
        r"(?:grab|take|pick up|get) (.+)",
        r"pick (.+) up",
    ),
    _v("OPEN", "open {0}"),
    _v("CLOSE", "close {0}", r"(?:close|shut) (.+)"),
    _v("TURNTO", "turn to {0}", r"turn (?:to|towards?) (.+)", r"face (.+)"),
    _v("SWITCHON", "switch on {0}", r"(?:switch|turn) on (.+)", r"(?:switch|turn) (.+) on"),
    _v("SWITCHOFF", "switch off {0}", r"(?:switch|turn) off (.+)", r"(?:switch|turn) (.+) off"),
    _v("PUTOBJBACK", "put back {0}", r"put back (.+)", r"put (.+) back"),
    _v("PUTON", "wear {0}", r"(?:wear|put on) (.+)"),
    _v("PUTIN", "put {0} in {1}", r"(?:put|place) (.+) (?:in|into|inside) (.+)"),
    _v("PUTBACK", "put {0} on {1}", r"(?:put|place) (.+) (?:on|onto) (.+)"),
    _v("POUR", "pour {0} into {1}", r"pour (.+) (?:into|in|on|onto) (.+)"),
    _v("SIT", "sit on {0}", r"sit (?:down )?(?:on|in|at) (.+)"),
    _v("LIE", "lie on {0}", r"lie (?:down )?(?:on|in) (.+)"),
    _v("LOOKAT", "look at {0}"),
    _v("WATCH", "watch {0}"),
    _v("POINTAT", "point at {0}", r"point (?:at|to) (.+)"),
    _v("TOUCH", "touch {0}", r"(?:touch|pet) (.+)"),
    _v("READ", "read {0}"),
    _v("DRINK", "drink {0}", r"drink (?:from )?(.+)"),
    _v("EAT", "eat {0}"),
    _v("TYPE", "type on {0}", r"type (?:on )?(.+)"),
    _v("PUSH", "push {0}"),
    _v("PULL", "pull {0}"),
    _v("MOVE", "move {0}"),
    _v("WASH", "wash {0}"),
    _v("RINSE", "rinse {0}"),
    _v("SCRUB", "scrub {0}"),
    _v("WIPE", "wipe {0}"),
    _v("SQUEEZE", "squeeze {0}"),
    _v("PLUGIN", "plug in {0}", r"plug in (.+)", r"plug (.+) in"),
    _v("PLUGOUT", "plug out {0}", r"(?:plug out|unplug) (.+)", r"plug (.+) out"),
    _v("CUT", "cut {0}"),
    _v("DROP", "drop {0}", r"(?:drop|put down) (.+)", r"put (.+) down"),
    _v("RELEASE", "release {0}"),
    _v("GREET", "greet {0}"),
    _v(LOOK_AROUND, "look around", r"look around", r"look"),
)
BY_ACTION = {v.action: v for v in VERBS}
_COMPILED = tuple((v, tuple(re.compile(f"^{p}$") for p in v.patterns)) for v in VERBS)
_ARTICLES = re.compile(r"\b(?:the|a|an|some)\b")


@dataclass(frozen=True)
class Command:
    """A parsed command: the script action and the object phrases in script order.

    ``alternatives`` holds other ways to split the same text into object phrases (only for two-object
    commands whose object names could themselves contain the preposition)."""

    action: str
    objects: tuple[str, ...]
    alternatives: tuple[tuple[str, ...], ...] = ()


def normalize(text: str) -> str:
    """Lower case, underscores as spaces, no articles, no final period, single spaces."""
    t = text.strip().lower().replace("_", " ")
    t = t.strip().rstrip(".!").strip().strip("`'\"").strip()
    t = _ARTICLES.sub(" ", t)
    return " ".join(t.split())


def parse_command(text: str) -> Command | None:
    """The command's script action and object phrases, or None if no verb form matches."""
    t = normalize(text)
    for verb, patterns in _COMPILED:
        for pat in patterns:
            m = pat.match(t)
            if not m:
                continue
            objs = tuple(g.strip() for g in m.groups())
            if any(not o for o in objs):
                continue
            alts = _two_object_splits(t, pat) if len(objs) == 2 else ()
            return Command(verb.action, objs, tuple(a for a in alts if a != objs))
    return None


def _two_object_splits(text: str, pat: re.Pattern) -> tuple[tuple[str, ...], ...]:
    """Every split of a two-object command at its preposition (the regex picks the last one)."""
    lazy = re.compile(pat.pattern.replace("(.+)", "(.+?)", 1))
    out, m = [], lazy.match(text)
    if m:
        out.append(tuple(g.strip() for g in m.groups()))
    return tuple(out)


def format_command(action: str, names: list[str] | tuple[str, ...]) -> str:
    """The canonical command for a script action on named objects (the expert's wording)."""
    verb = BY_ACTION.get(action)
    if verb is None:
        raise ValueError(f"no command form for script action {action!r}")
    return verb.canonical.format(*names)


def script_actions() -> list[str]:
    """The script actions the language covers (all but the look-around pseudo-action)."""
    return [v.action for v in VERBS if v.action != LOOK_AROUND]
