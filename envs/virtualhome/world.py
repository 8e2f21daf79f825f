"""One household on the evolving-graph simulator (PyPI ``virtualhome-eval``): names, execution, text.

The simulator works on node ids; the agent works on names. Every node gets a name: its class name with
spaces for underscores, plus ``N`` (1, 2, ... in node-id order) when the graph holds several nodes of
that class. A bare class name given for such a class means the instance the agent can reach first
(held, then close by, then in the current room, then the lowest number).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from envs.base import EnvError
from envs.virtualhome.actions import LOOK_AROUND, Command, format_command, normalize

try:
    from virtualhome_eval.simulation.evolving_graph.common import TimeMeasurement
    from virtualhome_eval.simulation.evolving_graph.environment import (
        EnvironmentGraph,
        EnvironmentState,
        GraphNode,
        Property,
        Relation,
        State,
    )
    from virtualhome_eval.simulation.evolving_graph.execution import ExecutionInfo, ScriptExecutor
    from virtualhome_eval.simulation.evolving_graph.scripts import Action, Script, ScriptLine, ScriptObject
except ImportError as e:  # say how to get it, rather than a bare ModuleNotFoundError
    raise EnvError(
        "the VirtualHome simulator (package virtualhome-eval==0.1.1) is not importable: run "
        f"`bash scripts/setup.sh`, which installs it with --no-deps ({e})"
    ) from e


# Never listed: the building itself. They keep their names (a program may still use one).
HIDDEN_CATEGORIES = frozenset({"Walls", "Ceiling", "Floor", "Floors", "Rooms", "Characters"})
HIDDEN_CLASSES = frozenset({"doorjamb"})
_CONTAINER = frozenset({Property.CONTAINERS, Property.CAN_OPEN, Property.RECIPIENT})


def display_class(class_name: str) -> str:
    return class_name.replace("_", " ")


@dataclass(frozen=True)
class Outcome:
    ok: bool  # the simulator executed the action (or it was ``look around``)
    script_line: str | None  # e.g. "[GRAB] <cup> (1000)"; None for look-around and failures
    message: str  # what the agent is told


class World:
    """Simulator state for one episode plus the naming and text layer around it."""

    def __init__(self, graph: dict, name_equivalence: dict):
        self.graph = EnvironmentGraph(graph)
        # instance_selection: script objects are node ids, never re-bound to another node of the class
        self.state = EnvironmentState(self.graph, name_equivalence, instance_selection=True)
        self.executor = ScriptExecutor(self.graph, name_equivalence)
        nodes = sorted(self.graph.get_nodes(), key=lambda n: n.id)
        chars = [n for n in nodes if n.class_name == "character"]
        if not chars:
            raise ValueError("the scene graph has no character node")
        self.char_id = chars[0].id  # ScriptExecutor acts with character index 0: the lowest id
        by_class: dict[str, list[int]] = defaultdict(list)
        for n in nodes:
            by_class[n.class_name].append(n.id)
        self.name_of: dict[int, str] = {}
        self.class_ids: dict[str, list[int]] = {}  # normalized class name -> node ids
        for cls, ids in by_class.items():
            base = display_class(cls)
            self.class_ids[normalize(base)] = ids
            for k, nid in enumerate(ids, 1):
                self.name_of[nid] = base if len(ids) == 1 else f"{base} {k}"
        self.id_of = {normalize(name): nid for nid, name in self.name_of.items()}
        self.rooms = [n.id for n in nodes if n.category == "Rooms"]
        self._lines = 0
        self.last_error: str | None = None  # the simulator's reason for the last refusal (not shown)

    # --- reading the state --------------------------------------------------------------------
    def node(self, node_id: int) -> GraphNode | None:
        return self.state.get_node(node_id)

    def has_edge(self, from_id: int, relation: Relation | str, to_id: int) -> bool:
        rel = Relation[relation] if isinstance(relation, str) else relation
        return to_id in self.state.get_node_ids_from(from_id, rel)

    def targets(self, from_id: int, relation: Relation) -> set[int]:
        return set(self.state.get_node_ids_from(from_id, relation))

    def room_of(self, node_id: int) -> int | None:
        if node_id in self.rooms:
            return node_id
        seen = set()
        frontier = [node_id]
        while frontier:  # follow INSIDE edges outwards until a room
            nid = frontier.pop()
            for to in self.targets(nid, Relation.INSIDE):
                if to in self.rooms:
                    return to
                if to not in seen:
                    seen.add(to)
                    frontier.append(to)
        return None

    def held(self) -> list[int]:
        return sorted(
            self.targets(self.char_id, Relation.HOLDS_RH) | self.targets(self.char_id, Relation.HOLDS_LH)
        )

    def states_of(self, node_id: int) -> set[str]:
        return {s.name for s in self.node(node_id).states}

    def _hidden(self, node_id: int) -> bool:
        n = self.node(node_id)
        return n.category in HIDDEN_CATEGORIES or n.class_name in HIDDEN_CLASSES

    def _in_closed_container(self, node_id: int) -> bool:
        for to in self.targets(node_id, Relation.INSIDE):
            if to not in self.rooms and State.CLOSED in self.node(to).states:
                return True
        return False

    def visible_in_room(self, room_id: int) -> list[int]:
        """Objects directly in the room that the agent can see (not inside anything closed, not held)."""
        inside = [
            n.id
            for n in self.state.get_nodes()
            if room_id in self.targets(n.id, Relation.INSIDE) and n.id != self.char_id
        ]
        held = set(self.held())
        return sorted(
            i for i in inside if not self._hidden(i) and i not in held and not self._in_closed_container(i)
        )

    def contents(self, node_id: int) -> tuple[list[int], list[int]]:
        """(objects on it, objects inside it); inside is empty while it is closed, and for things that are
        not containers (the scene graph puts a pillow INSIDE a couch: geometry, not a place to look in)."""
        on, inside = [], []
        if node_id in self.rooms:
            return on, inside
        node = self.node(node_id)
        look_in = State.CLOSED not in node.states and bool(node.properties & _CONTAINER)
        for n in self.state.get_nodes():
            if n.id == self.char_id or self._hidden(n.id):
                continue
            if node_id in self.targets(n.id, Relation.ON):
                on.append(n.id)
            elif look_in and node_id in self.targets(n.id, Relation.INSIDE):
                inside.append(n.id)
        return sorted(on), sorted(inside)

    def place_of(self, node_id: int) -> str | None:
        """'on the table 2' / 'in the cupboard' for an object resting on or in another (not held)."""
        if node_id in self.held():
            return None
        for rel, word in ((Relation.ON, "on"), (Relation.INSIDE, "in")):
            for to in sorted(self.targets(node_id, rel)):
                n = self.node(to)
                if to in self.rooms or self._hidden(to) or (word == "in" and not n.properties & _CONTAINER):
                    continue
                return f"{word} the {self.name_of[to]}"
        return None

    # --- names --------------------------------------------------------------------------------
    def resolve(self, phrase: str) -> int | None:
        """The node a phrase names (see the module docstring), or None."""
        key = normalize(phrase)
        if key in self.id_of:
            return self.id_of[key]
        ids = self.class_ids.get(key)
        if not ids:
            return None
        held = set(self.held())
        close = self.targets(self.char_id, Relation.CLOSE)
        room = self.room_of(self.char_id)
        for pool in (held, close, {i for i in ids if self.room_of(i) == room}):
            hit = [i for i in ids if i in pool]
            if hit:
                return hit[0]
        return ids[0]

    def resolve_command(self, cmd: Command) -> list[int] | None:
        for objects in (cmd.objects, *cmd.alternatives):
            ids = [self.resolve(o) for o in objects]
            if all(i is not None for i in ids):
                return ids  # type: ignore[return-value]
        return None

    def names_list(self, ids: list[int]) -> str:
        """Names joined by commas, with runs like 'hanger 3, hanger 4, hanger 5' written 'hanger 3-5'."""
        groups: dict[str, list[int]] = defaultdict(list)
        order: list[str] = []
        for nid in ids:
            cls = display_class(self.node(nid).class_name)
            if cls not in groups:
                order.append(cls)
            name = self.name_of[nid]
            groups[cls].append(int(name.rsplit(" ", 1)[1]) if name != cls else 0)
        parts: list[str] = []
        for cls in sorted(order):
            nums = sorted(groups[cls])
            if nums == [0]:
                parts.append(cls)
                continue
            run: list[int] = []
            for k in [*nums, None]:
                if run and (k is None or k != run[-1] + 1):
                    if len(run) >= 3:
                        parts.append(f"{cls} {run[0]}-{run[-1]}")
                    else:
                        parts.extend(f"{cls} {r}" for r in run)
                    run = []
                if k is not None:
                    run.append(k)
        return ", ".join(parts)

    # --- acting -------------------------------------------------------------------------------
    def command_for(self, action: str, ids: list[int]) -> str:
        """The agent's command for a script action on these nodes (what the expert says)."""
        return format_command(action, [self.name_of[i] for i in ids])

    def script_line(self, action: str, ids: list[int]) -> str:
        args = "".join(f" <{self.node(i).class_name}> ({i})" for i in ids)
        return f"[{action}]{args}"

    def execute(self, action: str, ids: list[int]) -> bool:
        """Run one script action on the current state; False (state unchanged) if the simulator refuses."""
        self._lines += 1
        params = [ScriptObject(self.node(i).class_name, i) for i in ids]
        line = ScriptLine(Action[action], params, self._lines)
        info = ExecutionInfo()
        try:
            nxt = next(self.executor.call_action_method(Script([line]), self.state, info, 0), None)
        except Exception as e:  # the executors raise or assert on some impossible requests; both mean "no"
            nxt, info.messages = None, [*info.messages, f"{type(e).__name__}: {e}"]
        self.last_error = None if nxt is not None else (info.get_error_string() or "refused")
        if nxt is None:
            return False
        self.state = nxt
        TimeMeasurement.reset_all()  # the simulator never frees its timing records; keep memory flat
        return True

    def act(self, cmd: Command) -> Outcome:
        """Execute a parsed command and describe the result."""
        if cmd.action == LOOK_AROUND:
            return Outcome(True, None, self.describe_room())
        ids = self.resolve_command(cmd)
        if ids is None or len(ids) != Action[cmd.action].value[1]:
            return Outcome(False, None, "")
        if not self.execute(cmd.action, ids):
            return Outcome(False, None, "")
        return Outcome(True, self.script_line(cmd.action, ids), self.describe_result(cmd.action, ids))

    # --- text ---------------------------------------------------------------------------------
    def where(self) -> str:
        room = self.room_of(self.char_id)
        place = f"in the {self.name_of[room]}" if room is not None else "somewhere in the house"
        held = self.held()
        holding = " and ".join(f"the {self.name_of[h]}" for h in held) if held else "nothing"
        posture = [s.lower() for s in ("SITTING", "LYING") if s in self.states_of(self.char_id)]
        return f"You are {place}{', ' + posture[0] if posture else ''}, holding {holding}."

    def describe_room(self) -> str:
        room = self.room_of(self.char_id)
        if room is None:
            return self.where()
        seen = self.visible_in_room(room)
        return f"In the {self.name_of[room]} you see: {self.names_list(seen) or 'nothing'}. {self.where()}"

    def describe_object(self, node_id: int) -> str:
        """Where an object the agent just reached or opened is, its state and its contents."""
        states = self.states_of(node_id)
        bits = [s.lower() for s in ("OPEN", "CLOSED", "ON", "OFF") if s in states]
        place = self.place_of(node_id)
        if place is not None:
            bits.append(place)
        out = []
        name = self.name_of[node_id]
        if bits:
            out.append(f"The {name} is {' and '.join(bits)}.")
        on, inside = self.contents(node_id)
        if on:
            out.append(f"On it: {self.names_list(on)}.")
        if inside:
            out.append(f"In it: {self.names_list(inside)}.")
        elif "OPEN" in states:
            out.append("It is empty.")
        return " ".join(out)

    def describe_result(self, action: str, ids: list[int]) -> str:
        text = "You " + format_command(action, [f"the {self.name_of[i]}" for i in ids]) + "."
        target = ids[0] if ids else None
        if action in ("WALK", "RUN", "FIND") and target in self.rooms:
            return f"{text} {self.describe_room()}"
        if action in ("WALK", "RUN", "FIND", "OPEN") and target is not None:
            detail = self.describe_object(target)
            text = f"{text} {detail}" if detail else text
        return f"{text} {self.where()}"

    def intro(self) -> str:
        rooms = ", ".join(sorted(self.name_of[r] for r in self.rooms))
        return f"The house has {len(self.rooms)} rooms: {rooms}. {self.describe_room()}"
