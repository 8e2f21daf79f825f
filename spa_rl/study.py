"""The study's numbers from its run folders (``scripts/run_study.sh``): which model each evaluation folder
holds, the games it won per split, success with 95 % intervals averaged over seeds, paired comparisons on
identical games, success by the length of a game's expert trajectory, exploration statistics and the
command behind every model. ``eval/study_report.py`` turns them into the paper's tables."""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from envs import ENVS, EnvError, load_tasks
from spa_rl.agent.metrics import LENGTH_BUCKET
from spa_rl.agent.schema import read_records
from spa_rl.rewards import REGISTRY
from spa_rl.rl.advantages import method_labels
from spa_rl.stats import bootstrap_mean, mcnemar_exact, paired_bootstrap, wilson

LABELS = method_labels()  # step-value variants and critic-free estimators, in the report's order


ABLATIONS = [n for n, v in REGISTRY.items() if v.ablation]


TAG = re.compile(r"ppo_(?P<mode>offline|online)(?P<level>-turn)?_(?P<variant>.+?)(?:_seed(?P<seed>\d+))?")


SPLITS = ["unseen", "seen", "heldout", "test", "train"]


POOLED = "pooled"


MIN_BUCKET = 5  # games in the longest expert-length bucket (shorter tails are merged into it)


ENV_TITLES = {"alfworld": "ALFWorld", "webshop": "WebShop", "virtualhome": "VirtualHome"}


@dataclass(frozen=True)
class Model:
    variant: str  # sft | sparse | progress | ...
    mode: str  # "-" for SFT; offline | online, with " turn-GAE" for turn-level GAE
    seed: int | None

    @property
    def method(self) -> tuple[str, str]:
        return self.variant, self.mode

    @property
    def label(self) -> str:
        return method_label(self.method)


def method_label(method: tuple[str, str]) -> str:
    variant, mode = method
    name = LABELS.get(variant, variant)
    return name if mode == "-" else f"{name} ({mode})"


def parse_tag(tag: str) -> Model | None:
    if tag == "sft":
        return Model("sft", "-", None)
    m = TAG.fullmatch(tag)
    if not m:
        return None
    mode = m["mode"] + (" turn-GAE" if m["level"] else "")
    return Model(m["variant"], mode, int(m["seed"]) if m["seed"] else None)


@dataclass
class Run:
    """One environment's study folder: every evaluated model's games per split, and their summaries."""

    path: Path
    env: str
    games: dict[Model, dict[str, dict[str, dict]]]  # model -> split -> task id -> game
    summaries: dict[Model, dict[str, dict]] = field(default_factory=dict)  # model -> split -> summary.json

    @property
    def name(self) -> str:
        return ENV_TITLES.get(self.env, self.env)

    @property
    def graded(self) -> bool:
        return ENVS[self.env].graded if self.env in ENVS else False

    def splits(self) -> list[str]:
        return split_order({sp for s in self.games.values() for sp in s})

    def columns(self) -> list[str]:
        splits = self.splits()
        return splits + [POOLED] if len(splits) > 1 else splits

    def seeds(self, method: tuple[str, str]) -> list[Model]:
        return sorted((m for m in self.games if m.method == method), key=lambda m: m.seed or 0)

    def split_games(self, model: Model, split: str) -> dict[str, dict]:
        return pooled(self.games[model]) if split == POOLED else self.games[model].get(split, {})


