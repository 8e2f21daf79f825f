"""The whole pipeline on the tiny profile: every stage runs, a rerun skips finished stages, and the
report has the paper-shaped table and the trajectory pages."""

import os
import subprocess

import pytest

REPO = __import__("envs.paths", fromlist=["REPO_ROOT"]).REPO_ROOT
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("alfworld_ready")]


def test_tiny_pipeline_end_to_end(tmp_path, screenshot):
    run = tmp_path / "run"
    env = dict(os.environ, PROFILE="tiny", RUN_DIR=str(run), SFT_DATA=str(tmp_path / "sft.json"))
    res = subprocess.run(
        ["bash", "scripts/run_pipeline.sh", "alfworld"], cwd=REPO, env=env, capture_output=True, text=True
    )
    assert res.returncode == 0, res.stderr[-4000:]
    first_run = (run / "timings.tsv").read_text().splitlines()
    stages = [ln.split("\t")[0] for ln in first_run]
    assert {ln.split("\t")[3] for ln in first_run} == {"offline"}
    assert stages == ["sft", "exploration", "estimator", "ppo_progress", "ppo_sparse", "eval_sft",
                      "eval_progress", "eval_sparse", "report"]  # fmt: skip
    for variant in ("progress", "sparse"):
        assert (run / f"ppo_offline_{variant}" / "merged" / "model.safetensors").exists()
    report = (run / "report" / "report.md").read_text()
    for row in ("| SFT |", "| PPO (sparse reward) | offline |", "| SPA-RL | offline |"):
        assert row in report
    assert "unseen success %" in report and "seen grounding %" in report
    page = (run / "report" / "trajectories_exploration.html").read_text()
    assert "<th>c_t</th>" in page and page.count("<h3") == 4
    img = screenshot(run / "report" / "trajectories_exploration.html", tmp_path / "exploration.png")
    assert (img[..., :3] < 0.5).any() and (img[..., :3] > 0.9).any()  # the page rendered, with text
    # A rerun finds every output in place and redoes no training.
    again = subprocess.run(
        ["bash", "scripts/run_pipeline.sh", "alfworld"], cwd=REPO, env=env, capture_output=True, text=True
    )
    assert again.returncode == 0, again.stderr[-4000:]
    assert "exists with these settings; pass --overwrite" in again.stdout
    assert (
        "merged is up to date; skipping" in again.stdout and "step_values.jsonl is up to date" in again.stdout
    )
    # Its stage times are added below the first run's, not written over them.
    both = (run / "timings.tsv").read_text().splitlines()
    assert both[: len(first_run)] == first_run and len(both) == 2 * len(first_run)
    assert len({ln.split("\t")[2] for ln in both}) == 2


@pytest.mark.parametrize(
    ("env_name", "split", "ready"),
    [("webshop", "test", "webshop_ready"), ("virtualhome", "unseen", "virtualhome_ready")],
)
def test_tiny_pipeline_of_the_other_environments(tmp_path, request, env_name, split, ready):
    """Every stage on WebShop and VirtualHome too: each profile's lengths must hold each environment's
    prompt (WebShop's, with its example, is longer than the tiny profile's ALFWorld length)."""
    request.getfixturevalue(ready)
    run = tmp_path / "run"
    env = dict(os.environ, PROFILE="tiny", RUN_DIR=str(run), SFT_DATA=str(tmp_path / "sft.json"))
    res = subprocess.run(
        ["bash", "scripts/run_pipeline.sh", env_name], cwd=REPO, env=env, capture_output=True, text=True
    )
    assert res.returncode == 0, res.stderr[-4000:]
    stages = [ln.split("\t")[0] for ln in (run / "timings.tsv").read_text().splitlines()]
    assert stages == ["sft", "exploration", "estimator", "ppo_progress", "ppo_sparse", "eval_sft",
                      "eval_progress", "eval_sparse", "report"]  # fmt: skip
    report = (run / "report" / "report.md").read_text()
    assert f"| method | mode | {split} success % |" in report
    for row in ("| SFT | - |", "| PPO (sparse reward) | offline |", "| SPA-RL | offline |"):
        assert row in report
    assert (run / "ppo_offline_progress" / "merged" / "model.safetensors").exists()
