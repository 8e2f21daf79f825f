"""Task building from the installed ``virtualhome-eval`` package (run once, at set-up).

Source: the package's 518 programs of scene 1 (``TrimmedTestScene1``), each a text file (title line,
description line, script lines such as ``[WALK] <dining_room> (1.201)``) with its initial and final
scene graphs, and its goal file (see ``goals.py``). A program becomes a task unless:
- ``malformed``: its script cannot be parsed, or names a node its initial graph lacks;
- ``not executable``: the simulator refuses one of its lines, executed step by step from the initial
  graph through the agent's action interface;
- ``no goal``: neither the package nor the derived rule gives any condition;
- ``goal met at start``: the goal already holds in the initial graph.

Splits (seeded, written into the task file): the scene is the same for every program, so the test split
holds out whole task TITLES. ``unseen`` (the test split): every task of ``UNSEEN_TITLES`` titles drawn
with ``random.Random(SPLIT_SEED)`` from the sorted titles; ``seen``: ``SEEN_FRACTION`` of each remaining
title's tasks (rounded, at least one, but never a title's only task), drawn with the same generator;
``train``: the rest.
"""

from __future__ import annotations

import importlib.util
import json
import random
import re
from collections import Counter, defaultdict
from functools import lru_cache
from pathlib import Path

from envs.base import EnvError
from envs.virtualhome.actions import parse_command
from envs.virtualhome.goals import Goal, derived_goal, package_goal, satisfied, unmet
from envs.virtualhome.world import World

PACKAGE = "virtualhome_eval"
PACKAGE_VERSION = "0.1.1"
PROGRAMS_DIR = "dataset/programs_processed_precond_nograb_morepreconds"
SCENE_DIR = "TrimmedTestScene1_graph/results_intentions_march-13-18"
GOAL_FILE = "resources/task_state_LTL_formula_accurate.json"
SPLIT_SEED = 0
UNSEEN_TITLES = 5
SEEN_FRACTION = 0.1
_LINE = re.compile(r"^\[(\w+)\]((?:\s*<[^>]+>\s*\([\d.]+\))*)\s*$")
_ARG = re.compile(r"<([^>]+)>\s*\(([\d.]+)\)")