def collect(run: Path) -> Run:
    """Every greedy evaluation under ``<run>/eval``: {model: {split: {task_id: game}}} and the summaries."""
    games: dict[Model, dict[str, dict[str, dict]]] = defaultdict(dict)
    summaries: dict[Model, dict[str, dict]] = defaultdict(dict)
    envs = set()
    for s in sorted((run / "eval").glob("*/summary.json")):
        tag, _, split = s.parent.name.rpartition("_")
        model = parse_tag(tag)
        if model is None:
            continue
        summary = json.loads(s.read_text())
        if "metrics" not in summary or "n" not in summary["metrics"]:
            raise SystemExit(f"{s}: not an evaluation summary (no metrics.n)")
        played = {}
        for r in read_records(s.parent / "episodes.jsonl"):
            envs.add(r.env)
            if r.rollout == 0:
                grounded = [bool(st.grounded) for st in r.steps]
                played[r.task_id] = {
                    "success": bool(r.success),
                    "reward": r.reward,
                    "grounded": sum(grounded),  # accepted actions: grounding is accepted / all actions
                    "steps": len(grounded),
                }
        # Only the games the summary reports: a folder may hold more (an earlier, larger selection).
        if len(played) != summary["metrics"]["n"]:
            played = _reported(summary["config"], played)
        games[model][split] = played
        summaries[model][split] = summary
    if len(envs) > 1:
        raise SystemExit(
            f"{run}: evaluations of several environments ({', '.join(sorted(envs))}); one per run"
        )
    return Run(run, envs.pop() if envs else "?", dict(games), dict(summaries))


def _reported(cfg: dict, games: dict) -> dict:
    from envs import select_tasks

    ids = {t.task_id for t in select_tasks(cfg["env"], cfg["split"], cfg["num_tasks"], cfg["task_sample"],
                                           cfg["task_seed"], cfg["task_types"], cfg.get("task_ids"),
                                           cfg.get("exclude_task_ids"))}  # fmt: skip
    return {k: v for k, v in games.items() if k in ids}


def _rate(games: dict[str, dict]) -> dict:
    n = len(games)
    k = sum(g["success"] for g in games.values())
    lo, hi = wilson(k, n)
    return {
        "n": n,
        "successes": k,
        "success": k / n if n else None,
        "ci95": [lo, hi],
        "score": sum(g["reward"] for g in games.values()) / n if n else None,
        "grounding": _grounding(games.values()),
    }


def _grounding(games) -> float | None:
    """Accepted actions over all actions (the paper's grounding accuracy), over the games together."""
    games = list(games)
    steps = sum(g["steps"] for g in games)
    return sum(g["grounded"] for g in games) / steps if steps else None


def pooled(splits: dict[str, dict[str, dict]]) -> dict[str, dict]:
    return {f"{sp}/{t}": g for sp, games in splits.items() for t, g in games.items()}


def cell(run: Run, method: tuple[str, str], split: str, key: str = "success") -> dict | None:
    """``key`` (success | reward | grounding) of ``method`` on ``split``, averaged over its seeds: the mean,
    a 95 % interval (Wilson for one seed's success, else a bootstrap over games of the seed-averaged
    value; none for grounding, a ratio over actions), the seeds' own means and the number of games."""
    per_seed = [g for m in run.seeds(method) if (g := run.split_games(m, split))]
    if not per_seed:
        return None
    common = sorted(set.intersection(*(set(g) for g in per_seed)))  # every seed plays the same games
    if not common:
        return None
    if key == "grounding":  # a ratio over all actions, not a mean over games: no interval
        seed_means = [_grounding(g[t] for t in common) or 0.0 for g in per_seed]
        mean = sum(seed_means) / len(seed_means)
        return {"mean": mean, "ci95": None, "interval": None, "n": len(common), "seed_means": seed_means}
    per_game = [sum(float(g[t][key]) for g in per_seed) / len(per_seed) for t in common]
    seed_means = [sum(float(g[t][key]) for t in common) / len(common) for g in per_seed]
    if key == "success" and len(per_seed) == 1:
        k = sum(int(per_seed[0][t]["success"]) for t in common)
        mean, (lo, hi), how = k / len(common), wilson(k, len(common)), "wilson"
    else:
        mean, lo, hi = bootstrap_mean(per_game)
        how = "bootstrap over games"
    return {"mean": mean, "ci95": [lo, hi], "interval": how, "n": len(common), "seed_means": seed_means}


