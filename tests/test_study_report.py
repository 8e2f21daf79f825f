"""The study's statistics (Wilson, McNemar, paired bootstrap) against hand-computed values, and the study
report's pooling, seed grouping and pairing on evaluation folders written through the real schema."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from spa_rl.agent.schema import RecordWriter, StepRecord, TrajectoryRecord
from spa_rl.stats import bootstrap_mean, mcnemar_exact, paired_bootstrap, wilson

REPO = Path(__file__).resolve().parents[1]


def test_wilson_matches_textbook_values():
    assert wilson(5, 10) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    assert wilson(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    lo, hi = wilson(8, 24)
    assert lo < 8 / 24 < hi and wilson(80, 240)[1] - wilson(80, 240)[0] < hi - lo  # narrower with more games
    with pytest.raises(ValueError):
        wilson(5, 4)


def test_mcnemar_exact_by_hand():
    assert mcnemar_exact(0, 6) == pytest.approx(2 / 64)  # 2 * P(X <= 0), X ~ Bin(6, 1/2)
    assert mcnemar_exact(1, 5) == pytest.approx(2 * 7 / 64)
    assert mcnemar_exact(3, 3) == 1.0 and mcnemar_exact(0, 0) == 1.0


def test_paired_bootstrap_centres_on_the_mean_difference():
    assert paired_bootstrap([1, 0, 1], [1, 0, 1]) == (0.0, 0.0, 0.0)
    d, lo, hi = paired_bootstrap([1.0] * 30 + [0.0] * 10, [0.0] * 40)
    assert d == pytest.approx(0.75) and lo < 0.75 < hi and lo > 0.5


def _eval(run: Path, tag: str, split: str, wins: dict[str, bool]) -> None:
    out = run / "eval" / f"{tag}_{split}"
    with RecordWriter(out / "episodes.jsonl") as w:
        for task, won in wins.items():
            step = StepRecord("Action: look", "look", "ok", True, float(won))
            msgs = [{"role": "user", "content": f"task {task}"}, {"role": "assistant", "content": step.reply}]
            w.write(TrajectoryRecord("alfworld", split, task, "pick", 0, msgs, 1, [step], float(won), won, 1,
                                     "success" if won else "max_steps"))  # fmt: skip
    (out / "summary.json").write_text(json.dumps({"metrics": {"n": len(wins)}}))


def test_study_report_pools_splits_groups_seeds_and_pairs_games(tmp_path):
    run = tmp_path / "run"
    games = {"unseen": ["u1", "u2"], "seen": ["s1", "s2"]}
    won = {  # games each model won
        "sft": {"u1"},
        "ppo_offline_sparse_seed1": {"u1", "s1"},
        "ppo_offline_progress_seed1": {"u1", "u2", "s1", "s2"},
        "ppo_offline_progress_seed2": {"u2"},
    }
    for tag, wins in won.items():
        for split, tasks in games.items():
            _eval(run, tag, split, {t: t in wins for t in tasks})
    # Stage times: a row of an older file (no machine column) and one with the machine it ran on.
    (run / "timings.tsv").write_text("sft\t120\t2026-12-02T16:37:52Z\toffline\n"
                                     "eval_sft\t600\t2026-12-03T13:00:00Z\toffline\tXeon x 2, no bf16\n")  # fmt: skip
    # An exploration still running (no summary yet) is reported as such.
    _eval(run, "sft", "train", {"t1": True, "t2": False})
    (run / "eval" / "sft_train").rename(run / "exploration")
    (run / "exploration" / "summary.json").unlink()
    out = tmp_path / "report"
    res = subprocess.run([sys.executable, "eval/study_report.py", "--run-dir", str(run), "--output", str(out)],
                         cwd=REPO, capture_output=True, text=True)  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]
    assert (
        "In progress (no summary yet): 2 rollouts over 2 tasks finished so far"
        in (out / "study.md").read_text()
    )
    report = json.loads((out / "study.json").read_text())["runs"][str(run)]
    pooled = {(m["variant"], m["seed"]): m["pooled"] for m in report["models"]}
    assert pooled[("sft", None)]["successes"] == 1 and pooled[("sft", None)]["n"] == 4
    assert pooled[("progress", 1)]["success"] == 1.0 and pooled[("progress", 2)]["success"] == 0.25
    spa = next(m for m in report["methods"] if m["variant"] == "progress")
    assert spa["seeds"] == [1, 2] and spa["mean_success"] == pytest.approx(0.625) and spa["min"] == 0.25
    pair = next(c for c in report["comparisons"] if c["a"].startswith("SPA-RL") and "PPO (sparse" in c["b"])
    assert (pair["n"], pair["only_a"], pair["only_b"]) == (4, 2, 0)  # u2 and s2
    assert pair["mcnemar_p"] == pytest.approx(0.5) and pair["diff"] == pytest.approx(0.5)
    md = (out / "study.md").read_text()
    assert "| SPA-RL (offline) | 1 |" in md and "25.0 [" in md and "within noise" in md
    assert "| sft | 2.0 | 2026-12-02T16:37:52Z | offline |  |" in md
    assert "| eval_sft | 10.0 | 2026-12-03T13:00:00Z | offline | Xeon x 2, no bf16 |" in md


def test_bootstrap_mean_and_paired_bootstrap_agree():
    m, lo, hi = bootstrap_mean([1.0] * 30 + [0.0] * 10)
    assert m == pytest.approx(0.75) and 0.55 < lo < 0.75 < hi < 0.9  # Wilson: 0.60-0.86
    assert paired_bootstrap([1.0, 0.0, 1.0, 1.0], [0.0, 0.0, 1.0, 0.0]) == bootstrap_mean(
        [1.0, 0.0, 0.0, 1.0]
    )
    with pytest.raises(ValueError):
        bootstrap_mean([])


def test_length_buckets_join_units_until_a_bucket_holds_enough_games():
    from spa_rl.study import length_buckets

    lengths = [4] * 6 + [7] * 2 + [12] * 4 + [22] * 5 + [30] + [60]  # 5-step units: 6, 2, 4, 5, 1, 1 games
    b = length_buckets(lengths, min_games=5)
    assert b[4] == "1-5" and b[7] == b[12] == "6-15"  # 2 + 4 games
    assert b[22] == b[30] == b[60] == "21-60"  # the 2-game remainder joins the last bucket
    assert length_buckets([3, 3], min_games=5) == {3: "1-5"}


def _eval_graded(run: Path, tag: str, split: str, rewards: dict[str, float], env: str = "webshop") -> None:
    out = run / "eval" / f"{tag}_{split}"
    with RecordWriter(out / "episodes.jsonl") as w:
        for task, r in rewards.items():
            steps = [StepRecord("Action: search[x]", "search[x]", "ok", True, 0.0),
                     StepRecord("Action: click[y]", "click[y]", "no", False, r)]  # fmt: skip
            msgs = [{"role": "user", "content": f"task {task}"}] + [{"role": "assistant", "content": s.reply}
                                                                   for s in steps]  # fmt: skip
            w.write(TrajectoryRecord(env, split, task, None, 0, msgs, 1, steps, r, r == 1.0, 2,
                                     "success" if r == 1.0 else "max_steps"))  # fmt: skip
    (out / "summary.json").write_text(json.dumps({"metrics": {"n": len(rewards)}}))


def test_paper_tables_over_two_environments_seeds_ablations_and_expert_lengths(tmp_path):
    """One command over an ALFWorld and a WebShop run: the main table has both environments' columns (WebShop's
    score beside its success), seed means with their spread, the ablation table, grounding as accepted over
    all actions, and success by the expert length of real ALFWorld training games."""
    from envs import load_tasks

    picks = [t for t in load_tasks("alfworld", "train") if t.task_type == "pick"][:12]
    alf, web = tmp_path / "alfworld", tmp_path / "webshop"
    for tag, won in {"sft": picks[:3], "ppo_offline_sparse_seed1": picks[:4], "ppo_offline_sparse_seed2": picks[:6],
                     "ppo_offline_progress_seed1": picks[:8], "ppo_offline_mean_seed1": picks[:1]}.items():  # fmt: skip
        wins = {t.task_id: t in won for t in picks}
        _eval(alf, tag, "heldout", wins)
        summary = alf / "eval" / f"{tag}_heldout" / "summary.json"
        summary.write_text(json.dumps({"metrics": {"n": len(wins)}, "config": {"split": "train"}}))
    for tag, rewards in {
        "sft": [1.0, 0.5, 0.0, 0.0],
        "ppo_offline_progress_seed1": [1.0, 1.0, 0.5, 0.25],
    }.items():
        _eval_graded(web, tag, "test", {f"g{i}": r for i, r in enumerate(rewards)})
    out = tmp_path / "tables"
    res = subprocess.run([sys.executable, "eval/study_report.py", "--run-dir", str(alf), str(web), "--output", str(out)],
                         cwd=REPO, capture_output=True, text=True)  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]
    rep = json.loads((out / "study.json").read_text())
    main = {r["method"]: r["cells"] for r in rep["main_table"]}
    assert set(main["SFT"]) == {"ALFWorld heldout", "WebShop test score", "WebShop test success"}
    sparse = main["PPO (sparse reward) (offline)"]["ALFWorld heldout"]
    assert sparse["mean"] == pytest.approx(5 / 12) and sparse["seed_means"] == pytest.approx([4 / 12, 6 / 12])
    assert sparse["interval"] == "bootstrap over games"
    sft_alf = main["SFT"]["ALFWorld heldout"]
    assert sft_alf["interval"] == "wilson" and sft_alf["ci95"] == pytest.approx(list(wilson(3, 12)))
    assert main["SPA-RL (offline)"]["WebShop test score"]["mean"] == pytest.approx(0.6875)
    assert main["SPA-RL (offline)"]["WebShop test success"]["mean"] == pytest.approx(0.5)
    assert "ablation: uniform split (mean) (offline)" not in main
    abl = {r["method"]: r["cells"] for r in rep["ablation_table"]}
    assert set(abl) == {
        "PPO (sparse reward) (offline)",
        "SPA-RL (offline)",
        "ablation: uniform split (mean) (offline)",
    }
    assert abl["SPA-RL (offline)"]["WebShop test grounding"]["mean"] == pytest.approx(0.5)  # 4 of 8 actions
    lengths = {t.task_id: len(t.expert_actions) for t in picks}
    short = [t for t in picks[:8] if lengths[t.task_id] <= 5]
    spa_len = rep["by_length"]["ALFWorld"]["SPA-RL (offline)"]
    assert sum(b["n"] for b in spa_len.values()) == 12 and spa_len["1-5"]["n"] == sum(
        n <= 5 for n in lengths.values()
    )
    assert spa_len["1-5"]["success"] == pytest.approx(len(short) / spa_len["1-5"]["n"])
    over = next(
        c for c in rep["runs"][str(alf)]["comparisons"] if c["a"].startswith("SPA-RL") and "seeds" in c["b"]
    )
    assert over["diff"] == pytest.approx(8 / 12 - 5 / 12) and over["mcnemar_p"] is None
    md = (out / "study.md").read_text()
    assert "| WebShop test score | WebShop test success |" in md and "(2 seeds: 33.3-50.0)" in md
    assert (out / "by_length.png").stat().st_size > 0 and "## Reward ablations (pooled over splits)" in md
