"""The study's tables over run folders and seeds: success per split and pooled with 95 % Wilson intervals,
the spread over seeds, paired comparisons on identical games (McNemar's exact test and a paired bootstrap
interval of the difference), and PPO learning curves.

    python eval/study_report.py --run-dir runs/study/alfworld --output results/study/alfworld

Reads ``<run>/eval/<tag>_<split>/{summary.json,episodes.jsonl}`` where ``tag`` is ``sft`` or
``ppo_<mode>[-turn]_<variant>[_seed<N>]`` (scripts/run_study.sh writes them), and
``<run>/ppo_*/train_log.jsonl``. Writes ``study.md``, ``study.json`` and ``curves.png``.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from spa_rl.agent.schema import command_line, read_records, write_json_atomic, write_text_atomic
from spa_rl.cli import arg, parse
from spa_rl.rl.advantages import method_labels
from spa_rl.stats import mcnemar_exact, paired_bootstrap, wilson

LABELS = method_labels()  # step-value variants and critic-free estimators, in the report's order
TAG = re.compile(r"ppo_(?P<mode>offline|online)(?P<level>-turn)?_(?P<variant>.+?)(?:_seed(?P<seed>\d+))?")
SPLITS = ["unseen", "seen", "heldout", "test", "train"]


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
        name = LABELS.get(self.variant, self.variant)
        return name if self.mode == "-" else f"{name} ({self.mode})"


def parse_tag(tag: str) -> Model | None:
    if tag == "sft":
        return Model("sft", "-", None)
    m = TAG.fullmatch(tag)
    if not m:
        return None
    mode = m["mode"] + (" turn-GAE" if m["level"] else "")
    return Model(m["variant"], mode, int(m["seed"]) if m["seed"] else None)


def collect(run: Path) -> dict[Model, dict[str, dict[str, dict]]]:
    """{model: {split: {task_id: {"success", "reward", "grounding"}}}} from the greedy evaluations."""
    out: dict[Model, dict[str, dict[str, dict]]] = defaultdict(dict)
    for s in sorted((run / "eval").glob("*/summary.json")):
        tag, _, split = s.parent.name.rpartition("_")
        model = parse_tag(tag)
        if model is None:
            continue
        games = {}
        for r in read_records(s.parent / "episodes.jsonl"):
            if r.rollout == 0:
                grounded = [st.grounded for st in r.steps]
                games[r.task_id] = {
                    "success": bool(r.success),
                    "reward": r.reward,
                    "grounding": sum(grounded) / len(grounded) if grounded else 0.0,
                }
        # Only the games the summary reports: a folder may hold more (an earlier, larger selection).
        summary = json.loads(s.read_text())
        if len(games) != summary["metrics"]["n"]:
            games = _reported(summary["config"], games)
        out[model][split] = games
    return out


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
        "grounding": sum(g["grounding"] for g in games.values()) / n if n else None,
    }


def _pooled(splits: dict[str, dict[str, dict]]) -> dict[str, dict]:
    return {f"{sp}/{t}": g for sp, games in splits.items() for t, g in games.items()}


def per_model(data) -> list[dict]:
    rows = []
    for model in sorted(data, key=_order):
        splits = data[model]
        row = {"label": model.label, "variant": model.variant, "mode": model.mode, "seed": model.seed}
        row["splits"] = {sp: _rate(splits[sp]) for sp in _split_order(splits)}
        row["pooled"] = _rate(_pooled(splits))
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


def paired(data, a: Model, b: Model) -> dict | None:
    """A vs B on the games both played (pooled over splits)."""
    ga, gb = _pooled(data[a]), _pooled(data[b])
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


def comparisons(data) -> list[dict]:
    """SPA-RL vs PPO (same mode and seed), and every PPO model vs SFT."""
    out = []
    sft = next((m for m in data if m.variant == "sft"), None)
    for m in sorted(data, key=_order):
        if m.variant == "progress":
            twin = Model("sparse", m.mode, m.seed)
            if twin in data and (c := paired(data, m, twin)):
                out.append(c)
    for m in sorted(data, key=_order):
        if sft is not None and m.variant != "sft" and (c := paired(data, m, sft)):
            out.append(c)
    return out


def _seed(m: Model) -> str:
    return "" if m.seed is None else f" seed {m.seed}"


def _order(m: Model):
    keys = list(LABELS)
    return (keys.index(m.variant) if m.variant in keys else 99, m.mode, m.seed or 0)


def _split_order(splits) -> list[str]:
    return sorted(splits, key=lambda s: (SPLITS + [s]).index(s))


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}"


def _cell(r: dict) -> str:
    lo, hi = r["ci95"]
    return f"{_pct(r['success'])} [{_pct(lo)}, {_pct(hi)}] ({r['successes']}/{r['n']})"


def markdown(rows, methods, comps, graded: bool) -> str:
    splits = _split_order({sp for r in rows for sp in r["splits"]})
    lines = ["## Success by model (greedy; % [95 % Wilson interval] (wins/games))", "",
             "| method | seed | " + " | ".join(splits) + " | pooled | grounding % |"
             + (" score |" if graded else ""),
             "|" + "---|" * (4 + len(splits) + graded)]  # fmt: skip
    for r in rows:
        cells = [_cell(r["splits"][sp]) if sp in r["splits"] else "-" for sp in splits]
        row = f"| {r['label']} | {r['seed'] if r['seed'] is not None else '-'} | " + " | ".join(cells)
        row += f" | {_cell(r['pooled'])} | {_pct(r['pooled']['grounding'])} |"
        row += f" {_pct(r['pooled']['score'])} |" if graded else ""
        lines.append(row)
    lines += ["", "## By method: pooled success, mean over seeds and the seeds' spread", "",
              "| method | seeds | games per seed | mean success % | min-max % |", "|---|---|---|---|---|"]  # fmt: skip
    for m in methods:
        seeds = ", ".join("-" if s is None else str(s) for s in m["seeds"])
        lines.append(f"| {m['label']} | {seeds} | {m['n_per_seed']} | {_pct(m['mean_success'])} | "
                     f"{_pct(m['min'])}-{_pct(m['max'])} |")  # fmt: skip
    lines += ["", "## Paired comparisons on identical games (pooled over splits)", "",
              "A - B in success points with a paired bootstrap 95 % interval (10,000 resamples of games); "
              "McNemar's exact test on the games only one of them won.", "",
              "| A | B | games | only A won | only B won | A - B (points) | 95 % interval | McNemar p | reading |",
              "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for c in comps:
        lo, hi = c["ci95"]
        reading = "within noise" if lo <= 0 <= hi else ("A better" if lo > 0 else "B better")
        lines.append(f"| {c['a']} | {c['b']} | {c['n']} | {c['only_a']} | {c['only_b']} | "
                     f"{100 * c['diff']:+.1f} | [{100 * lo:+.1f}, {100 * hi:+.1f}] | {c['mcnemar_p']:.3f} | {reading} |")  # fmt: skip
    return "\n".join(lines) + "\n"


def curves(runs: list[Path], out: Path) -> Path | None:
    logs = {}
    for run in runs:
        for p in sorted(run.glob("ppo_*/train_log.jsonl")):
            log = [json.loads(ln) for ln in p.read_text().splitlines() if ln.strip()]
            probe = p.parent / "probe_log.jsonl"  # the learning curve: greedy success on training games
            if probe.exists():
                log += [{"iteration": e["updates"], "train_success": e["train_success"]}
                        for e in map(json.loads, filter(str.strip, probe.read_text().splitlines()))]  # fmt: skip
            if log:
                logs[f"{run.name}/{p.parent.name}"] = log
    if not logs:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [k for k in ("train_success", "rollout_success", "score", "approx_kl", "clipfrac", "kl_k3")
            if any(k in x for log in logs.values() for x in log)]  # fmt: skip
    fig, axes = plt.subplots(1, len(keys), figsize=(4 * len(keys), 3.4), squeeze=False)
    for name, log in logs.items():
        for ax, k in zip(axes[0], keys, strict=True):
            pts = [(x["iteration"], x[k]) for x in log if x.get(k) is not None]
            if pts:
                ax.plot(*zip(*pts, strict=True), marker=".", label=name.replace("ppo_", ""))
    for ax, k in zip(axes[0], keys, strict=True):
        ax.set(title=k, xlabel="PPO iteration")
    axes[0][0].legend(fontsize=6)
    fig.tight_layout()
    path = out / "curves.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


@dataclass
class StudyConfig:
    run_dir: list[str] = arg(help="run folder(s): --run-dir A --run-dir B, or --run-dir A B", repeat=True)
    output: str = arg(help="folder for study.md, study.json, curves.png")


def main(argv: list[str] | None = None) -> None:
    cfg = parse(StudyConfig, argv=argv, doc=__doc__)
    out = Path(cfg.output)
    out.mkdir(parents=True, exist_ok=True)
    runs = [Path(r) for r in cfg.run_dir]
    report, parts = {"command": command_line(), "runs": {}}, []
    for run in runs:
        data = collect(run)
        if not data:
            raise SystemExit(f"{run}: no evaluation under {run / 'eval'}")
        rows, comps = per_model(data), comparisons(data)
        methods = per_method(rows)
        graded = any(r["pooled"]["score"] != r["pooled"]["success"] for r in rows)
        report["runs"][str(run)] = {"models": rows, "methods": methods, "comparisons": comps}
        parts.append(f"# {run}\n\n" + markdown(rows, methods, comps, graded))
    plot = curves(runs, out)
    if plot:
        parts.append(f"## PPO learning curves\n\n![curves]({plot.name})\n")
    write_text_atomic(out / "study.md", "\n".join(parts))
    write_json_atomic(out / "study.json", report)
    print(f"wrote {out / 'study.md'}")


if __name__ == "__main__":
    main()
