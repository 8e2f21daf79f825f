"""The hf backend's cross-turn key/value cache gives the same greedy replies as re-encoding."""

import pytest

from envs import load_tasks
from envs.paths import models_dir
from eval_agent.backends import GenerationConfig
from eval_agent.backends.hf import HFPolicy
from eval_agent.backends.kv_cache import CachedTokens, KVStore, common_prefix
from eval_agent.runner import RolloutConfig, run_rollouts

pytestmark = pytest.mark.usefixtures("alfworld_ready")
SMOL = models_dir() / "smollm2-135m-instruct"
TINY = models_dir() / "tiny-llama"


def play(model_path, cache, tmp_path, n_tasks, steps, max_new_tokens):
    policy = HFPolicy(model_path, device="cpu", batch_size=n_tasks, kv_cache=cache)
    tasks = load_tasks("alfworld", "unseen", limit=n_tasks)
    cfg = RolloutConfig(
        batch_size=n_tasks, max_steps=steps, generation=GenerationConfig(max_new_tokens=max_new_tokens)
    )
    recs, stats = run_rollouts(tasks, policy, tmp_path / f"cache_{cache}.jsonl", cfg, progress=False)
    return recs, stats, policy


def assert_same_episodes(a, b):
    assert [r.task_id for r in a] == [r.task_id for r in b]
    for x, y in zip(a, b, strict=True):
        assert [s.reply for s in x.steps] == [s.reply for s in y.steps]
        assert x.meta["completion_tokens"] == y.meta["completion_tokens"]
        assert [s.observation for s in x.steps] == [s.observation for s in y.steps]


def test_tiny_model_same_replies_with_and_without_cache(tmp_path):
    plain, _, _ = play(TINY, False, tmp_path, 3, 4, 12)
    cached, _, policy = play(TINY, True, tmp_path, 3, 4, 12)
    assert_same_episodes(plain, cached)
    # Most prompt tokens came from caches; finished episodes were released.
    assert policy.kv.reused_tokens > 2 * policy.kv.encoded_tokens
    assert policy.kv.episodes == {}


@pytest.mark.slow
def test_smollm2_same_replies_with_and_without_cache(tmp_path):
    plain, _, _ = play(SMOL, False, tmp_path, 2, 3, 48)
    cached, _, policy = play(SMOL, True, tmp_path, 2, 3, 48)
    assert_same_episodes(plain, cached)
    assert any(s.action for r in cached for s in r.steps)  # a real model writes real actions


def test_shared_prefix_is_the_common_prompt(tmp_path, smol_tokenizer):
    _, _, policy = play(TINY, True, tmp_path, 2, 1, 4)
    from eval_agent.chat import render_prompt
    from eval_agent.prompts import get_prompt

    prompts = [
        smol_tokenizer(
            render_prompt(smol_tokenizer, get_prompt("alfworld").build(obs)), add_special_tokens=False
        )["input_ids"]
        for obs in ("You are in room A.", "You see a table.")
    ]
    shared = policy.kv.shared
    assert shared is not None and len(shared.ids) >= common_prefix(*prompts) - 2 > 500


def test_lookup_crops_at_the_first_difference():
    import torch

    kv = [(torch.arange(5.0).view(1, 5, 1), torch.arange(5.0).view(1, 5, 1))]
    store = KVStore()
    store.episodes["e"] = CachedTokens([1, 2, 3, 4, 5], kv)
    hit = store.lookup("e", [1, 2, 3, 9, 9, 9])
    assert hit.ids == [1, 2, 3] and hit.kv[0][0].shape[1] == 3
    # A prompt equal to the cache still leaves one token to encode.
    assert store.lookup("e", [1, 2, 3, 4, 5]).ids == [1, 2, 3, 4]
    assert store.lookup("other", [1, 2, 3]) is None


def test_preallocated_cache_matches_transformers_cache():
    """Greedy generation with the turn-sized buffers equals transformers' own cache, also when a turn
    outgrows the buffer (capacity deliberately too small, so it has to grow)."""
    import torch
    from transformers import AutoModelForCausalLM, DynamicCache

    from eval_agent.backends.kv_cache import preallocated_cache

    model = AutoModelForCausalLM.from_pretrained(TINY).eval()
    n_layers = model.config.num_hidden_layers
    ids = torch.tensor([[0, 0, 5, 6, 7, 8], [1, 2, 3, 4, 5, 6]])
    mask = torch.tensor([[0, 0, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1]])
    kw = dict(input_ids=ids, attention_mask=mask, max_new_tokens=12, do_sample=False, min_new_tokens=12)
    with torch.no_grad():
        want = model.generate(**kw, past_key_values=DynamicCache(), return_dict_in_generate=True)
        for capacity in (18, 7):
            cache = preallocated_cache(n_layers, capacity)
            got = model.generate(**kw, past_key_values=cache, return_dict_in_generate=True)
            assert torch.equal(got.sequences, want.sequences)
            for a, b in zip(got.past_key_values.layers, want.past_key_values.layers, strict=True):
                assert a.keys.shape == b.keys.shape and torch.allclose(a.keys, b.keys)
            assert cache.layers[0].length == 6 + 12 - 1


def test_batched_caches_are_adopted_without_a_copy():
    import torch

    from eval_agent.backends.kv_cache import preallocated_cache, stack_left_padded

    rows = [
        CachedTokens([1, 2, 3], [(torch.full((2, 3, 4), 1.0), torch.full((2, 3, 4), 2.0))]),
        CachedTokens([1], [(torch.full((2, 1, 4), 3.0), torch.full((2, 1, 4), 4.0))]),
    ]
    buffers, mask = stack_left_padded(rows, width=3, capacity=10)
    assert mask.tolist() == [[1, 1, 1], [0, 0, 1]]
    assert buffers[0][0].shape == (2, 2, 10, 4) and buffers[0][0][1, :, 2].eq(3.0).all()
    assert buffers[0][0][:, :, 3:].eq(0).all()
    cache = preallocated_cache(1, 10, buffers, filled=3)
    layer = cache.layers[0]
    assert layer._k.data_ptr() == buffers[0][0].data_ptr() and layer.length == 3  # the same memory
    assert torch.equal(layer.keys, buffers[0][0][:, :, :3])
    k, _ = layer.update(torch.full((2, 2, 1, 4), 9.0), torch.zeros((2, 2, 1, 4)))
    assert k.shape[2] == 4 and k[:, :, 3].eq(9.0).all() and k[0, :, :3].eq(1.0).all()
    # Without ``filled`` the past is copied instead (and stays correct).
    past = [(kb[:, :, :3], vb[:, :, :3]) for kb, vb in buffers]
    copied = preallocated_cache(1, 20, past)
    assert copied.layers[0]._k.data_ptr() != buffers[0][0].data_ptr()
    assert torch.equal(copied.layers[0].keys, past[0][0])
