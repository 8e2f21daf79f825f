"""WebShop engine figures: the expert's reward, success and steps per split, and engine latency.

    python bench/bench_webshop.py [--train-sample 500] [--seed 0] [--output results/webshop_expert_bench.json] \
        [--env-option reward=original]

The expert plays every test goal, every human goal and ``--train-sample`` train goals drawn at random
(seeded) through the agent-facing environment (``make_env("webshop")``). Latency: the time of one
search (BM25 over the 1000 products, 50 results) for each test goal's query, and of each expert step
(search, click, and the reward at Buy Now), measured after a warm-up episode. Oracle: the reward of
the goal's own product bought with the goal's options, over all 6,910 generated goals.
"""

from __future__ import annotations

import json
import math
import random
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from envs import load_tasks, make_env, parse_env_options  # noqa: E402
from envs.webshop.expert import expert_actions, search_query  # noqa: E402
from envs.webshop.goals import generated_goals  # noqa: E402
from envs.webshop.reward import compute_reward  # noqa: E402
from spa_rl.cli import arg, parse  # noqa: E402


@dataclass
class WebShopBenchConfig:
    train_sample: int = arg(500, "train goals the expert plays, drawn at random")
    seed: int = arg(0, "seed of the train-goal draw")
    output: Path | None = arg(None, "also write the figures to this JSON file")
    env_option: list[str] = arg(default_factory=list, help="a WebShop option NAME=VALUE, repeatable (reward="
                                "original (default) | corrected | legacy)", repeat=True)  # fmt: skip

    def __post_init__(self) -> None:
        parse_env_options("webshop", self.env_option)  # an unknown option or value, named


def _ms(xs: list[float]) -> dict[str, float]:
    xs = sorted(xs)
    return {
        "mean": round(statistics.mean(xs) * 1e3, 3),
        "p50": round(xs[len(xs) // 2] * 1e3, 3),
        "p95": round(xs[int(len(xs) * 0.95)] * 1e3, 3),
        "n": len(xs),
    }


def play_expert(tasks, step_times: dict[str, list[float]], options: dict[str, str]) -> dict:
    env = make_env("webshop", options=options)
    rewards, successes, steps, grounded, actions = [], [], [], 0, 0
    plans = {"found_on_page_1": 0, "paged": 0, "searched_again": 0}
    rank = {"top10": 0, "top50": 0}
    for task in tasks:
        env.reset(task)
        goal = env.session.goal
        hits = env.catalog.search(search_query(goal))
        rank["top10"] += goal.asin in hits[:10]
        rank["top50"] += goal.asin in hits
        plan = expert_actions(env.catalog, goal, env.max_steps)
        kind = (
            "searched_again"
            if "click[Back to Search]" in plan
            else "paged"
            if "click[Next >]" in plan
            else None
        )
        plans[kind or "found_on_page_1"] += 1
        result = None
        for action in plan:
            t0 = time.perf_counter()
            result = env.step(action)
            kind = "buy" if action == "click[Buy Now]" else action.split("[", 1)[0]
            step_times[kind].append(time.perf_counter() - t0)
            actions += 1
            grounded += result.grounded
            if result.done:
                break
        rewards.append(result.reward if result and result.done else 0.0)
        successes.append(bool(result and result.success))
        steps.append(env._steps)
    env.close()
    n = len(tasks)
    return {
        "n": n,
        "mean_reward": round(sum(rewards) / n, 4),
        "score": round(100 * sum(rewards) / n, 2),
        "success_rate": round(sum(successes) / n, 4),
        "mean_steps": round(sum(steps) / n, 2),
        "max_steps": max(steps),
        "grounding": round(grounded / actions, 4),
        "expert_plans": plans,
        "instruction_query_finds_product": {k: round(v / n, 4) for k, v in rank.items()},
        "failures": [t.task_id for t, s in zip(tasks, successes, strict=True) if not s][:20],
    }


def main(argv: list[str] | None = None) -> None:
    cfg = parse(WebShopBenchConfig, argv=argv, doc=__doc__)
    options = parse_env_options("webshop", cfg.env_option)

    t0 = time.perf_counter()
    test = load_tasks("webshop", "test")
    load_s = time.perf_counter() - t0
    train_all = load_tasks("webshop", "train")
    train = random.Random(cfg.seed).sample(train_all, min(cfg.train_sample, len(train_all)))
    human = load_tasks("webshop", "human")

    warm: dict[str, list[float]] = {"search": [], "click": [], "buy": []}
    t0 = time.perf_counter()
    play_expert(test[:1], warm, options)  # loads the POS tagger once
    warm_s = time.perf_counter() - t0

    step_times: dict[str, list[float]] = {"search": [], "click": [], "buy": []}
    figures = {
        "expert": {
            "test": play_expert(test, step_times, options),
            f"train_random_{len(train)}_seed{cfg.seed}": play_expert(train, step_times, options),
            "human": play_expert(human, step_times, options),
        },
        "env_options": options,
    }
    env = make_env("webshop", options=options)
    # Oracle: the goal's own product bought with exactly the goal's options, for every generated goal
    # (including the option combinations of test products that are in no split).
    every = generated_goals(list(env.catalog.products.values()))
    oracle = [
        compute_reward(env.catalog.products[g.asin], g, dict(g.goal_options), options["reward"]).reward
        for g in every
    ]
    figures["oracle_own_product_all_generated_goals"] = {
        "n": len(every),
        "reward_1": sum(math.isclose(r, 1.0) for r in oracle),
        "mean_reward": round(sum(oracle) / len(oracle), 4),
    }
    search_times = []
    for task in test:
        query = search_query(env.catalog.goal("test", task.task_id))
        t0 = time.perf_counter()
        env.catalog.search(query)
        search_times.append(time.perf_counter() - t0)
    figures["latency_ms"] = {
        "search_engine_query": _ms(search_times),
        **{f"env_step_{k}": _ms(v) for k, v in step_times.items()},
    }
    figures["startup_s"] = {
        "load_catalog_and_index": round(load_s, 2),
        "first_episode_with_tagger": round(warm_s, 2),
    }
    text = json.dumps(figures, indent=1)
    print(text)
    if cfg.output:
        cfg.output.parent.mkdir(parents=True, exist_ok=True)
        cfg.output.write_text(text + "\n")


if __name__ == "__main__":
    main()
