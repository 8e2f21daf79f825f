"""The paper's tables from the study's run folders, in one command, over environments and seeds.

    python eval/study_report.py --run-dir runs/study/alfworld runs/study/webshop --output results/study

Each run folder is one environment's study (``scripts/run_study.sh``): one SFT agent, its exploration and
progress estimator, then PPO models by method and seed, every model evaluated greedily on the same games.
Writes to ``--output``:

- ``study.md``: the main table (rows: SFT, PPO, SPA-RL and the critic-free baselines present; columns: each
  environment's splits, WebShop's score beside its success), the ablation table, success by the length of
  the game's expert trajectory, the learning curves, then per environment: every model and seed with 95 %
  Wilson intervals, the mean and spread over seeds, paired comparisons on identical games (McNemar's exact
  test, paired bootstrap), the estimator's held-out quality, exploration statistics, stage wall times, and
  the training and evaluation command of every row;
- ``study.json`` (the same as numbers, with every row's training config), ``curves.png``,
  ``by_length.png`` and ``trajectories_<env>.html`` (exploration rollouts step by step: the task, each raw
  reply beside the parsed action, the step's c_t, grounding and fused reward).

Intervals in the main and ablation tables: for one seed, the 95 % Wilson interval of the success rate;
with several seeds, the mean over seeds and a bootstrap interval over games (10,000 resamples; each game's
result averaged over the seeds), with the seeds' min-max beside it. Scores (WebShop) always get the
bootstrap over games.

Reads ``<run>/eval/<tag>_<split>/{summary.json,episodes.jsonl}`` where ``tag`` is ``sft`` or
``ppo_<mode>[-turn]_<variant>[_seed<N>]``, the training folders the evaluated models came from,
``<run>/ppo_*/{train_log,probe_log}.jsonl``, ``<run>/estimator/eval.json``, ``<run>/exploration/`` and
``<run>/timings.tsv``.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass
from pathlib import Path

from spa_rl.agent.schema import command_line, read_records, write_json_atomic, write_text_atomic
from spa_rl.cli import arg, parse
from spa_rl.stats import wilson
from spa_rl.study import (
    MIN_BUCKET,
    Run,
    ablation_columns,
    bucket_start,
    by_length,
    collect,
    comparisons,
    expert_lengths,
    exploration_stats,
    main_columns,
    methods_of,
    per_method,
    per_model,
    provenance,
    split_order,
    table_rows,
)
from spa_rl.validate import non_negative_int


def _fmt_cell(c: dict | None) -> str:
    if c is None:
        return "-"
    text = _pct(c["mean"])
    if c["ci95"] is not None:
        text += f" [{_pct(c['ci95'][0])}, {_pct(c['ci95'][1])}]"
    if len(c["seed_means"]) > 1:
        text += f" ({len(c['seed_means'])} seeds: {_pct(min(c['seed_means']))}-{_pct(max(c['seed_means']))})"
    return text


def table(runs: list[Run], methods: list[tuple[str, str]], cols) -> tuple[str, list[dict]]:
    """The Markdown table of ``table_rows`` and the rows themselves (for study.json)."""
    rows = table_rows(runs, methods, cols)
    head = ["method"] + [h for *_, h in cols]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += [
        f"| {r['method']} | " + " | ".join(_fmt_cell(r["cells"][h]) for *_, h in cols) + " |" for r in rows
    ]
    games = [
        f"{h} {c['n']}" for *_, h in cols if (c := next((r["cells"][h] for r in rows if r["cells"][h]), None))
    ]
    note = f"Games per column: {', '.join(games)}." if games else ""
    return "\n".join(lines + ["", note]), rows


def _length_axis(res: dict[str, dict]) -> tuple[list[str], dict[str, int]]:
    """The length buckets of ``by_length``'s result, shortest first, and the games in each."""
    buckets = sorted({b for v in res.values() for b in v}, key=bucket_start)
    return buckets, {b: next(v[b]["n"] for v in res.values() if b in v) for b in buckets}


def length_markdown(res: dict[str, dict]) -> str:
    buckets, n = _length_axis(res)
    lines = ["| method | " + " | ".join(f"{b} ({n[b]})" for b in buckets) + " |",
             "|" + "---|" * (len(buckets) + 1)]  # fmt: skip
    for label, v in res.items():
        lines.append(
            f"| {label} | " + " | ".join(_pct(v[b]["success"]) if b in v else "-" for b in buckets) + " |"
        )
    return "\n".join(lines)


