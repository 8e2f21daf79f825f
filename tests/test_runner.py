"""The batched rollout runner on real ALFWorld games with the tiny random model."""

import json

import pytest
from conftest import replay_experts

from envs import load_tasks
from spa_rl.agent.backends import GenerationConfig
from spa_rl.agent.react import INVALID_FORMAT_OBSERVATION
from spa_rl.agent.runner import RolloutConfig, run_rollouts
from spa_rl.agent.schema import read_records

pytestmark = pytest.mark.usefixtures("alfworld_ready")
GEN = GenerationConfig(max_new_tokens=8, temperature=0.0)


def agent_turns(msgs):
    """(index of the real task's message, number of agent turns after it)."""
    task_msg = max(
        i for i, m in enumerate(msgs) if m["role"] == "user" and "Now it is your turn" in m["content"]
    )
    return task_msg, sum(m["role"] == "assistant" for m in msgs[task_msg:])


class Crash(RuntimeError):
    pass


class CrashingPolicy:
    """Wraps a policy and raises after ``n`` generate calls (a killed run)."""

    name = "crash"

    def __init__(self, inner, n):
        self.inner, self.n = inner, n

    def generate(self, conversations, cfg, keys=None):
        if self.n == 0:
            raise Crash()
        self.n -= 1
        return self.inner.generate(conversations, cfg, keys)

    def release(self, keys):
        self.inner.release(keys)


def test_tiny_model_two_games(tmp_path, tiny_policy):
    tasks = load_tasks("alfworld", "unseen", limit=2)
    out = tmp_path / "episodes.jsonl"
    recs, stats = run_rollouts(
        tasks, tiny_policy, out, RolloutConfig(batch_size=2, max_steps=3, generation=GEN), progress=False
    )
    assert [r.task_id for r in recs] == [t.task_id for t in tasks]
    assert stats.generate_calls == 3 and stats.episodes == 2
    on_disk = read_records(out)
    assert len(on_disk) == 2
    for r in on_disk:
        assert r.n_steps == 3 and r.finish_reason == "max_steps" and not r.success
        assert agent_turns(r.messages)[0] == r.prefix_len - 1
        for s in r.steps:
            # The random model never writes a valid action line: each step is a format error.
            if s.action is None:
                assert s.observation == INVALID_FORMAT_OBSERVATION and not s.grounded


def test_expert_policy_wins_through_the_runner(tmp_path):
    train = load_tasks("alfworld", "train")
    tasks = [train[0], train[1500]]

    actions = {t.task_id: list(t.expert_actions) for t in tasks}
    recs = replay_experts("alfworld", tasks, actions, tmp_path / "e.jsonl")
    assert all(s.grounded for r in recs for s in r.steps)


def test_resume_after_interruption(tmp_path, tiny_policy):
    tasks = load_tasks("alfworld", "unseen", limit=3)
    out = tmp_path / "episodes.jsonl"
    cfg = RolloutConfig(n_rollouts=2, batch_size=2, max_steps=2, generation=GEN)
    # Batches of 2 episodes, 2 steps each: after 5 generate calls two episode pairs are written.
    with pytest.raises(Crash):
        run_rollouts(tasks, CrashingPolicy(tiny_policy, 5), out, cfg, progress=False)
    first = read_records(out)
    assert len(first) == 4
    # A torn last line (killed mid-write) is repaired, not fatal.
    with open(out, "a") as f:
        f.write(json.dumps({"env": "alfworld"})[:10])
    recs, stats = run_rollouts(tasks, tiny_policy, out, cfg, progress=False)
    assert stats.episodes == 2
    keys = [r.key for r in read_records(out)]
    assert len(keys) == len(set(keys)) == 6
    assert sorted(keys) == sorted((t.task_id, k) for t in tasks for k in range(2))
    assert [r.to_json() for r in read_records(out)[:4]] == [r.to_json() for r in first]
