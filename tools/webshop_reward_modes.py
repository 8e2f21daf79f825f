"""How much WebShop's reward modes (envs/webshop/reward.py: original, corrected, legacy) disagree.

    python tools/webshop_reward_modes.py [--seed 0] [--output results/webshop_reward_modes.json]

Purchases scored under every mode (the same purchase, three rewards):
- for each test goal: its own product with the goal's options; its own product with random options (one
  value per option type, seeded); the best search hit for the instruction that is another product, with
  random options of that product; and its own product with the goal's options but ONE option replaced by
  another value of its type (every such variant: reward 1 there is a success despite a wrong option);
- the goal's own product with the goal's options for every one of the 6,910 generated goals (the oracle);
- the scripted expert's purchase for every goal of train, test and human (played once on the live engine;
  its bought product and options are then scored under each mode).
Printed: per set, the mean reward and the share of reward 1 under each mode, and the share of purchases
whose reward (and whose success) differs between each two modes, with a few examples. Also: how many
rewards of the original mode would change if thefuzz 0.19.0 (WebShop's pin) ran on difflib, i.e. without
python-Levenshtein (this project runs thefuzz 0.22.1 on rapidfuzz).
"""

from __future__ import annotations

import difflib
import itertools
import json
import math
import random
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from envs import load_tasks, make_env  # noqa: E402
from envs.webshop import reward as reward_module  # noqa: E402
from envs.webshop.expert import expert_actions, search_query  # noqa: E402
from envs.webshop.goals import generated_goals  # noqa: E402
from envs.webshop.reward import REWARD_MODES, compute_reward  # noqa: E402
from spa_rl.cli import arg, parse  # noqa: E402

MODES = tuple(REWARD_MODES)


@dataclass
class ModesConfig:
    seed: int = arg(0, "seed of the random options")
    output: Path | None = arg(None, "also write the figures to this JSON file")
    examples: int = arg(3, "examples of disagreeing purchases shown per pair of modes")


def _rewards(product, goal, options) -> dict[str, float]:
    return {m: compute_reward(product, goal, options, m).reward for m in MODES}


def _random_options(product, rng: random.Random) -> dict[str, str]:
    return {kind: rng.choice(values) for kind, values in product.options.items() if values}


def summarize(rows: list[dict], n_examples: int) -> dict:
    """rows: {"goal", "asin", "options", "rewards": mode -> reward}."""
    n = len(rows)
    out: dict = {"n": n}
    for m in MODES:
        rs = [r["rewards"][m] for r in rows]
        out[m] = {
            "mean_reward": round(sum(rs) / n, 4),
            "reward_1": round(sum(math.isclose(x, 1.0) for x in rs) / n, 4),
        }
    for a, b in itertools.combinations(MODES, 2):
        differ = [r for r in rows if not math.isclose(r["rewards"][a], r["rewards"][b])]
        success = [
            r for r in differ if math.isclose(r["rewards"][a], 1.0) != math.isclose(r["rewards"][b], 1.0)
        ]
        out[f"{a}_vs_{b}"] = {
            "reward_differs": round(len(differ) / n, 4),
            "success_differs": round(len(success) / n, 4),
            "examples": [
                {"goal": r["goal"], "asin": r["asin"], "options": r["options"], "rewards": r["rewards"]}
                for r in differ[:n_examples]
            ],
        }
    return out


def purchases_of_test_goals(env, seed: int) -> dict[str, list[dict]]:
    sets: dict[str, list[dict]] = {"own_goal_options": [], "own_random_options": [], "other_search_hit": []}
    for goal in env.catalog.goals["test"]:
        own = env.catalog.products[goal.asin]
        rng = random.Random(f"{seed}:{goal.goal_id}")  # per goal: a change of the search moves nothing else
        buys = {
            "own_goal_options": (own, dict(goal.goal_options)),
            "own_random_options": (own, _random_options(own, rng)),
        }
        other = next((a for a in env.catalog.search(search_query(goal)) if a != goal.asin), None)
        if other is not None:
            p = env.catalog.products[other]
            buys["other_search_hit"] = (p, _random_options(p, rng))
        for kind, (product, options) in buys.items():
            sets[kind].append(
                {"goal": goal.goal_id, "asin": product.asin, "options": options,
                 "rewards": _rewards(product, goal, options)}
            )  # fmt: skip
    return sets


def one_wrong_option(env) -> list[dict]:
    rows = []
    for goal in env.catalog.goals["test"]:
        own = env.catalog.products[goal.asin]
        for kind, value in goal.goal_options.items():
            for other in own.options.get(kind, ()):
                if other != value:
                    options = {**goal.goal_options, kind: other}
                    rows.append({"goal": goal.goal_id, "asin": own.asin, "options": options,
                                 "rewards": _rewards(own, goal, options)})  # fmt: skip
    return rows


def expert_purchases(env, split: str) -> list[dict]:
    rows = []
    for task in load_tasks("webshop", split):
        env.reset(task)
        goal = env.session.goal
        result = None
        for action in expert_actions(env.catalog, goal, env.max_steps):
            result = env.step(action)
            if result.done:
                break
        bought = result.info.get("bought") if result is not None else None
        if bought is None:  # never reached Buy Now: reward 0 in every mode
            rows.append(
                {"goal": goal.goal_id, "asin": None, "options": {}, "rewards": dict.fromkeys(MODES, 0.0)}
            )
            continue
        product = env.catalog.products[bought["asin"]]
        rows.append(
            {"goal": goal.goal_id, "asin": product.asin, "options": bought["options"],
             "rewards": _rewards(product, goal, bought["options"])}
        )  # fmt: skip
    return rows