def length_figure(res_by_run: dict[str, dict[str, dict]], out: Path) -> Path | None:
    res_by_run = {k: v for k, v in res_by_run.items() if v}
    if not res_by_run:
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(res_by_run), figsize=(5 * len(res_by_run), 3.6), squeeze=False)
    for ax, (name, res) in zip(axes[0], res_by_run.items(), strict=True):
        buckets, n = _length_axis(res)
        for label, v in res.items():
            xs = [i for i, b in enumerate(buckets) if b in v]
            ax.plot(xs, [100 * v[buckets[i]]["success"] for i in xs], marker="o", label=label)
        ax.set_xticks(range(len(buckets)), [f"{b}\n({n[b]})" for b in buckets], fontsize=7)
        ax.set(
            title=name, xlabel="expert trajectory length, steps (games)", ylabel="success %", ylim=(-3, 103)
        )
    return _save(fig, axes, out / "by_length.png")


def exploration_markdown(e: dict) -> str:
    s = e["success"]
    if not e["complete"]:
        return (
            f"- In progress (no summary yet): {e['rollouts']} rollouts over {e['tasks']} tasks finished so far, "
            f"{_cell(s)} won; grounding {_pct(e['grounding'])} %."
        )
    lines = [
        f"- {e['rollouts']} rollouts over {e['tasks']} tasks (temperature {e['temperature']}, at most "
        f"{e['max_steps']} steps): {_cell(s)} won; grounding {_pct(e['grounding'])} %.",
        f"- {_num(e['mean_steps'], '.1f')} steps on average, {_num(e['mean_steps_won'], '.1f')} for the won ones; "
        f"finish reasons {json.dumps(e['finish_reasons'])}.",
        f"- Tasks whose rollouts all won: {e['tasks_all_won']}; all lost: {e['tasks_all_lost']}; mixed (the "
        f"groups where a group baseline such as GRPO's has a signal): {e['tasks_mixed']}.",
    ]
    return "\n".join(lines)


def timings_markdown(run: Run) -> str | None:
    path = run.path / "timings.tsv"
    if not path.exists():
        return None
    lines = ["| stage | minutes | run started (UTC) | PPO mode | machine |", "|---|---|---|---|---|"]
    for ln in path.read_text().splitlines():
        if ln.strip():  # older files lack the machine column
            stage, secs, *rest = ln.split("\t") + ["", "", ""]
            lines.append(f"| {stage} | {int(secs) / 60:.1f} | {rest[0]} | {rest[1]} | {rest[2]} |")
    return "\n".join(lines)


def provenance_markdown(rows: list[dict]) -> str:
    parts = []
    for r in rows:
        body = [f"model: `{r['model']}`", ""]
        if r["train"]:
            body += [f"trained (`{r['train']['folder']}`):", "", "```", str(r["train"]["command"]), "```", ""]
        else:
            body += [
                "training command: not recorded in the model's folder (it predates the summary files)",
                "",
            ]
        for sp, cmd in r["eval"].items():
            body += [f"evaluated, {sp}:", "", "```", str(cmd), "```", ""]
        parts.append(
            f"<details><summary>{html.escape(r['label'])}</summary>\n\n" + "\n".join(body) + "\n</details>\n"
        )
    return "\n".join(parts)


