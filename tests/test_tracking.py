"""Experiment tracking (spa_rl/tracking.py): --report-to resolution, and PPO's scalars in TensorBoard."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import TINY
from test_ppo import MESSAGES, ppo_record

from spa_rl.tracking import Tracker, resolve_report_to, trainer_argv

REPO = Path(__file__).resolve().parents[1]
tensorboard = pytest.importorskip("tensorboard")


def scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder))
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def test_report_to_resolution():
    assert resolve_report_to("auto") == ["tensorboard"]  # installed by requirements.txt
    assert resolve_report_to("none") == [] and resolve_report_to("tensorboard") == ["tensorboard"]
    with pytest.raises(
        ValueError, match="--report-to must be auto, none or some of tensorboard, wandb, got 'mlflow'"
    ):
        resolve_report_to("mlflow")
    # The Trainer recipes: auto (or no flag) becomes the installed trackers; an explicit choice stays.
    assert trainer_argv(["--lr", "1"]) == ["--lr", "1", "--report-to", "tensorboard"]
    assert trainer_argv(["--report_to", "auto", "--x"]) == ["--report_to", "tensorboard", "--x"]
    assert trainer_argv(["--report-to", "none"]) == ["--report-to", "none"]


def test_tracker_writes_finite_scalars_at_their_steps(tmp_path):
    t = Tracker("tensorboard", tmp_path, "run", {"lr": 1e-3})
    t.log(1, {"kl": 0.5, "score": 1.0, "skipped": None, "nan": float("nan")}, "ppo/")
    t.log(2, {"kl": 0.25}, "ppo/")
    t.close()
    got = scalars(tmp_path / "tensorboard")
    assert got == {"ppo/kl": [(1, 0.5), (2, 0.25)], "ppo/score": [(1, 1.0)]}
    quiet = Tracker("none", tmp_path / "q", "run", {})
    quiet.log(1, {"kl": 1.0})
    quiet.close()
    assert not (tmp_path / "q").exists()


@pytest.mark.slow
def test_ppo_logs_every_iteration_to_tensorboard(tmp_path):
    data = tmp_path / "d.jsonl"
    recs = [ppo_record(MESSAGES, 1, [0.1 * k, 1.0 - 0.1 * k]) for k in range(4)]
    data.write_text("".join(json.dumps({**r.__dict__, "rollout": k}) + "\n" for k, r in enumerate(recs)))
    out = tmp_path / "ppo"
    cmd = [sys.executable, "ppo/train.py", "--mode", "offline", "--model", str(TINY), "--data", str(data),
           "--output-dir", str(out), "--iterations", "3", "--rollouts-per-iteration", "2", "--minibatch-size", "1",
           "--lr", "1e-3", "--dtype", "fp32", "--report-to", "tensorboard"]  # fmt: skip
    res = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    got = scalars(out / "tensorboard")
    log = [json.loads(ln) for ln in (out / "train_log.jsonl").read_text().splitlines()]
    for key in ("kl", "pg_loss", "vf_loss", "clipfrac", "score", "kl_coef"):
        assert [s for s, _ in got[f"ppo/{key}"]] == [1, 2, 3]
        assert [v for _, v in got[f"ppo/{key}"]] == pytest.approx([e[key] for e in log], rel=1e-5)
    bad = subprocess.run([*cmd[:-1], "mlflow"], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert bad.returncode == 1 and "--report-to must be auto, none or some of" in bad.stderr
