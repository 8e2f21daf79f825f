"""Report of one run directory: a Markdown table shaped like the paper's (rows: SFT, PPO with the
sparse reward, SPA-RL, and every ablation present; columns per split: success, score where rewards
are graded (WebShop), grounding), a table by trajectory length, PPO training curves, and static HTML
pages that show trajectories step by step.

    python eval/report.py --run-dir runs/demo/alfworld

Reads ``<run>/eval/<model>_<split>/summary.json`` (and episodes), ``<run>/ppo_*/train_log.jsonl``,
``<run>/estimator/eval.json`` (the progress estimator's held-out quality),
``<run>/exploration/{episodes,step_values}.jsonl`` (+ ``step_values.info.json``) and
``<run>/ppo_data/<variant>.jsonl``.
Writes ``<run>/report/{report.md,curves.png,trajectories_*.html}``.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass
from pathlib import Path

from envs import ENVS
from spa_rl.agent.schema import read_records, write_text_atomic
from spa_rl.cli import arg, parse
from spa_rl.rl.advantages import method_labels
from spa_rl.validate import non_negative_int

ROW_NAMES = method_labels()  # step-value variants and critic-free estimators
ORDER = list(ROW_NAMES)
SPLIT_ORDER = ["unseen", "seen", "test", "train"]


def _variant(tag: str) -> str:
    """'sft' -> 'sft'; 'ppo_offline_progress' -> 'progress'."""
    return tag.split("_", 2)[2] if tag.startswith("ppo_") and tag.count("_") >= 2 else tag


def collect(run: Path) -> dict[str, dict[str, dict]]:
    """{model tag: {split: summary}} from run/eval/<tag>_<split>/summary.json."""
    out: dict[str, dict[str, dict]] = {}
    for s in sorted((run / "eval").glob("*/summary.json")):
        tag, _, split = s.parent.name.rpartition("_")
        out.setdefault(tag, {})[split] = json.loads(s.read_text())
    return out


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}"


def main_table(results: dict[str, dict[str, dict]]) -> str:
    splits = sorted({sp for r in results.values() for sp in r}, key=lambda s: (SPLIT_ORDER + [s]).index(s))
    # WebShop's paper metric is the mean score (x100); where rewards are 0/1 it equals success.
    graded = any(
        (s.get("env") in ENVS and ENVS[s["env"]].graded)
        or s["metrics"]["avg_reward"] != s["metrics"]["success_rate"]
        for r in results.values()
        for s in r.values()
    )
    cols = ["success %", "score", "grounding %", "n"] if graded else ["success %", "grounding %", "n"]
    head = "| method | mode | " + " | ".join(f"{s} {c}" for s in splits for c in cols) + " |"
    lines = [head, "|" + "---|" * (2 + len(cols) * len(splits))]
    for tag in _ordered(results):
        v, mode = _variant(tag), _mode(tag)
        cells = []
        for sp in splits:
            m = results[tag].get(sp, {}).get("metrics")
            if not m:
                cells += ["-"] * len(cols)
                continue
            cells += [_pct(m["success_rate"])]
            cells += [_pct(m["avg_reward"])] if graded else []
            cells += [_pct(m["grounding"]), str(m["n"])]
        lines.append(f"| {ROW_NAMES.get(v, v)} | {mode} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _mode(tag: str) -> str:
    """'ppo_offline_progress' -> 'offline'; 'ppo_online-turn_sparse' -> 'online-turn' (turn-level GAE)."""
    return tag.split("_")[1] if tag.startswith("ppo_") else "-"


def _ordered(results: dict[str, dict]) -> list[str]:
    return sorted(results, key=lambda t: (ORDER.index(_variant(t)) if _variant(t) in ORDER else 99, t))


def length_table(results: dict[str, dict[str, dict]]) -> str:
    buckets = sorted({b for r in results.values() for s in r.values() for b in s["metrics"].get("by_length", {})},
                     key=lambda b: int(b.split("-")[0]))  # fmt: skip
    lines = [
        "| method | mode | split | " + " | ".join(f"{b} steps" for b in buckets) + " |",
        "|" + "---|" * (3 + len(buckets)),
    ]
    for tag in _ordered(results):
        for sp, s in results[tag].items():
            bl = s["metrics"].get("by_length", {})
            cells = [f"{_pct(bl[b]['success_rate'])} ({bl[b]['n']})" if b in bl else "-" for b in buckets]
            name = ROW_NAMES.get(_variant(tag), tag)
            lines.append(f"| {name} | {_mode(tag)} | {sp} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _num(x: float | None, fmt: str = ".4f") -> str:
    return "-" if x is None else format(x, fmt)


def estimator_table(ev: dict, values_info: dict | None = None) -> str:
    """The progress estimator's quality (``prm/train.py``'s eval.json): sum_t c_t as a prediction of the
    final reward R on its own training split (in-sample), on the held-out val split, and, when it was
    cross-fitted, out-of-fold over every rollout; each against its mean-reward baseline. Then which c_t
    the rewards used (``step_values.info.json``)."""
    rows = [
        ("train split (in-sample)", ev.get("train")),
        ("val split (held-out tasks)", ev.get("val")),
    ]
    if ev.get("cross_fit"):
        cf = ev["cross_fit"]
        rows.append((f"cross-fit, {cf.get('folds')} folds by task (out-of-fold)", cf))
    lines = [
        "| estimate | n | MSE | baseline MSE | beats baseline | Pearson r |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in rows:
        if not r or not r.get("n"):
            lines.append(f"| {name} | 0 | - | - | - | - |")
            continue
        beats = "yes" if r.get("beats_baseline") else "no"
        lines.append(
            f"| {name} | {r['n']} | {_num(r.get('mse'))} | {_num(r.get('baseline_mse'))} | {beats} "
            f"| {_num(r.get('pearson_r'), '.2f')} |"
        )
    base = "Baseline: predict the mean training reward"
    if ev.get("cross_fit"):
        base += " (cross-fit: per fold, the mean reward of the other folds)"
    notes = ["", base + "."]
    if values_info is not None:
        mode = values_info.get("mode", "in-sample")
        how = (
            "each rollout scored by the fold estimator that never saw its task"
            if mode.startswith("cross-fit")
            else "every rollout scored by the estimator trained on the train split"
        )
        notes.append(f"c_t in `exploration/step_values.jsonl`: **{mode}** ({how}).")
    return "\n".join(lines + notes)


def curves(run: Path, out: Path) -> Path | None:
    logs = {p.parent.name: [json.loads(ln) for ln in p.read_text().splitlines() if ln.strip()]
            for p in sorted(run.glob("ppo_*/train_log.jsonl"))}  # fmt: skip
    logs = {k: v for k, v in logs.items() if v}
    if not logs:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = ["score", "kl", "pg_loss", "vf_loss"]
    fig, axes = plt.subplots(1, len(keys), figsize=(4 * len(keys), 3.2))
    for name, log in logs.items():
        it = [x["iteration"] for x in log]
        for ax, k in zip(axes, keys, strict=True):
            ax.plot(it, [x.get(k) for x in log], marker=".", label=ROW_NAMES.get(_variant(name), name))
    for ax, k in zip(axes, keys, strict=True):
        ax.set(title=k, xlabel="PPO iteration")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    path = out / "curves.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _color(x: float, scale: float) -> str:
    a = min(1.0, abs(x) / scale) if scale > 0 else 0.0
    return f"rgba(40,160,60,{a:.2f})" if x >= 0 else f"rgba(210,50,50,{a:.2f})"


def trajectory_page(title: str, records, values=None, fused=None, limit: int = 50) -> str:
    """One HTML page: every trajectory step by step (the task, each raw reply beside the action parsed from
    it, observation, c_t, g_t, r_t), rows
    coloured by the step's contribution c_t (or its fused reward when there is no c_t)."""
    values, fused = values or {}, fused or {}
    scale = max([abs(v) for r in records for v in values.get(r.key, [])] + [1e-9])
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>" + html.escape(title) + "</title><style>"
        "body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse;margin-bottom:1.5em;width:100%}"
        "td,th{border:1px solid #ccc;padding:3px 6px;font-size:12px;vertical-align:top}"
        "th{background:#eee}.ok{color:#1a7f37}.bad{color:#c62828}pre{margin:0;white-space:pre-wrap}</style>"
        "</head><body><h1>" + html.escape(title) + "</h1>"
    ]
    for r in records[:limit]:
        c, f = values.get(r.key), fused.get(r.key)
        cls = "ok" if r.success else "bad"
        parts.append(
            f"<h3 class='{cls}'>{html.escape(r.task_id)} #{r.rollout}: "
            f"{'success' if r.success else 'failure'}, reward {r.reward:g}, {r.n_steps} steps ({r.finish_reason})</h3>"
        )
        if (
            0 < r.prefix_len <= len(r.messages)
        ):  # the task as the agent saw it (the last message before it acts)
            task = r.messages[r.prefix_len - 1]["content"]
            parts.append(f"<details><summary>task</summary><pre>{html.escape(task)}</pre></details>")
        parts.append(
            "<table><tr><th>t</th><th>reply (raw)</th><th>action (parsed)</th><th>observation</th><th>c_t</th>"
            "<th>g_t</th><th>r_t</th></tr>"
        )
        for t, s in enumerate(r.steps):
            ct = c[t] if c else None
            rt = f.step_rewards[t] if f else None
            shade = (
                _color(ct, scale)
                if ct is not None
                else (_color(rt, 1.0) if rt is not None else "transparent")
            )
            parts.append(
                f"<tr style='background:{shade}'><td>{t + 1}</td><td><pre>{html.escape(s.reply)}</pre></td>"
                f"<td><pre>{html.escape(s.action or '(no action)')}</pre></td>"
                f"<td><pre>{html.escape(s.observation)}</pre></td>"
                f"<td>{'' if ct is None else f'{ct:+.3f}'}</td><td>{int(s.grounded)}</td>"
                f"<td>{'' if rt is None else f'{rt:+.3f}'}</td></tr>"
            )
        parts.append("</table>")
    parts.append("</body></html>")
    return "".join(parts)