def trajectory_pages(run: Run, out: Path, limit: int) -> Path | None:
    """Exploration rollouts, won and lost alternately, with each step's c_t, g_t and SPA-RL's fused r_t."""
    from eval.report import trajectory_page
    from spa_rl.estimator.data import read_step_values
    from spa_rl.rewards import read_ppo_data

    expl = run.path / "exploration" / "episodes.jsonl"
    if not expl.exists() or limit == 0:
        return None
    recs = list(read_records(expl))
    won, lost = [r for r in recs if r.success], [r for r in recs if not r.success]
    mixed = [r for pair in zip(won, lost, strict=False) for r in pair]
    mixed += (won if len(won) > len(lost) else lost)[len(mixed) // 2 :]
    sv = run.path / "exploration" / "step_values.jsonl"
    values = read_step_values(sv) if sv.exists() else {}
    pd = run.path / "ppo_data" / "progress.jsonl"
    fused = {(p.task_id, p.rollout): p for p in read_ppo_data(pd)} if pd.exists() else {}
    page = out / f"trajectories_{run.env}.html"
    write_text_atomic(page, trajectory_page(f"{run.name}: exploration rollouts ({run.path})", mixed, values,
                                            fused, limit))  # fmt: skip
    return page


def curves(runs: list[Run], out: Path) -> Path | None:
    logs = {}
    for run in runs:
        for p in sorted(run.path.glob("ppo_*/train_log.jsonl")):
            log = [json.loads(ln) for ln in p.read_text().splitlines() if ln.strip()]
            probe = p.parent / "probe_log.jsonl"  # the learning curve: greedy success on training games
            if probe.exists():
                for e in map(json.loads, filter(str.strip, probe.read_text().splitlines())):
                    lo, hi = (
                        wilson(round(e["train_success"] * e["n"]), e["n"]) if e.get("n") else (None, None)
                    )
                    log.append(
                        {"iteration": e["updates"], "train_success": e["train_success"], "lo": lo, "hi": hi}
                    )
            if log:
                logs[f"{run.name}/{p.parent.name.removeprefix('ppo_')}"] = log
    if not logs:
        return None
    plt = _pyplot()
    keys = [k for k in ("train_success", "rollout_success", "score", "approx_kl", "clipfrac", "kl_k3")
            if any(k in x for log in logs.values() for x in log)]  # fmt: skip
    fig, axes = plt.subplots(1, len(keys), figsize=(4 * len(keys), 3.4), squeeze=False)
    for name, log in logs.items():
        for ax, k in zip(axes[0], keys, strict=True):
            pts = [x for x in log if x.get(k) is not None]
            if not pts:
                continue
            xs, ys = [x["iteration"] for x in pts], [x[k] for x in pts]
            if k == "train_success" and all(x.get("lo") is not None for x in pts):
                err = [[y - x["lo"] for x, y in zip(pts, ys, strict=True)],
                       [x["hi"] - y for x, y in zip(pts, ys, strict=True)]]  # fmt: skip
                ax.errorbar(xs, ys, yerr=err, marker=".", capsize=2, label=name)
            else:
                ax.plot(xs, ys, marker=".", label=name)
    titles = {"train_success": "probe: greedy success on training games (95 % Wilson)"}
    for ax, k in zip(axes[0], keys, strict=True):
        ax.set(title=titles.get(k, k), xlabel="PPO updates")
        ax.title.set_fontsize(8)
    return _save(fig, axes, out / "curves.png")


def _save(fig, axes, path: Path) -> Path:
    axes[0][0].legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    _pyplot().close(fig)
    return path


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}"


def _num(x: float | None, fmt: str) -> str:
    return "-" if x is None else format(x, fmt)


def _cell(r: dict) -> str:
    lo, hi = r["ci95"]
    return f"{_pct(r['success'])} [{_pct(lo)}, {_pct(hi)}] ({r['successes']}/{r['n']})"


