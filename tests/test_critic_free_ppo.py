"""Critic-free estimators inside PPO: per-token advantages, offline groups by task, online groups of
--group-size rollouts per task, and an end-to-end offline run for each estimator."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from conftest import TINY
from test_ppo import MESSAGES, ppo_record

from spa_rl.rl.advantages import method_labels, step_observations
from spa_rl.rl.ppo import critic_free_advantages
from spa_rl.rl.sources import OfflineSource, SourceConfig
from spa_rl.rl.update import UpdateConfig, rollout_advantages

REPO = Path(__file__).resolve().parents[1]


def test_tokens_take_their_steps_advantage_plus_the_kl_reward_to_go():
    # Two steps: tokens 0-2 are step 0 (last token 2), tokens 3-4 step 1.
    kl_rewards = torch.tensor([0.0, -0.1, 0.0, -0.2, 0.0])
    got = critic_free_advantages([1.0, -0.5], [2, 4], kl_rewards)
    # reward-to-go of the KL rewards: [-0.3, -0.3, -0.2, -0.2, 0.0]
    assert got.tolist() == pytest.approx([0.7, 0.7, 0.8, -0.7, -0.5])


def test_step_observations_are_the_user_turn_before_each_reply():
    assert step_observations(MESSAGES, 1) == ["Find the cup.", "On the table 1, you see a cup 1."]


def _data(path: Path, rewards: dict[str, list[float]]) -> Path:
    lines = []
    for task, rs in rewards.items():
        for k, r in enumerate(rs):
            rec = replace(ppo_record(MESSAGES, 1, [0.0, r]), task_id=task, rollout=k, reward=r, success=r > 0)
            lines.append(json.dumps(rec.__dict__))
    path.write_text("".join(ln + "\n" for ln in lines))
    return path


def test_offline_groups_are_the_rollouts_of_each_task_in_the_file(tmp_path, smol_tokenizer):
    data = _data(tmp_path / "d.jsonl", {"a": [1.0, 0.0, 0.0, 1.0], "b": [1.0, 1.0]})
    cfg = SourceConfig(model="", output_dir="", env="alfworld", variant=None, estimator="", num_tasks=None,
                       task_types=None, task_ids=None, exclude_task_ids=None, temperature=None, max_steps=None,
                       max_new_tokens=8, gen_batch_size=1, max_length=4096, alpha=1.0, beta=None, icl_examples=1,
                       seed=0, data=str(data), advantage="grpo")  # fmt: skip
    src = OfflineSource(cfg, smol_tokenizer)
    # task a: rewards [1, 0, 0, 1], mean 0.5, population std 0.5 -> +-1 on both steps; task b: equal -> 0
    got = [a for s in src.samples for a in s.step_advantages]  # (eps 1e-6 in the std: 0.999998)
    assert got == pytest.approx([1.0, 1.0, -1.0, -1.0, -1.0, -1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0], abs=1e-5)
    rloo = OfflineSource(replace(cfg, advantage="rloo"), smol_tokenizer)
    # rloo, task a: 1 - mean(0, 0, 1) = 2/3; 0 - mean(1, 0, 1) = -2/3
    assert [s.step_advantages[0] for s in rloo.samples[:4]] == pytest.approx([2 / 3, -2 / 3, -2 / 3, 2 / 3])
    assert all(
        s.step_advantages is None
        for s in OfflineSource(replace(cfg, advantage="gae"), smol_tokenizer).samples
    )

    # In the update they replace GAE, unwhitened, with no value target (returns = old values).
    s = src.samples[1]
    n = len(s.act_pos)
    zeros, values = torch.zeros(n), torch.linspace(0, 1, n)
    ucfg = UpdateConfig(variant="sparse", step_weighting="none", gae_level="token", gamma=0.99, lam=0.95,
                        whiten_advantages=True, ppo_epochs=1, minibatch_size=1, grad_accum=1, clip=0.2,
                        value_clip=0.2, vf_coef=0.1, max_grad_norm=1.0, seed=0)  # fmt: skip
    adv, ret, _, _ = rollout_advantages([s], [zeros], [values], [zeros], ucfg, kl_coef=0.3)
    assert adv[0].tolist() == pytest.approx([-1.0] * n, abs=1e-5) and torch.equal(ret[0], values)


def test_the_report_names_every_method():
    labels = method_labels()
    assert {"progress", "sparse", "grpo", "rloo", "gigpo"} <= set(labels) and "gae" not in labels


@pytest.mark.usefixtures("alfworld_ready")
def test_online_plays_group_size_rollouts_of_each_drawn_task(tmp_path, smol_tokenizer):
    from accelerate import Accelerator

    from spa_rl.rl.policy_value import PolicyWithValue
    from spa_rl.rl.sources import OnlineSource

    cfg = SourceConfig(model=str(TINY), output_dir=str(tmp_path), env="alfworld", variant="sparse", estimator="",
                       num_tasks=4, task_types="pick", task_ids=None, exclude_task_ids=None, temperature=1.0,
                       max_steps=2, max_new_tokens=8, gen_batch_size=4, max_length=4096, alpha=1.0, beta=None,
                       icl_examples=1, seed=0, advantage="gigpo", group_size=2)  # fmt: skip
    policy = PolicyWithValue.create(str(TINY))
    src = OnlineSource(cfg, smol_tokenizer, policy, Accelerator(cpu=True))
    samples, figures = src.next(4, 0)
    recs = [json.loads(ln) for ln in (tmp_path / "online_rollouts.jsonl").read_text().splitlines()]
    tasks = [r["task_id"] for r in recs]
    assert len(recs) == 4 and len(set(tasks)) == 2 and all(tasks.count(t) == 2 for t in tasks)
    assert len({r["rollout"] for r in recs}) == 4
    assert all(s.step_advantages is not None and len(s.step_advantages) == len(s.step_last) for s in samples)


@pytest.mark.slow
@pytest.mark.parametrize("estimator", ["grpo", "rloo", "gigpo"])
def test_offline_ppo_trains_with_each_critic_free_estimator(tmp_path, estimator):
    data = _data(tmp_path / "d.jsonl", {"a": [1.0, 0.0], "b": [0.0, 1.0]})
    out = tmp_path / "ppo"
    cmd = [sys.executable, "ppo/train.py", "--mode", "offline", "--model", str(TINY), "--data", str(data),
           "--output-dir", str(out), "--iterations", "2", "--rollouts-per-iteration", "2", "--minibatch-size", "1",
           "--lr", "1e-3", "--dtype", "fp32", "--advantage", estimator, "--report-to", "none"]  # fmt: skip
    res = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["config"]["advantage"] == estimator and summary["iterations"] == 2
    fp = json.loads((out / "fingerprint.json").read_text())["settings"]
    assert fp["advantage"] == estimator and fp["gigpo_gamma"] == 0.95