def package_root() -> Path:
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise EnvError(
            f"the {PACKAGE} package is not installed: run `bash scripts/setup.sh` "
            f"(it installs virtualhome-eval=={PACKAGE_VERSION} with --no-deps)"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def graph_path(program_id: str) -> Path:
    return package_root() / PROGRAMS_DIR / "init_and_final_graphs" / SCENE_DIR / f"file{program_id}.json"


def program_path(program_id: str) -> Path:
    return package_root() / PROGRAMS_DIR / "executable_programs" / SCENE_DIR / f"file{program_id}.txt"


def program_ids() -> list[str]:
    folder = package_root() / PROGRAMS_DIR / "executable_programs" / SCENE_DIR
    if not folder.is_dir():
        raise EnvError(f"{folder} is missing: is {PACKAGE}=={PACKAGE_VERSION} installed whole?")
    return sorted((p.stem.removeprefix("file") for p in folder.glob("file*.txt")), key=_id_key)


def _id_key(pid: str) -> tuple[int, int]:
    a, b = pid.split("_")
    return int(a), int(b)


@lru_cache(maxsize=1)
def name_equivalence() -> dict:
    return json.loads((package_root() / "resources" / "class_name_equivalence.json").read_text())


@lru_cache(maxsize=16)
def _graphs_text(program_id: str) -> str:
    return graph_path(program_id).read_text()


def load_graphs(program_id: str) -> tuple[dict, dict]:
    """(initial graph, final graph) of a program, fresh dicts each call."""
    d = json.loads(_graphs_text(program_id))
    return d["init_graph"], d["final_graph"]


def parse_program(text: str, where: str) -> tuple[str, str, list[tuple[str, list[tuple[str, int]]]]]:
    """(title, description, [(ACTION, [(class, node id), ...]), ...]) of a program file."""
    lines = text.split("\n")
    if len(lines) < 2:
        raise ValueError(f"{where}: expected a title line and a description line")
    title, description = lines[0].strip(), lines[1].strip()
    script = []
    for k, raw in enumerate(lines[2:], 3):
        raw = raw.strip()
        if not raw.startswith("["):
            continue
        m = _LINE.match(raw)
        if not m:
            raise ValueError(f"{where}:{k}: cannot parse script line {raw!r}")
        # "(2.1005)": instance 2 of the class in the original program, node id 1005 in the graph
        args = [(c.strip(), int(i.split(".")[-1])) for c, i in _ARG.findall(m.group(2))]
        script.append((m.group(1).upper(), args))
    if not title or not script:
        raise ValueError(f"{where}: empty title or no script lines")
    return title, description, script


@lru_cache(maxsize=1)
def package_goals() -> dict[str, dict]:
    """Program id -> the package's goal entry (``vh_goal``), over all titles of scene 1."""
    path = package_root() / GOAL_FILE
    data = json.loads(path.read_text())
    if "scene_1" not in data:
        raise EnvError(f"{path}: no 'scene_1' key")
    out = {}
    for entries in data["scene_1"].values():
        out.update(entries)
    return out


def slug(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", title.lower()).strip("_")


def build_task(program_id: str) -> tuple[dict | None, str | None, dict]:
    """One task record, or (None, drop reason, details). Runs the program through the environment."""
    try:
        title, description, script = parse_program(program_path(program_id).read_text(), f"file{program_id}")
    except ValueError as e:
        return None, "malformed", {"error": str(e)}
    init, final = load_graphs(program_id)
    world = World(init, name_equivalence())
    for k, (_, args) in enumerate(script):
        for cls, nid in args:
            node = world.node(nid)
            if node is None or node.class_name != cls:
                return None, "malformed", {"line": k + 1, "error": f"no node {nid} of class {cls!r}"}
    commands, done, states = [], [], [world.state]
    for k, (action, args) in enumerate(script):
        command = world.command_for(action, [nid for _, nid in args])
        parsed = parse_command(command)
        if parsed is None or parsed.action != action:
            return None, "not executable", {"line": k + 1, "command": command, "error": "does not parse back"}
        if not world.act(parsed).ok:
            return None, "not executable", {"line": k + 1, "command": command, "error": world.last_error}
        commands.append(command)
        done.append(action)
        states.append(world.state)  # each step makes a new state object: earlier ones stay valid
    entry = package_goals().get(program_id)
    goal = package_goal(entry) if entry is not None else Goal((), (), (), "derived")
    touched = {nid for _, args in script for _, nid in args}
    # Derived goals compare the initial graph with the end state of the simulator the agent plays in;
    # ``final_graph_agrees`` records whether the package's final graph gives the same goal.
    from_sim = derived_goal(init, world.state.to_dict(), touched, world.char_id)
    from_pkg = derived_goal(init, final, touched, world.char_id)
    if goal.empty():
        goal = from_sim
    if goal.empty():
        return None, "no goal", {}
    met_at = None
    for k, st in enumerate(states):
        world.state = st
        if satisfied(goal, world, done[:k]):
            met_at = k
            break
    if met_at == 0:
        return None, "goal met at start", {}
    world.state = states[-1]
    record = {
        "task_id": program_id,
        "title": title,
        "task_type": slug(title),
        "description": description,
        "program": [world.script_line(a, [nid for _, nid in args]) for a, args in script],
        "expert_actions": commands[:met_at] if met_at else commands,
        "goal": goal.to_json(),
        "expert_program_success": met_at is not None,
        "expert_unmet": [] if met_at else unmet(goal, world, done),
        "final_graph_agrees": (from_pkg.states, from_pkg.relations) == (from_sim.states, from_sim.relations),
    }
    return record, None, {}


def assign_splits(records: list[dict], seed: int = SPLIT_SEED) -> dict[str, str]:
    """task id -> split, by the module docstring's rule."""
    by_title: dict[str, list[str]] = defaultdict(list)
    for r in records:
        by_title[r["title"]].append(r["task_id"])
    rng = random.Random(seed)
    titles = sorted(by_title)
    unseen = set(rng.sample(titles, UNSEEN_TITLES))
    split = {}
    for t in titles:
        ids = sorted(by_title[t], key=_id_key)
        if t in unseen:
            split.update(dict.fromkeys(ids, "unseen"))
            continue
        n_seen = min(len(ids) - 1, max(1, round(SEEN_FRACTION * len(ids))))  # train keeps one or more
        seen = set(rng.sample(ids, n_seen))
        split.update({i: ("seen" if i in seen else "train") for i in ids})
    return split


def build_all(progress=None) -> dict:
    """Every task record with its split, and the dropped programs with reasons."""
    ids = program_ids()
    if not ids:
        raise EnvError(f"no programs found under {package_root() / PROGRAMS_DIR}")
    records, dropped = [], []
    for pid in progress(ids) if progress else ids:
        rec, reason, details = build_task(pid)
        if rec is None:
            dropped.append({"task_id": pid, "reason": reason, **details})
        else:
            records.append(rec)
    split = assign_splits(records)
    for r in records:
        r["split"] = split[r["task_id"]]
    return {
        "package": f"{PACKAGE}=={PACKAGE_VERSION}",
        "programs": len(ids),
        "split_rule": {"seed": SPLIT_SEED, "unseen_titles": UNSEEN_TITLES, "seen_fraction": SEEN_FRACTION},
        "unseen_titles": sorted({r["title"] for r in records if r["split"] == "unseen"}),
        "counts": dict(Counter(r["split"] for r in records)),
        "dropped_by_reason": dict(Counter(d["reason"] for d in dropped)),
        "tasks": records,
        "dropped": dropped,
    }
