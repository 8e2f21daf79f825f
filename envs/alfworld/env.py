"""ALFWorld text games (PyPI ``alfworld`` + ``textworld``) on the unpacked data.

Splits: ``train`` (3,554 solvable games, each with its expert action sequence from ``gt_traj.json``),
``seen`` (valid_seen, 140) and ``unseen`` (valid_unseen, 134, in the order of ``gamefile_id.txt``,
the order ETO and SPA-RL evaluate in). The game filter is AlfredTWEnv's: no "movable"/"Sliced" tasks,
and the game file must be marked solvable.
"""

from __future__ import annotations

import copy
import json
import re
import sys
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

from envs.base import EnvError, StepResult, Task
from envs.paths import data_dir

NAME = "alfworld"
MAX_STEPS = 40
SPLIT_DIRS = {"train": "train", "seen": "valid_seen", "unseen": "valid_unseen"}
# Folder-name prefix -> the short task-type names used in reports (the 6 ALFWorld task types).
TASK_TYPES = {
    "pick_and_place_simple": "pick",
    "look_at_obj_in_light": "examine",
    "pick_clean_then_place_in_recep": "clean",
    "pick_heat_then_place_in_recep": "heat",
    "pick_cool_then_place_in_recep": "cool",
    "pick_two_obj_and_place": "pick_two",
}
INVALID_FEEDBACK = "Nothing happens."
_ARRIVE = re.compile(r"^You arrive at loc \d+\. ")
_PUT = re.compile(r"^put (.+?) (?:in|on|into|onto) (.+)$")


def alfworld_root() -> Path:
    root = data_dir() / "alfworld"
    if not (root / ".ready").exists():
        raise EnvError(f"ALFWorld data not found at {root}: run `bash scripts/setup.sh` first")
    return root


def task_type_of(task_dir_name: str) -> str:
    for prefix, short in TASK_TYPES.items():
        if task_dir_name.startswith(prefix):
            return short
    raise EnvError(f"cannot tell the task type of ALFWorld game {task_dir_name!r}")


def _solvable(game_file: Path) -> bool:
    with open(game_file) as f:
        return bool(json.load(f).get("solvable", False))


@lru_cache(maxsize=8)
def _split_game_ids(split: str) -> tuple[str, ...]:
    """Game ids (``<task folder>/<trial folder>``) of a split, in canonical order."""
    if split not in SPLIT_DIRS:
        raise EnvError(f"unknown ALFWorld split {split!r}; known: {', '.join(SPLIT_DIRS)}")
    root = alfworld_root()
    base = root / "json_2.1.1" / SPLIT_DIRS[split]
    ids = []
    for game_file in sorted(base.glob("*/*/game.tw-pddl")):
        rel = game_file.parent.relative_to(base).as_posix()
        if "movable" in rel or "Sliced" in rel or not _solvable(game_file):
            continue
        ids.append(rel)
    if split == "unseen":
        order = [ln.strip() for ln in (root / "gamefile_id.txt").read_text().splitlines() if ln.strip()]
        if sorted(order) != ids:
            raise EnvError(f"{root / 'gamefile_id.txt'} does not list exactly the {len(ids)} unseen games")
        ids = order
    return tuple(ids)


def load_tasks(split: str, limit: int | None = None) -> list[Task]:
    base = alfworld_root() / "json_2.1.1" / SPLIT_DIRS.get(split, split)
    tasks = []
    for game_id in _split_game_ids(split)[:limit]:
        expert = None
        gt = base / game_id / "gt_traj.json"
        if gt.exists():
            turns = json.loads(gt.read_text())
            expert = tuple(t["value"] for t in turns if t["from"] == "gpt")
        tasks.append(
            Task(
                env=NAME,
                task_id=game_id,
                split=split,
                task_type=task_type_of(game_id.split("/")[0]),
                expert_actions=expert,
                meta={"game_file": str(base / game_id / "game.tw-pddl")},
            )
        )
    return tasks


