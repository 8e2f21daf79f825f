"""The study's statistics (Wilson, McNemar, paired bootstrap) against hand-computed values, and the study
report's pooling, seed grouping and pairing on evaluation folders written through the real schema."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from spa_rl.agent.schema import RecordWriter, StepRecord, TrajectoryRecord
from spa_rl.stats import mcnemar_exact, paired_bootstrap, wilson

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
    out = tmp_path / "report"
    res = subprocess.run([sys.executable, "eval/study_report.py", "--run-dir", str(run), "--output", str(out)],
                         cwd=REPO, capture_output=True, text=True)  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]
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
