"""ALFWorld step benchmark: replay expert trajectories (and a few invalid commands) with textworld's
grammar parsing memoised (envs/alfworld/env.py, ``PARSES``) and without, alternating, in one run; both
settings must produce the same observations, won flags and lists of valid commands.

    python bench/bench_alfworld_steps.py --games 8 --repeats 2

After every step textworld derives the text of each command the game then allows; without the memo each
derivation starts with a tatsu parse of the same template strings.
"""

from __future__ import annotations

import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from envs import load_tasks, make_env  # noqa: E402
from envs.alfworld.env import PARSES, TRANSLATIONS, expert_trajectory  # noqa: E402
from spa_rl.agent.schema import command_line, write_json_atomic  # noqa: E402
from spa_rl.cli import arg, parse  # noqa: E402

INVALID = ["jump", "open the fridge please", "look"]  # text the game does not accept (and one it does)


@dataclass
class StepBenchConfig:
    split: str = arg("train", "ALFWorld split the games come from (train: expert trajectories available)")
    games: int = arg(8, "first N games of the split")
    repeats: int = arg(2, "passes per setting, alternating their order")
    output: Path | None = arg(None, "also write the timings to this JSON file")


def one_pass(tasks, memoised: bool) -> tuple[float, int, list]:
    """Seconds spent in step() (resets excluded), steps taken, and everything the game said."""
    PARSES.entries.clear()
    PARSES.enabled = memoised
    env = make_env("alfworld", admissible_commands=True)
    seconds, steps, seen = 0.0, 0, []
    for task in tasks:
        seen.append((env.reset(task), env.admissible_commands))
        actions = [a for a, _ in expert_trajectory(task)[1]]
        for action in INVALID + actions:
            t0 = time.perf_counter()
            result = env.step(action)
            seconds += time.perf_counter() - t0
            steps += 1
            seen.append((result.observation, result.success, env.admissible_commands))
            if result.done:
                break
    env.close()
    PARSES.enabled = True
    return seconds, steps, seen


def main(argv: list[str] | None = None) -> None:
    cfg = parse(StepBenchConfig, argv=argv, doc=__doc__)

    tasks = load_tasks("alfworld", cfg.split, limit=cfg.games)
    for task in tasks:  # load every game once, so both settings find the PDDL translation memoised
        env = make_env("alfworld")
        env.reset(task)
        env.close()
    secs: dict[str, list[float]] = {"parse_every_time": [], "memoised": []}
    same, steps, won = True, 0, 0
    for rep in range(cfg.repeats):
        order = [False, True] if rep % 2 == 0 else [True, False]
        seen = {}
        for memoised in order:
            s, steps, seen[memoised] = one_pass(tasks, memoised)
            secs["memoised" if memoised else "parse_every_time"].append(round(s, 2))
        same &= seen[True] == seen[False]
        won = sum(1 for x in seen[True] if len(x) == 3 and x[1])
    best = {k: min(v) for k, v in secs.items()}
    for k, v in best.items():
        print(f"{k:<18} {v:6.1f} s for {steps} steps ({1000 * v / steps:.0f} ms each)")
    speedup = best["parse_every_time"] / best["memoised"]
    print(f"speedup {speedup:.2f}x; {won}/{len(tasks)} games won by the expert; same observations, "
          f"outcomes and valid commands: {same}")  # fmt: skip
    if cfg.output:
        write_json_atomic(
            cfg.output,
            {
                "command": command_line(),
                "host": {"machine": platform.machine()},
                "games": len(tasks),
                "steps": steps,
                "expert_wins": won,
                "seconds": secs,
                "ms_per_step": {k: round(1000 * v / steps, 1) for k, v in best.items()},
                "speedup": round(speedup, 2),
                "same_observations": same,
                "translations_memoised": TRANSLATIONS.enabled,
            },
        )
    if not same:
        raise SystemExit("the memoised parse changed what the game said")


if __name__ == "__main__":
    main()