def expert_trajectory(task: Task) -> tuple[str, list[tuple[str, str]]]:
    """The expert's episode from ``gt_traj.json``: the first observation and (action, observation) pairs,
    observations cleaned exactly as :class:`AlfWorldEnv` cleans the live game's text."""
    gt = Path(task.meta["game_file"]).parent / "gt_traj.json"
    if not gt.exists():
        raise EnvError(f"ALFWorld game {task.task_id!r} has no expert trajectory ({gt} is missing)")
    turns = json.loads(gt.read_text())
    if not turns or turns[0].get("from") != "human" or len(turns) % 2 != 1:
        raise EnvError(f"{gt}: expected human, then alternating gpt/human turns")
    pairs = []
    for k in range(1, len(turns), 2):
        if turns[k].get("from") != "gpt" or turns[k + 1].get("from") != "human":
            raise EnvError(f"{gt}: turn {k} breaks the gpt/human alternation")
        pairs.append((turns[k]["value"].strip(), clean_observation(turns[k + 1]["value"])))
    return clean_observation(turns[0]["value"]), pairs


def normalize_action(action: str) -> str:
    """Canonical command text: lower case, single spaces, no final period; 'put X in Y' -> 'put X in/on Y'.

    The older ALFWorld grammar (the one the ETO/SPA-RL prompts use) only accepts the literal 'in/on'.
    """
    a = " ".join(action.strip().lower().split()).rstrip(".").strip()
    m = _PUT.match(a)
    if m and "in/on" not in a:
        a = f"put {m.group(1)} in/on {m.group(2)}"
    return a


def clean_observation(text: str) -> str:
    text = text.strip()
    if text.startswith("-= Welcome to TextWorld"):
        text = text.split("\n\n", 1)[1] if "\n\n" in text else text
    return _ARRIVE.sub("", text).strip()


class _Translations:
    """Memoised ``fast_downward.pddl2sas``. textworld translates a game's PDDL to SAS four times per
    episode (plain and optimised, once when the game loads and again on reset), ~0.7 s each on a CPU
    core, always from the same text; replaying a game (several rollouts per task, several models on
    the same test games) repeats them all. Results are deterministic; the task object is copied out,
    since textworld keeps and reads it per state."""

    def __init__(self, size: int = 32) -> None:
        self.size = size
        self.entries: OrderedDict[tuple, tuple] = OrderedDict()
        self.misses = 0
        self.enabled = True  # False: translate every time, as textworld does (for benchmarks)

    @contextmanager
    def active(self) -> Iterator[None]:
        import fast_downward

        original = fast_downward.pddl2sas
        if not self.enabled:
            yield
            return

        def pddl2sas(domain: str, problem: str, verbose: bool = False, optimize: bool = False):
            key = (domain, problem, optimize)
            if key not in self.entries:
                self.misses += 1
                self.entries[key] = original(domain, problem, verbose=verbose, optimize=optimize)
                if len(self.entries) > self.size:
                    self.entries.popitem(last=False)
            self.entries.move_to_end(key)
            task, sas = self.entries[key]
            return copy.deepcopy(task), sas

        fast_downward.pddl2sas = pddl2sas
        try:
            yield
        finally:
            fast_downward.pddl2sas = original


TRANSLATIONS = _Translations()


