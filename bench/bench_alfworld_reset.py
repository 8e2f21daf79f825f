"""ALFWorld game-loading benchmark: reset each of N games twice (a first load, then a replay, as
exploration's several rollouts per task or several models on the same test games do), with the
memoised PDDL -> SAS translation (envs/alfworld/env.py) and without it, alternating, in one run.

    python bench/bench_alfworld_reset.py --games 8 --repeats 2
"""

from __future__ import annotations

import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from envs import load_tasks, make_env  # noqa: E402
from envs.alfworld.env import TRANSLATIONS  # noqa: E402
from spa_rl.agent.schema import command_line, write_json_atomic  # noqa: E402
from spa_rl.cli import arg, parse  # noqa: E402


@dataclass
class ResetBenchConfig:
    split: str = arg("unseen", "ALFWorld split the games come from")
    games: int = arg(8, "first N games of the split (each reset twice per pass)")
    repeats: int = arg(2, "passes per setting, alternating their order")
    output: Path | None = arg(None, "also write the timings to this JSON file")


def one_pass(tasks, memoised: bool) -> tuple[float, list[str]]:
    TRANSLATIONS.entries.clear()
    TRANSLATIONS.enabled = memoised
    env = make_env("alfworld")
    t0 = time.perf_counter()
    observations = [env.reset(t) for t in tasks for _ in range(2)]
    seconds = time.perf_counter() - t0
    env.close()
    return seconds, observations


def main(argv: list[str] | None = None) -> None:
    cfg = parse(ResetBenchConfig, argv=argv, doc=__doc__)

    tasks = load_tasks("alfworld", cfg.split, limit=cfg.games)
    secs: dict[str, list[float]] = {"translate_every_time": [], "memoised": []}
    same = True
    for rep in range(cfg.repeats):
        order = [False, True] if rep % 2 == 0 else [True, False]
        obs = {}
        for memoised in order:
            s, obs[memoised] = one_pass(tasks, memoised)
            secs["memoised" if memoised else "translate_every_time"].append(round(s, 2))
        same &= obs[True] == obs[False]
    best = {k: min(v) for k, v in secs.items()}
    n = 2 * len(tasks)
    for k, v in best.items():
        print(f"{k:<22} {v:6.1f} s for {n} resets ({v / n:.2f} s each)")
    speedup = best["translate_every_time"] / best["memoised"]
    print(f"speedup {speedup:.2f}x; same first observations: {same}")
    if cfg.output:
        write_json_atomic(
            cfg.output,
            {
                "command": command_line(),
                "host": {"machine": platform.machine()},
                "resets": n,
                "seconds": secs,
                "speedup": round(speedup, 2),
                "same_observations": same,
            },
        )


if __name__ == "__main__":
    main()