def methods_of(runs: list[Run], ablation: bool) -> list[tuple[str, str]]:
    found = {m.method for run in runs for m in run.games}
    keep = [m for m in found if (m[0] in ABLATIONS) == ablation]
    if ablation and keep:  # the ablations beside the method they ablate and the outcome-only baseline
        keep += [m for m in found if m[0] in ("progress", "sparse") and any(a[1] == m[1] for a in keep)]
    return sorted(set(keep), key=_method_order)


def main_columns(runs: list[Run]) -> list[tuple[Run, str, str, str]]:
    """(run, split, key, header) per column: every split of every environment (and their pool); success,
    and the score beside it where rewards are graded (WebShop)."""
    cols = []
    for run in runs:
        keys = [("reward", " score"), ("success", " success")] if run.graded else [("success", "")]
        cols += [(run, sp, key, f"{run.name} {sp}{name}") for sp in run.columns() for key, name in keys]
    return cols


def ablation_columns(runs: list[Run]) -> list[tuple[Run, str, str, str]]:
    """Success and grounding per environment, on the pool of its splits (or its one split)."""
    cols = []
    for run in runs:
        sp = run.columns()[-1]
        cols += [(run, sp, key, f"{run.name} {sp} {key}") for key in ("success", "grounding")]
    return cols


def per_model(run: Run) -> list[dict]:
    rows = []
    for model in sorted(run.games, key=_order):
        splits = run.games[model]
        row = {"label": model.label, "variant": model.variant, "mode": model.mode, "seed": model.seed}
        row["splits"] = {sp: _rate(splits[sp]) for sp in split_order(splits)}
        row["pooled"] = _rate(pooled(splits))
        rows.append(row)
    return rows


