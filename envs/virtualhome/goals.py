"""Goal tests: what must hold in the scene (and which actions must have been done) for success.

Two sources, in this order:
1. ``package``: the goal conditions shipped with ``virtualhome-eval``
   (``resources/task_state_LTL_formula_accurate.json``, 342 of the 518 programs): node states, edges
   between nodes, and ordered action groups such as ``LOOKAT|WATCH`` (one of them must have been done,
   after the previous group's).
2. ``derived`` (programs the package gives no goal for, or an empty one): what the program changes on
   the objects it touches, comparing the initial graph with the state after the whole program has run
   in the simulator (the package's final graphs give the same goals for every kept task): every state
   a touched object (or the character) gains, and every ON / INSIDE / HOLDS / SITTING edge that appears
   between two of them (edges into rooms, and CLOSE / FACING edges, move with every step and are left
   out).

Two relaxations, both because the programs are not consistent about things the task does not care about:
- holding is hand-blind: a HOLDS_RH goal is met by a HOLDS_LH edge and the other way round (the
  simulator gives the first free hand, and an agent may grab in another order than the program);
- placing is preposition-blind: an ON goal is met by an INSIDE edge and the other way round (people
  wrote ``[PUTBACK] <plate> <dishwasher>``, "put on", where "put in" is meant, and the goal file copies
  it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

DERIVED_RELATIONS = frozenset({"ON", "INSIDE", "HOLDS_RH", "HOLDS_LH", "SITTING"})
_SAME = {
    "HOLDS_RH": ("HOLDS_RH", "HOLDS_LH"),
    "HOLDS_LH": ("HOLDS_RH", "HOLDS_LH"),
    "ON": ("ON", "INSIDE"),
    "INSIDE": ("ON", "INSIDE"),
}


@dataclass(frozen=True)
class Goal:
    states: tuple[tuple[int, str], ...]  # (node id, STATE)
    relations: tuple[tuple[int, str, int], ...]  # (from id, RELATION, to id)
    actions: tuple[str, ...] = ()  # ordered groups of script actions, "A|B" = either
    source: str = "package"  # package | derived
    meta: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def to_json(self) -> dict:
        return {
            "source": self.source,
            "states": [list(s) for s in self.states],
            "relations": [list(r) for r in self.relations],
            "actions": list(self.actions),
        }

    @staticmethod
    def from_json(d: dict) -> Goal:
        return Goal(
            states=tuple((int(i), str(s)) for i, s in d["states"]),
            relations=tuple((int(a), str(r), int(b)) for a, r, b in d["relations"]),
            actions=tuple(d.get("actions", ())),
            source=d.get("source", "package"),
        )

    def empty(self) -> bool:
        return not (self.states or self.relations or self.actions)


def package_goal(entry: dict) -> Goal:
    """A goal from one ``vh_goal`` record of the package's goal file."""
    vh = entry["vh_goal"]
    states, relations = [], []
    for g in vh.get("goal", []):
        if {"id", "state"} <= g.keys():
            states.append((int(g["id"]), str(g["state"]).upper()))
        elif {"from_id", "relation_type", "to_id"} <= g.keys():
            relations.append((int(g["from_id"]), str(g["relation_type"]).upper(), int(g["to_id"])))
        else:
            raise ValueError(f"goal condition {g!r} is neither a node state nor an edge")
    actions = tuple(dict.fromkeys(str(a).upper() for a in vh.get("actions", [])))
    return Goal(tuple(dict.fromkeys(states)), tuple(dict.fromkeys(relations)), actions, "package")


def derived_goal(init: dict, final: dict, touched: set[int], char_id: int) -> Goal:
    """The states and relations the program changes on the objects it touches (see module docstring)."""
    keep = touched | {char_id}
    rooms = {n["id"] for n in init["nodes"] if n.get("category") == "Rooms"}
    init_states = {n["id"]: set(n["states"]) for n in init["nodes"]}
    states = []
    for n in sorted(final["nodes"], key=lambda n: n["id"]):
        if n["id"] in keep:
            for s in sorted(set(n["states"]) - init_states.get(n["id"], set())):
                states.append((n["id"], s.upper()))
    before = {(e["from_id"], e["relation_type"], e["to_id"]) for e in init["edges"]}
    relations = sorted(
        {
            (e["from_id"], e["relation_type"], e["to_id"])
            for e in final["edges"]
            if e["relation_type"] in DERIVED_RELATIONS
            and e["from_id"] in keep
            and e["to_id"] in keep
            and e["to_id"] not in rooms
        }
        - before
    )
    return Goal(tuple(states), tuple(relations), (), "derived")


def _relation_holds(world, a: int, rel: str, b: int) -> bool:
    return any(world.has_edge(a, r, b) for r in _SAME.get(rel, (rel,)))


def unmet(goal: Goal, world, done_actions: list[str]) -> list[str]:
    """The goal's conditions that do not hold now (empty list: the goal is met)."""
    out = []
    for nid, state in goal.states:
        node = world.node(nid)
        if node is None or state not in world.states_of(nid):
            out.append(f"{nid}:{state}")
    for a, rel, b in goal.relations:
        if world.node(a) is None or world.node(b) is None or not _relation_holds(world, a, rel, b):
            out.append(f"{a}-{rel}-{b}")
    pos = 0
    for group in goal.actions:
        options = set(group.split("|"))
        hit = next((k for k in range(pos, len(done_actions)) if done_actions[k] in options), None)
        if hit is None:
            out.append(f"action:{group}")
            break
        pos = hit + 1
    return out


def satisfied(goal: Goal, world, done_actions: list[str]) -> bool:
    return not unmet(goal, world, done_actions)
