"""Exploration and stage 3 through their scripts on the tiny profile; forced replies (the start of
Monte-Carlo continuations) replay in the real game. Kill-and-resume of multi-rollout exploration is
covered by tests/test_runner.py::test_resume_after_interruption (n_rollouts=2)."""

import json
import os
import subprocess

import pytest

from envs import load_tasks
from spa_rl.agent.backends import GenerationConfig
from spa_rl.agent.react import format_turn
from spa_rl.agent.runner import EpisodeSpec, RolloutConfig, run_rollouts
from spa_rl.agent.schema import read_records
from spa_rl.rewards import read_ppo_data

REPO = __import__("envs.paths", fromlist=["REPO_ROOT"]).REPO_ROOT
pytestmark = pytest.mark.usefixtures("alfworld_ready")


def test_forced_replies_replay_then_the_policy_continues(tmp_path, tiny_policy):
    task = load_tasks("alfworld", "train", limit=1)[0]
    forced = tuple(format_turn("expert step", a) for a in task.expert_actions[:2])
    specs = [EpisodeSpec(task, 7, forced, {"prefix_steps": 2}), EpisodeSpec(task, 8)]
    cfg = RolloutConfig(batch_size=2, max_steps=3, generation=GenerationConfig(max_new_tokens=8))
    recs, stats = run_rollouts([], tiny_policy, tmp_path / "mc.jsonl", cfg, specs=specs, progress=False)
    by_rollout = {r.rollout: r for r in recs}
    r = by_rollout[7]
    assert r.n_steps == 3 and r.meta["prefix_steps"] == 2
    assert [s.reply for s in r.steps[:2]] == list(forced) and all(s.grounded for s in r.steps[:2])
    assert by_rollout[8].n_steps == 3 and by_rollout[8].steps[0].reply != forced[0]
    # 3 generate calls: the forced episode only needed one of them.
    assert stats.generate_calls == 3


@pytest.mark.slow
def test_exploration_and_estimator_scripts_tiny_profile(tmp_path):
    run = tmp_path / "run"
    env = dict(
        os.environ,
        PROFILE="tiny",
        RUN_DIR=str(run),
        EXPLORE_MODEL="models/tiny-llama",
        PRM_BASE="models/tiny-llama",
    )
    for script in ("exploration/run_explore.sh", "prm/run_prm.sh"):
        res = subprocess.run(["bash", script, "alfworld"], cwd=REPO, env=env, capture_output=True, text=True)
        assert res.returncode == 0, (script, res.stderr[-3000:])
    rollouts = read_records(run / "exploration" / "episodes.jsonl")
    assert len(rollouts) == 4 and {r.rollout for r in rollouts} == {0, 1}
    summary = json.loads((run / "exploration" / "summary.json").read_text())
    assert summary["config"]["temperature"] == 0.7 and summary["config"]["split"] == "train"
    report = json.loads((run / "estimator" / "eval.json").read_text())
    assert report["train"]["n"] + report["val"]["n"] == 4
    values = [json.loads(ln) for ln in (run / "exploration" / "step_values.jsonl").read_text().splitlines()]
    assert [len(v["values"]) for v in values] == [r.n_steps for r in rollouts]
    for variant in ("progress", "sparse"):
        data = read_ppo_data(run / "ppo_data" / f"{variant}.jsonl")
        assert len(data) == 4 and all(p.variant == variant for p in data)
    prog = read_ppo_data(run / "ppo_data" / "progress.jsonl")
    assert [p.values for p in prog] == [v["values"] for v in values]