class _Parses:
    """Memoised grammar parsing in textworld. After every step textworld writes out the command of each
    action the game allows (dozens), and each goes through a tatsu parse of its template and of the
    conditions it queries: always the same few hundred strings, and half of a rollout's time on a CPU
    (profile in results/README.md, "Rollouts at the demo's shape"). The parse is a pure function of its
    arguments; a cached result is handed out as a deep copy, since textworld sets attributes on what it
    gets, so every caller sees fresh objects as before."""

    TARGETS = (
        ("textworld.envs.pddl.textgen", "_parse_and_convert"),
        ("textworld.logic", "_parse_and_convert"),
    )

    def __init__(self, size: int = 8192) -> None:
        self.size = size
        self.entries: OrderedDict[tuple, object] = OrderedDict()
        self.misses = 0
        self.enabled = True  # False: parse every time, as textworld does (for benchmarks)

    @contextmanager
    def active(self) -> Iterator[None]:
        import importlib

        if not self.enabled:
            yield
            return
        modules = [importlib.import_module(m) for m, _ in self.TARGETS]
        originals = [getattr(mod, name) for mod, (_, name) in zip(modules, self.TARGETS, strict=True)]
        for i, (mod, (_, name)) in enumerate(zip(modules, self.TARGETS, strict=True)):
            setattr(mod, name, self._memoised(i, originals[i]))
        try:
            yield
        finally:
            for mod, (_, name), original in zip(modules, self.TARGETS, originals, strict=True):
                setattr(mod, name, original)

    def _memoised(self, which: int, original):
        def parse(*args, **kwargs):
            try:
                key = (which, args, tuple(sorted(kwargs.items())))
                hash(key)
            except TypeError:  # an unhashable argument: not worth caching
                return original(*args, **kwargs)
            if key not in self.entries:
                self.misses += 1
                self.entries[key] = original(*args, **kwargs)
                if len(self.entries) > self.size:
                    self.entries.popitem(last=False)
            self.entries.move_to_end(key)
            return copy.deepcopy(self.entries[key])

        return parse


PARSES = _Parses()


class AlfWorldEnv:
    """One ALFWorld game at a time; ``reset`` loads the task's game file."""

    name = NAME

    def __init__(self, max_steps: int = MAX_STEPS, admissible_commands: bool = False):
        self.max_steps = max_steps
        # The game's list of valid commands costs time at every step; the agent never sees it.
        self.want_admissible = admissible_commands
        self.admissible_commands: list[str] = []
        self._env = None
        self._steps = 0
        self._done = True

    def reset(self, task: Task) -> str:
        import textworld
        from alfworld.agents.environment.alfred_tw_env import AlfredDemangler, AlfredInfos

        if task.env != NAME:
            raise EnvError(f"task {task.task_id!r} belongs to {task.env!r}, not {NAME!r}")
        self.close()
        infos = textworld.EnvInfos(won=True, admissible_commands=self.want_admissible, extras=["gamefile"])
        # fast_downward's PDDL translator overwrites sys.argv while loading a game; put it back, since
        # results files record the command line.
        argv = sys.argv[:]
        try:
            with TRANSLATIONS.active(), PARSES.active():
                self._env = textworld.start(
                    task.meta["game_file"], request_infos=infos, wrappers=[AlfredDemangler(), AlfredInfos]
                )
                state = self._env.reset()
        finally:
            sys.argv = argv
        self._steps, self._done = 0, False
        self.admissible_commands = list(state["admissible_commands"] or []) if self.want_admissible else []
        return clean_observation(state.feedback)

    def step(self, action: str) -> StepResult:
        if self._env is None or self._done:
            raise EnvError("step() called before reset() or after the episode ended")
        command = normalize_action(action)
        with PARSES.active():
            state, _, _ = self._env.step(command)
        self._steps += 1
        feedback = clean_observation(state.feedback)
        won = bool(state["won"])
        truncated = not won and self._steps >= self.max_steps
        self._done = won or truncated
        if self.want_admissible:
            self.admissible_commands = list(state["admissible_commands"] or [])
        return StepResult(
            observation=feedback,
            reward=1.0 if won else 0.0,
            done=self._done,
            success=won,
            grounded=feedback != INVALID_FEEDBACK,
            info={"command": command, "truncated": truncated},
        )

    def close(self) -> None:
        if self._env is not None:
            self._env.close()
            self._env = None
