"""The ``openai`` backend against real servers.

- Always: the project's small OpenAI-compatible server over the tiny model, on 127.0.0.1; greedy replies
  must equal the in-process ``hf`` backend's.
- Opt-in: a running server named by ``SPA_OPENAI_API_BASE`` (e.g. ``vllm serve``; model name in
  ``SPA_OPENAI_MODEL``) plays a real ALFWorld episode.
"""

import os
import threading

import pytest

from envs import load_tasks
from spa_rl.agent.backends import GenerationConfig
from spa_rl.agent.backends.openai_api import OpenAIPolicy
from spa_rl.agent.runner import RolloutConfig, run_rollouts
from spa_rl.agent.serve import make_server


@pytest.fixture()
def local_server(tiny_policy):
    server = make_server(tiny_policy, "tiny", port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()


def test_openai_backend_matches_hf(local_server, tiny_policy):
    convs = [
        [{"role": "user", "content": "Your task is to: look."}],
        [{"role": "user", "content": "Say hi."}],
    ]
    cfg = GenerationConfig(max_new_tokens=10, temperature=0.0)
    remote = OpenAIPolicy(local_server, "tiny", concurrency=2).generate(convs, cfg)
    local = tiny_policy.generate(convs, cfg)
    assert [g.text for g in remote] == [g.text for g in local]
    assert [g.completion_tokens for g in remote] == [g.completion_tokens for g in local]


def test_openai_backend_reports_http_errors(local_server):
    with pytest.raises(RuntimeError, match="answered 400"):
        OpenAIPolicy(local_server, "tiny").generate([[{"role": "robot"}]], GenerationConfig())


@pytest.mark.integration
@pytest.mark.skipif(
    not os.environ.get("SPA_OPENAI_API_BASE"), reason="set SPA_OPENAI_API_BASE to a running server"
)
def test_external_server_plays_an_episode(tmp_path, alfworld_ready):
    policy = OpenAIPolicy(os.environ["SPA_OPENAI_API_BASE"], os.environ.get("SPA_OPENAI_MODEL", "default"))
    tasks = load_tasks("alfworld", "unseen", limit=1)
    cfg = RolloutConfig(batch_size=1, max_steps=3, generation=GenerationConfig(max_new_tokens=64))
    recs, stats = run_rollouts(tasks, policy, tmp_path / "e.jsonl", cfg, progress=False)
    assert len(recs) == 1 and recs[0].n_steps >= 1 and stats.completion_tokens > 0