def per_method(rows: list[dict]) -> list[dict]:
    """Mean over seeds of the pooled success, with the seeds' spread (min-max)."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in rows:
        groups[(r["label"], r["variant"], r["mode"])].append(r)
    out = []
    for (label, variant, mode), rs in groups.items():
        rates = [r["pooled"]["success"] for r in rs]
        out.append({"label": label, "variant": variant, "mode": mode, "seeds": [r["seed"] for r in rs],
                    "mean_success": sum(rates) / len(rates), "min": min(rates), "max": max(rates),
                    "n_per_seed": rs[0]["pooled"]["n"]})  # fmt: skip
    return out


def paired(run: Run, a: Model, b: Model) -> dict | None:
    """A vs B on the games both played (pooled over splits)."""
    ga, gb = pooled(run.games[a]), pooled(run.games[b])
    common = sorted(set(ga) & set(gb))
    if not common:
        return None
    xa = [float(ga[k]["success"]) for k in common]
    xb = [float(gb[k]["success"]) for k in common]
    only_a = sum(1 for x, y in zip(xa, xb, strict=True) if x > y)
    only_b = sum(1 for x, y in zip(xa, xb, strict=True) if y > x)
    diff, lo, hi = paired_bootstrap(xa, xb)
    return {"a": a.label + _seed(a), "b": b.label + _seed(b), "n": len(common), "only_a": only_a,
            "only_b": only_b, "diff": diff, "ci95": [lo, hi], "mcnemar_p": mcnemar_exact(only_a, only_b)}  # fmt: skip


def paired_over_seeds(run: Run, a: tuple[str, str], b: tuple[str, str]) -> dict | None:
    """A vs B with each game's success averaged over each method's seeds: paired bootstrap over games."""
    sa, sb = run.seeds(a), run.seeds(b)
    if len(sa) < 2 and len(sb) < 2:
        return None  # one seed each: the per-seed comparison says it all
    ga = [pooled(run.games[m]) for m in sa]
    gb = [pooled(run.games[m]) for m in sb]
    common = sorted(set.intersection(*(set(g) for g in ga + gb)))
    if not common:
        return None
    xa = [sum(float(g[k]["success"]) for g in ga) / len(ga) for k in common]
    xb = [sum(float(g[k]["success"]) for g in gb) / len(gb) for k in common]
    diff, lo, hi = paired_bootstrap(xa, xb)
    return {"a": f"{method_label(a)}, {len(sa)} seeds", "b": f"{method_label(b)}, {len(sb)} seeds",
            "n": len(common), "only_a": None, "only_b": None, "diff": diff, "ci95": [lo, hi], "mcnemar_p": None}  # fmt: skip


def comparisons(run: Run) -> list[dict]:
    """SPA-RL vs PPO (same mode and seed, then averaged over seeds), and every RL model vs SFT."""
    out = []
    sft = next((m for m in run.games if m.variant == "sft"), None)
    models = sorted(run.games, key=_order)
    for m in models:
        if m.variant == "progress":
            twin = Model("sparse", m.mode, m.seed)
            if twin in run.games and (c := paired(run, m, twin)):
                out.append(c)
    for mode in sorted({m.mode for m in models if m.variant == "progress"}):
        if c := paired_over_seeds(run, ("progress", mode), ("sparse", mode)):
            out.append(c)
    for m in models:
        if sft is not None and m.variant != "sft" and (c := paired(run, m, sft)):
            out.append(c)
    return out


def expert_lengths(run: Run) -> dict[str, int]:
    """{"<split>/<task id>": number of expert actions} for the evaluated games whose expert trajectory is in
    the data (ALFWorld: the training-split games, i.e. the heldout split; VirtualHome: all; WebShop: none)."""
    out = {}
    by_split: dict[str, str] = {}
    for splits in run.summaries.values():
        for split, s in splits.items():
            by_split.setdefault(split, s.get("config", {}).get("split", split))
    for split, source in by_split.items():
        try:
            tasks = load_tasks(run.env, source)
        except (EnvError, OSError) as e:  # a split or data this machine lacks: no lengths, not a failure
            print(f"{run.env}/{source}: no expert lengths ({e})")
            continue
        out.update({f"{split}/{t.task_id}": len(t.expert_actions) for t in tasks if t.expert_actions})
    return out


def by_length(run: Run, methods: list[tuple[str, str]], lengths: dict[str, int]) -> dict[str, dict]:
    """{method label: {bucket: {"n", "success"}}}: seed-averaged success by expert length (5-step buckets)."""
    out = {}
    played = {k for m in run.games for k in pooled(run.games[m])}
    edges = length_buckets([n for k, n in lengths.items() if k in played])
    for method in methods:
        seeds = [pooled(run.games[m]) for m in run.seeds(method)]
        if not seeds:
            continue
        common = set.intersection(*(set(g) for g in seeds)) & set(lengths)
        buckets: dict[str, list[float]] = defaultdict(list)
        for k in common:
            buckets[edges[lengths[k]]].append(sum(float(g[k]["success"]) for g in seeds) / len(seeds))
        if buckets:
            out[method_label(method)] = {b: {"n": len(v), "success": sum(v) / len(v)}
                                         for b, v in sorted(buckets.items(), key=lambda kv: bucket_start(kv[0]))}  # fmt: skip
    return out


def length_buckets(lengths, min_games: int = MIN_BUCKET, width: int = LENGTH_BUCKET) -> dict[int, str]:
    """{length: bucket label}: ``width``-step units, joined from the shortest up until a bucket holds
    ``min_games`` games (a bucket of one or two games is noise); a short remainder joins the last bucket."""
    counts: dict[int, int] = defaultdict(int)
    for n in lengths:
        counts[(max(n, 1) - 1) // width] += 1
    groups: list[list[int]] = []  # unit indices per bucket
    open_units, held = [], 0
    for u in sorted(counts):
        open_units.append(u)
        held += counts[u]
        if held >= min_games:
            groups.append(open_units)
            open_units, held = [], 0
    if open_units:
        if groups:
            groups[-1] += open_units
        else:
            groups.append(open_units)
    out = {}
    for g in groups:
        label = f"{g[0] * width + 1}-{(g[-1] + 1) * width}"
        out.update({n: label for n in lengths if (max(n, 1) - 1) // width in g})
    return out


def bucket_start(b: str) -> int:
    return int(b.split("-")[0])


def exploration_stats(run: Run) -> dict | None:
    path = run.path / "exploration" / "episodes.jsonl"
    if not path.exists():
        return None
    recs = list(read_records(path))
    by_task: dict[str, list] = defaultdict(list)
    for r in recs:
        by_task[r.task_id].append(r)
    wins = sum(r.success for r in recs)
    steps = sum(r.n_steps for r in recs)
    won = [r for r in recs if r.success]
    summary = run.path / "exploration" / "summary.json"
    cfg = json.loads(summary.read_text()).get("config", {}) if summary.exists() else {}
    return {
        "complete": summary.exists(),  # the stage writes its summary when every rollout is done
        "rollouts": len(recs),
        "tasks": len(by_task),
        "temperature": cfg.get("temperature"),
        "max_steps": cfg.get("max_steps"),
        "success": {
            "n": len(recs),
            "successes": wins,
            "success": wins / len(recs) if recs else None,
            "ci95": list(wilson(wins, len(recs))),
        },  # fmt: skip
        "grounding": sum(s.grounded for r in recs for s in r.steps) / steps if steps else None,
        "mean_steps": steps / len(recs) if recs else None,
        "mean_steps_won": sum(r.n_steps for r in won) / len(won) if won else None,
        "finish_reasons": dict(sorted(Counter(r.finish_reason for r in recs).items())),
        "tasks_all_won": sum(all(r.success for r in rs) for rs in by_task.values()),
        "tasks_all_lost": sum(not any(r.success for r in rs) for rs in by_task.values()),
        "tasks_mixed": sum(0 < sum(r.success for r in rs) < len(rs) for rs in by_task.values()),
    }


def provenance(run: Run) -> list[dict]:
    """Every row's training command and config (from the folder its model came from) and its evaluation
    commands, one per split."""
    out = []
    for model in sorted(run.summaries, key=_order):
        splits = run.summaries[model]
        first = next(iter(splits.values()))
        trained = Path(first["model"]).parent if first.get("model") else None
        train = None
        for name in ("summary.json", "train_summary.json"):  # PPO writes the first, SFT the second
            if trained is not None and (trained / name).exists():
                t = json.loads((trained / name).read_text())
                train = {"folder": str(trained), "command": t.get("command"),
                         "config": t.get("config") or t.get("sft_args")}  # fmt: skip
                break
        out.append({"label": model.label + _seed(model), "model": first.get("model"), "train": train,
                    "eval": {sp: s.get("command") for sp, s in splits.items()}})  # fmt: skip
    return out


def _seed(m: Model) -> str:
    return "" if m.seed is None else f" seed {m.seed}"


def _method_order(method: tuple[str, str]):
    keys = list(LABELS)
    return (keys.index(method[0]) if method[0] in keys else 99, method[1])


def _order(m: Model):
    return (*_method_order(m.method), m.seed or 0)


def split_order(splits) -> list[str]:
    return sorted(splits, key=lambda s: (SPLITS + [s]).index(s))


def table_rows(runs: list[Run], methods: list[tuple[str, str]], cols) -> list[dict]:
    """One row per method with a cell per column (``main_columns``/``ablation_columns``); methods with no
    cell at all are left out."""
    rows = []
    for method in methods:
        cells = {h: cell(run, method, split, key) for run, split, key, h in cols}
        if any(c is not None for c in cells.values()):
            rows.append(
                {"method": method_label(method), "variant": method[0], "mode": method[1], "cells": cells}
            )
    return rows
