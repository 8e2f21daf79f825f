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


class _Memo:
    """Pure functions of textworld's dependencies, memoised while ``active()``: each target ``(module,
    attribute)`` is replaced by a caching wrapper and put back afterwards. ``key(args, kwargs)`` names a
    call's result (None: do not cache this call); ``copy_out`` hands a cached result out so that no caller
    can change the cached one. An LRU of ``size`` entries; ``misses`` counts the calls that ran the original;
    ``enabled = False`` runs the originals, as textworld does (for benchmarks)."""

    def __init__(self, targets: tuple[tuple[str, str], ...], key, copy_out, size: int) -> None:
        self.targets, self.key, self.copy_out, self.size = targets, key, copy_out, size
        self.entries: OrderedDict[tuple, object] = OrderedDict()
        self.misses = 0
        self.enabled = True

    @contextmanager
    def active(self) -> Iterator[None]:
        import importlib

        if not self.enabled:
            yield
            return
        patched = []
        for which, (module, name) in enumerate(self.targets):
            mod = importlib.import_module(module)
            patched.append((mod, name, getattr(mod, name)))
            setattr(mod, name, self._wrap(which, patched[-1][2]))
        try:
            yield
        finally:
            for mod, name, original in patched:
                setattr(mod, name, original)

    def _wrap(self, which: int, original):
        def call(*args, **kwargs):
            key = self.key(args, kwargs)
            if key is None:
                return original(*args, **kwargs)
            key = (which, key)
            if key not in self.entries:
                self.misses += 1
                self.entries[key] = original(*args, **kwargs)
                if len(self.entries) > self.size:
                    self.entries.popitem(last=False)
            self.entries.move_to_end(key)
            return self.copy_out(self.entries[key])

        return call


def _translation_key(args: tuple, kwargs: dict) -> tuple:
    named = dict(zip(("domain", "problem", "verbose", "optimize"), args, strict=False)) | kwargs
    return named["domain"], named["problem"], named.get("optimize", False)  # verbose changes no result


def _parse_key(args: tuple, kwargs: dict) -> tuple | None:
    key = (args, tuple(sorted(kwargs.items())))
    try:
        hash(key)
    except TypeError:  # an unhashable argument: not worth caching
        return None
    return key


# ``fast_downward.pddl2sas``: textworld translates a game's PDDL to SAS four times per episode (plain and
# optimised, once when the game loads and again on reset), ~0.7 s each on a CPU core, always from the same
# text; replaying a game (several rollouts per task, several models on the same test games) repeats them
# all. The task object is copied out, since textworld keeps and reads it per state.
TRANSLATIONS = _Memo(
    (("fast_downward", "pddl2sas"),), _translation_key, lambda r: (copy.deepcopy(r[0]), r[1]), size=32
)
# textworld's grammar parsing: after every step it writes out the command of each action the game allows
# (dozens), each starting with a tatsu parse of its template and of the conditions it queries, always the
# same few hundred strings. A step took 68.5 ms without the memo and 21.6 ms with it, saying the same
# (bench/bench_alfworld_steps.py). Results are copied out whole: textworld sets attributes on what it gets.
PARSES = _Memo(
    (("textworld.envs.pddl.textgen", "_parse_and_convert"), ("textworld.logic", "_parse_and_convert")),
    _parse_key,
    copy.deepcopy,
    size=8192,
)


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