@dataclass
class ReportConfig:
    run_dir: str = arg(help="the run folder (scripts/run_pipeline.sh's RUN_DIR)")
    max_trajectories: int = arg(50, "trajectories per HTML page")

    def __post_init__(self) -> None:
        non_negative_int("--max-trajectories", self.max_trajectories)


def main(argv: list[str] | None = None) -> None:
    cfg = parse(ReportConfig, argv=argv, doc=__doc__)
    run = Path(cfg.run_dir)
    out = run / "report"
    out.mkdir(parents=True, exist_ok=True)
    results = collect(run)
    md = [f"# Report: {run}", ""]
    if results:
        md += [
            "## Results",
            "",
            main_table(results),
            "",
            "## Success by trajectory length",
            "",
            length_table(results),
            "",
        ]
    else:
        md += ["No evaluation summaries found under eval/.", ""]
    timings = run / "timings.tsv"
    if timings.exists():
        md += [
            "## Stage wall times",
            "",
            "| stage | seconds | run started (UTC) | PPO mode | machine |",
            "|---|---|---|---|---|",
        ]
        for ln in timings.read_text().splitlines():
            if ln:  # stage, seconds[, run start, PPO mode, machine]: older files have fewer columns
                cells = (ln.split("\t") + ["", "", ""])[:5]
                md.append("| " + " | ".join(cells) + " |")
        md.append("")
    ev_path = run / "estimator" / "eval.json"
    if ev_path.exists():
        info = run / "exploration" / "step_values.info.json"
        md += [
            "## Progress estimator",
            "",
            estimator_table(
                json.loads(ev_path.read_text()), json.loads(info.read_text()) if info.exists() else None
            ),
            "",
        ]
    if curves(run, out):
        md += ["## PPO training curves", "", "![curves](curves.png)", ""]

    from spa_rl.estimator.data import read_step_values
    from spa_rl.rewards import read_ppo_data

    pages = []
    expl = run / "exploration" / "episodes.jsonl"
    if expl.exists():
        sv = run / "exploration" / "step_values.jsonl"
        values = read_step_values(sv) if sv.exists() else {}
        pd = run / "ppo_data" / "progress.jsonl"
        fused = {(p.task_id, p.rollout): p for p in read_ppo_data(pd)} if pd.exists() else {}
        page = out / "trajectories_exploration.html"
        write_text_atomic(
            page,
            trajectory_page(
                f"Exploration rollouts ({run})", read_records(expl), values, fused, cfg.max_trajectories
            ),
        )
        pages.append(page)
    for ep in sorted((run / "eval").glob("*/episodes.jsonl")):
        page = out / f"trajectories_{ep.parent.name}.html"
        write_text_atomic(
            page,
            trajectory_page(
                f"Evaluation {ep.parent.name} ({run})", read_records(ep), limit=cfg.max_trajectories
            ),
        )
        pages.append(page)
    if pages:
        md += ["## Trajectory pages", ""] + [f"- [{p.name}]({p.name})" for p in pages] + [""]
    write_text_atomic(out / "report.md", "\n".join(md))
    print(f"wrote {out / 'report.md'} and {len(pages)} trajectory pages")


if __name__ == "__main__":
    main()