# --- thefuzz 0.19.0 (WebShop's pin) without python-Levenshtein: difflib's SequenceMatcher --------------
_NON_WORD = re.compile(r"(?ui)\W")
_HIGH_LATIN1 = dict.fromkeys(range(128, 256))


def _full_process_019(s) -> str:
    s = str(s).translate(_HIGH_LATIN1)  # asciidammit: str() of anything, then drop chars 128-255
    return _NON_WORD.sub(" ", s).lower().strip()


def _ratio_019(a: str, b: str) -> int:
    if a == b:
        return 100
    if not a or not b:
        return 0
    return int(round(100 * difflib.SequenceMatcher(None, a, b).ratio()))


def token_set_ratio_019(s1, s2) -> int:
    if s1 is None or s2 is None:
        return 0
    p1, p2 = _full_process_019(s1), _full_process_019(s2)
    if not p1 or not p2:
        return 0
    t1, t2 = set(p1.split()), set(p2.split())
    sect = " ".join(sorted(t1 & t2))
    c12 = (sect + " " + " ".join(sorted(t1 - t2))).strip()
    c21 = (sect + " " + " ".join(sorted(t2 - t1))).strip()
    sect = sect.strip()
    return max(_ratio_019(sect, c12), _ratio_019(sect, c21), _ratio_019(c12, c21))


class _Fuzz019:
    token_set_ratio = staticmethod(token_set_ratio_019)


def thefuzz_019_check(rows: list[dict], env) -> dict:
    """Share of ``rows`` whose original-mode reward changes under thefuzz 0.19.0 + difflib."""
    goals = {g.goal_id: g for s in ("train", "test", "human") for g in env.catalog.goals[s]}
    saved = reward_module.fuzz
    reward_module.fuzz = _Fuzz019
    try:
        changed = []
        for r in rows:
            if r["asin"] is None:
                continue
            g = goals[r["goal"]]
            new = compute_reward(env.catalog.products[r["asin"]], g, r["options"], "original").reward
            if not math.isclose(new, r["rewards"]["original"]):
                changed.append({"goal": r["goal"], "asin": r["asin"], "options": r["options"],
                                "rapidfuzz": r["rewards"]["original"], "difflib": new})  # fmt: skip
    finally:
        reward_module.fuzz = saved
    return {"n": len(rows), "original_reward_changes": len(changed), "examples": changed[:5]}


def table(figures: dict) -> str:
    """The figures as a Markdown table (mode order: original / corrected / legacy)."""
    pairs = [f"{a}_vs_{b}" for a, b in itertools.combinations(MODES, 2)]
    short = " / ".join("-".join(x[0] for x in p.split("_vs_")) for p in pairs)
    lines = [
        f"| purchases | n | mean reward {' / '.join(MODES)} | reward 1 | reward differs {short} | "
        f"success differs {short} |",
        "|---|---|---|---|---|---|",
    ]
    for name, v in figures.items():
        if not isinstance(v, dict) or "n" not in v or MODES[0] not in v:
            continue
        mean = " / ".join(f"{v[m]['mean_reward']:.4f}" for m in MODES)
        one = " / ".join(f"{100 * v[m]['reward_1']:.1f}%" for m in MODES)
        differ = " / ".join(f"{100 * v[p]['reward_differs']:.1f}%" for p in pairs)
        success = " / ".join(f"{100 * v[p]['success_differs']:.1f}%" for p in pairs)
        lines.append(f"| {name} | {v['n']} | {mean} | {one} | {differ} | {success} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    cfg = parse(ModesConfig, argv=argv, doc=__doc__)
    t0 = time.time()
    env = make_env("webshop")
    rows = purchases_of_test_goals(env, cfg.seed)
    rows["own_one_wrong_option"] = one_wrong_option(env)
    every = generated_goals(list(env.catalog.products.values()))
    rows["oracle_all_generated_goals"] = [
        {"goal": g.goal_id, "asin": g.asin, "options": dict(g.goal_options),
         "rewards": _rewards(env.catalog.products[g.asin], g, dict(g.goal_options))}
        for g in every
    ]  # fmt: skip
    for split in ("train", "test", "human"):
        rows[f"expert_{split}"] = expert_purchases(env, split)
    env.close()
    test_mix = rows["own_goal_options"] + rows["own_random_options"] + rows["other_search_hit"]
    figures = {"test_goal_purchases_mixed": summarize(test_mix, cfg.examples)}
    figures |= {k: summarize(v, cfg.examples) for k, v in rows.items()}
    # The oracle's goals hold the test products' other option combinations, whose ids are in no split.
    split_rows = (
        test_mix
        + rows["own_one_wrong_option"]
        + [r for s in ("train", "test", "human") for r in rows[f"expert_{s}"]]
    )
    figures["thefuzz_0.19.0_difflib_vs_0.22.1"] = thefuzz_019_check(split_rows, make_env("webshop"))
    figures["seconds"] = round(time.time() - t0, 1)
    text = json.dumps(figures, indent=1)
    print(text)
    print(table(figures))
    if cfg.output:
        cfg.output.parent.mkdir(parents=True, exist_ok=True)
        cfg.output.write_text(text + "\n")


if __name__ == "__main__":
    main()