def markdown(rows, methods, comps, graded: bool) -> str:
    splits = split_order({sp for r in rows for sp in r["splits"]})
    lines = ["### Success by model (greedy; % [95 % Wilson interval] (wins/games))", "",
             "| method | seed | " + " | ".join(splits) + " | pooled | grounding % |"
             + (" score |" if graded else ""),
             "|" + "---|" * (4 + len(splits) + graded)]  # fmt: skip
    for r in rows:
        cells = [_cell(r["splits"][sp]) if sp in r["splits"] else "-" for sp in splits]
        row = f"| {r['label']} | {r['seed'] if r['seed'] is not None else '-'} | " + " | ".join(cells)
        row += f" | {_cell(r['pooled'])} | {_pct(r['pooled']['grounding'])} |"
        row += f" {_pct(r['pooled']['score'])} |" if graded else ""
        lines.append(row)
    lines += ["", "### By method: pooled success, mean over seeds and the seeds' spread", "",
              "| method | seeds | games per seed | mean success % | min-max % |", "|---|---|---|---|---|"]  # fmt: skip
    for m in methods:
        seeds = ", ".join("-" if s is None else str(s) for s in m["seeds"])
        lines.append(f"| {m['label']} | {seeds} | {m['n_per_seed']} | {_pct(m['mean_success'])} | "
                     f"{_pct(m['min'])}-{_pct(m['max'])} |")  # fmt: skip
    lines += ["", "### Paired comparisons on identical games (pooled over splits)", "",
              "A - B in success points with a paired bootstrap 95 % interval (10,000 resamples of games); "
              "McNemar's exact test on the games only one of them won. Rows over several seeds compare each "
              "game's success averaged over the seeds (no McNemar test).", "",
              "| A | B | games | only A won | only B won | A - B (points) | 95 % interval | McNemar p | reading |",
              "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for c in comps:
        lo, hi = c["ci95"]
        reading = "within noise" if lo <= 0 <= hi else ("A better" if lo > 0 else "B better")
        p = "-" if c["mcnemar_p"] is None else f"{c['mcnemar_p']:.3f}"
        lines.append(f"| {c['a']} | {c['b']} | {c['n']} | {_dash(c['only_a'])} | {_dash(c['only_b'])} | "
                     f"{100 * c['diff']:+.1f} | [{100 * lo:+.1f}, {100 * hi:+.1f}] | {p} | {reading} |")  # fmt: skip
    return "\n".join(lines) + "\n"


def _dash(x) -> str:
    return "-" if x is None else str(x)


@dataclass
class StudyConfig:
    run_dir: list[str] = arg(help="run folder(s), one per environment: --run-dir A B (or --run-dir A --run-dir B)",
                             repeat=True)  # fmt: skip
    output: str = arg(
        help="folder for study.md, study.json, curves.png, by_length.png, trajectories_<env>.html"
    )
    max_trajectories: int = arg(20, "exploration rollouts per trajectory page (0: no pages)")

    def __post_init__(self) -> None:
        non_negative_int("--max-trajectories", self.max_trajectories)


def main(argv: list[str] | None = None) -> None:
    cfg = parse(StudyConfig, argv=argv, doc=__doc__)
    out = Path(cfg.output)
    out.mkdir(parents=True, exist_ok=True)
    runs = []
    for r in cfg.run_dir:
        run = collect(Path(r))
        if not run.games:
            raise SystemExit(f"{r}: no evaluation under {Path(r) / 'eval'}")
        runs.append(run)
    report: dict = {"command": command_line(), "runs": {}}
    md = ["# The study's tables", "", f"Made by `{command_line()}`.", ""]

    main_md, report["main_table"] = table(runs, methods_of(runs, ablation=False), main_columns(runs))
    md += ["## Main table: success % (score for WebShop), greedy", "",
           "Mean [95 % interval]: Wilson for one seed; over several seeds, the mean with a bootstrap over games "
           "of each game's seed-averaged result, and the seeds' min-max in brackets.", "", main_md, ""]  # fmt: skip
    ablations = methods_of(runs, ablation=True)
    if ablations:
        abl_md, report["ablation_table"] = table(runs, ablations, ablation_columns(runs))
        md += ["## Reward ablations (pooled over splits)", "", abl_md, ""]
    else:
        md += ["## Reward ablations", "", "No ablation was trained in these run folders.", ""]

    lengths_by_run = {}
    for run in runs:
        res = by_length(run, methods_of([run], ablation=False), expert_lengths(run))
        lengths_by_run[run.name] = res
    report["by_length"] = lengths_by_run
    fig = length_figure(lengths_by_run, out)
    md += ["## Success by the length of the game's expert trajectory", ""]
    if fig:
        md += ["Seed-averaged success by the number of steps of the game's expert trajectory (5-step units "
               f"joined until a bucket holds {MIN_BUCKET} games; games per bucket in brackets). Only games whose expert trajectory is in the data count: on "
               "ALFWorld those are the training-split games (the heldout split); the seen and unseen games have none.",
               "", f"![by length]({fig.name})", ""]  # fmt: skip
        for name, res in lengths_by_run.items():
            if res:
                md += [f"**{name}**", "", length_markdown(res), ""]
    else:
        md += ["No evaluated game has an expert trajectory in the data.", ""]
    plot = curves(runs, out)
    if plot:
        md += ["## PPO learning curves", "",
               "The probe plays a fixed set of training games greedily every few updates (offline PPO's own "
               "batches are fixed rollouts, so this is the only sign of whether its policy improves); beside it "
               "PPO's approx-KL, clip fraction and KL to the reference.", "", f"![curves]({plot.name})", ""]  # fmt: skip

    for run in runs:
        rows, comps = per_model(run), comparisons(run)
        methods = per_method(rows)
        entry: dict = {"env": run.env, "models": rows, "methods": methods, "comparisons": comps}
        md += [f"## {run.name} (`{run.path}`)", "", markdown(rows, methods, comps, run.graded)]
        ev = run.path / "estimator" / "eval.json"
        if ev.exists():
            from eval.report import estimator_table

            info = run.path / "exploration" / "step_values.info.json"
            entry["estimator"] = json.loads(ev.read_text())
            md += ["### Progress estimator: sum_t c_t as a prediction of the final reward", "",
                   estimator_table(entry["estimator"], json.loads(info.read_text()) if info.exists() else None), ""]  # fmt: skip
        if e := exploration_stats(run):
            entry["exploration"] = e
            md += ["### Exploration", "", exploration_markdown(e), ""]
        if page := trajectory_pages(run, out, cfg.max_trajectories):
            md += [f"Trajectory pages: [{page.name}]({page.name}) (the task, each raw reply beside the parsed "
                   "action, the observation, c_t, g_t and SPA-RL's fused r_t; rows coloured by c_t).", ""]  # fmt: skip
        if t := timings_markdown(run):
            md += ["### Stage wall times", "", t, ""]
        entry["provenance"] = provenance(run)
        md += ["### Commands of every row", "", provenance_markdown(entry["provenance"]), ""]
        report["runs"][str(run.path)] = entry
    write_text_atomic(out / "study.md", "\n".join(md))
    write_json_atomic(out / "study.json", report)
    print(f"wrote {out / 'study.md'}")


if __name__ == "__main__":
    main()
