"""The hf backend's cross-turn key/value cache gives the same greedy replies as re-encoding."""

import pytest

from envs import load_tasks
from envs.paths import models_dir
from spa_rl.agent.backends import GenerationConfig
from spa_rl.agent.backends.hf import HFPolicy
from spa_rl.agent.backends.kv_cache import CachedTokens, KVStore, common_prefix
from spa_rl.agent.runner import RolloutConfig, run_rollouts

pytestmark = pytest.mark.usefixtures("alfworld_ready")
SMOL = models_dir() / "smollm2-135m-instruct"
TINY = models_dir() / "tiny-llama"


def play(model_path, cache, tmp_path, n_tasks, steps, max_new_tokens):
    policy = HFPolicy(model_path, device="cpu", dtype="fp32", batch_size=n_tasks, kv_cache=cache)
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
    from spa_rl.agent.chat import render_prompt
    from spa_rl.agent.prompts import get_prompt

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

    from spa_rl.agent.backends.kv_cache import preallocated_cache

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

    from spa_rl.agent.backends.kv_cache import preallocated_cache, stack_left_padded

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


# The fast decode path (cpu_decode.FastDecoder, the backend's default on CPU) against transformers' generate.


def play_paths(model_path, tmp_path, n_tasks, steps, max_new_tokens, temperature=0.0):
    """The same rollouts through the fast decoder and through ``generate`` (both with the cross-turn cache)."""
    tasks = load_tasks("alfworld", "unseen", limit=n_tasks)
    gen = GenerationConfig(max_new_tokens=max_new_tokens, temperature=temperature, seed=3)
    cfg = RolloutConfig(batch_size=n_tasks, max_steps=steps, generation=gen)
    out = {}
    for fast in (True, False):
        policy = HFPolicy(model_path, device="cpu", dtype="fp32", batch_size=n_tasks, fast_decode=fast)
        assert (policy._decoder is not None) == fast
        out[fast], _ = run_rollouts(tasks, policy, tmp_path / f"fast_{fast}.jsonl", cfg, progress=False)
    return out[True], out[False]


def test_tiny_model_fast_decode_same_replies_as_generate(tmp_path):
    fast, old = play_paths(TINY, tmp_path, 3, 4, 12)
    assert_same_episodes(fast, old)


def test_tiny_model_fast_decode_samples_like_generate(tmp_path):
    """Sampling goes through transformers' own temperature/top-p warpers and the same random draws."""
    fast, old = play_paths(TINY, tmp_path, 2, 2, 12, temperature=1.0)
    assert_same_episodes(fast, old)


@pytest.mark.slow
def test_smollm2_fast_decode_same_replies_as_generate(tmp_path):
    fast, old = play_paths(SMOL, tmp_path, 4, 3, 48)
    assert_same_episodes(fast, old)
    assert any(s.action for r in fast for s in r.steps)


def _expanded_reference(q, k, v, keep, scale):
    import torch

    B, H, R, D = q.shape
    kx, vx = (t.repeat_interleave(R, dim=1).float() for t in (k, v))
    return torch.nn.functional.scaled_dot_product_attention(
        q.reshape(B, H * R, 1, D).float(), kx, vx, attn_mask=keep[:, None, None, :], scale=scale
    ).view(B, H, R, D)


@pytest.mark.parametrize("use_kernel", [True, False])
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize(
    "shape", [(3, 3, 3, 64, 37), (2, 2, 2, 16, 64), (2, 1, 5, 32, 100), (2, 2, 3, 24, 9)]
)
def test_decode_attention_matches_sdpa(shape, dtype, use_kernel):
    """Attention on the key/value heads over views of longer buffers with padding holes equals sdpa over
    expanded heads (sequence lengths not a multiple of 16; head size 24: the torch fallback)."""
    import torch

    from spa_rl.agent.backends.cpu_decode import gqa_decode_attention

    B, H, R, D, L = shape
    dt = getattr(torch, dtype)
    gen = torch.Generator().manual_seed(0)
    k_buf, v_buf = (torch.randn(B, H, L + 7, D, generator=gen).to(dt) for _ in range(2))
    k, v = k_buf[:, :, :L], v_buf[:, :, :L]
    q = torch.randn(B, H, R, D, generator=gen).to(dt)
    keep = torch.ones(B, L, dtype=torch.bool)
    keep[0, : L // 3] = False
    bias = torch.zeros(B, L + 7).masked_fill(torch.nn.functional.pad(~keep, (0, 7)), float("-inf"))[:, :L]
    got = gqa_decode_attention(q, k, v, bias, D**-0.5, use_kernel=use_kernel)
    want = _expanded_reference(q, k, v, keep, D**-0.5)
    assert got.dtype == dt and got.shape == (B, H, R, D)
    tol = 2e-6 if dtype == "float32" else 2e-2
    assert torch.allclose(got.float(), want, atol=tol, rtol=tol)


@pytest.mark.parametrize("use_kernel", [True, False])
@pytest.mark.parametrize("capacity", [30, 9])
def test_fast_decoder_matches_generate(use_kernel, capacity):
    """Same tokens (rows stopping at different steps, then fed the pad token) and the same cache as
    generate, also when the turn outgrows the buffers (capacity 9)."""
    import torch
    from transformers import AutoModelForCausalLM

    from spa_rl.agent.backends.cpu_decode import FastDecoder
    from spa_rl.agent.backends.kv_cache import preallocated_cache

    model = AutoModelForCausalLM.from_pretrained(TINY).eval()
    n_layers = model.config.num_hidden_layers
    ids = torch.tensor([[0, 0, 5, 6, 7, 8], [1, 2, 3, 4, 5, 6], [0, 9, 8, 7, 6, 5]])
    mask = (ids != 0).long()
    stop = [7, 41411]  # tokens the tiny model writes early in some rows and late or never in others
    with torch.no_grad():
        want_cache = preallocated_cache(n_layers, 6 + 20)
        want = model.generate(input_ids=ids, attention_mask=mask, past_key_values=want_cache,
                              max_new_tokens=20, do_sample=False, eos_token_id=stop, pad_token_id=0)  # fmt: skip
        cache = preallocated_cache(n_layers, capacity)
        decoder = FastDecoder(model, use_kernel=use_kernel)
        got = decoder.decode(ids, mask, cache, 20, stop, 0)
    assert torch.equal(got, want[:, 6:])
    assert cache.layers[0].length == want_cache.layers[0].length == 6 + got.shape[1] - 1
    for a, b in zip(cache.layers, want_cache.layers, strict=True):
        assert torch.allclose(a.keys, b.keys, atol=1e-5) and torch.allclose(a.values, b.values, atol=1e-5)


def test_fast_decoder_follows_weight_updates():
    """The packed copy of the weights is rebuilt after an in-place update (an optimizer step)."""
    import torch
    from transformers import AutoModelForCausalLM

    from spa_rl.agent.backends.cpu_decode import FastDecoder
    from spa_rl.agent.backends.kv_cache import preallocated_cache

    model = AutoModelForCausalLM.from_pretrained(TINY).eval()
    n_layers = model.config.num_hidden_layers
    ids, mask = torch.tensor([[3, 4, 5, 6]]), torch.ones(1, 4, dtype=torch.long)
    decoder = FastDecoder(model)

    def both():
        with torch.no_grad():
            want = model.generate(input_ids=ids, attention_mask=mask, past_key_values=preallocated_cache(n_layers, 20),
                                  max_new_tokens=12, do_sample=False, eos_token_id=None, pad_token_id=0)  # fmt: skip
            return decoder.decode(ids, mask, preallocated_cache(n_layers, 20), 12, [], 0), want[:, 4:]

    before, want = both()
    assert torch.equal(before, want)
    with torch.no_grad():
        for p in model.model.layers[1].mlp.parameters():
            p.mul_(-3.0)
    after, want = both()
    assert torch.equal(after, want) and not torch.equal(after, before)


def test_fast_decode_only_for_models_it_supports():
    """A peft LoRA wrapper (online PPO's policy) falls back to generate."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from spa_rl.agent.backends.cpu_decode import FastDecoder

    model = AutoModelForCausalLM.from_pretrained(TINY)
    assert FastDecoder.unsupported(model) is None
    lora = get_peft_model(model, LoraConfig(r=2, target_modules=["q_proj", "v_proj"]))
    assert FastDecoder.unsupported(lora) is not None
    assert FastDecoder.unsupported(lora.get_base_model()) is not None  # its linear layers are wrapped
    policy = HFPolicy(TINY, device="cpu", model=lora)
    assert policy._decoder is None and not policy.fast_decode


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_fused_step_matches_the_torch_step(dtype):
    """The decode step with the norm / rotary / cache-write kernels (cpu_decode.cpp) computes what the step
    of torch operations computes: the same logits up to rounding, the same keys and values written to the
    cache slot, padding holes included."""
    import torch
    from transformers import AutoModelForCausalLM

    from spa_rl.agent.backends.cpu_decode import FastDecoder, decode_kernels

    lib = decode_kernels()
    if lib is None:
        pytest.skip("no C++ compiler: the decoder runs the torch step only")
    dt = getattr(torch, dtype)
    model = AutoModelForCausalLM.from_pretrained(TINY, dtype=dt).eval()
    cfg = model.config
    decoder = FastDecoder(model)
    decoder._weights()
    assert decoder._fused(dt) is lib
    B, n, cap = 3, 11, 16
    gen = torch.Generator().manual_seed(1)
    shape = (B, cfg.num_key_value_heads, cap, cfg.head_dim)
    caches = [
        [torch.randn(shape, generator=gen).to(dt) for _ in range(2)] for _ in range(cfg.num_hidden_layers)
    ]
    copies = [[t.clone() for t in kv] for kv in caches]
    bias = torch.zeros(B, cap)
    bias[0, :4] = float("-inf")  # a left-padded row
    tokens, positions = torch.tensor([5, 17, 300]), torch.tensor([7, 11, 11])
    work = torch.empty(2 * B * cfg.num_attention_heads * cap)
    with torch.no_grad():
        want = decoder._step(tokens, positions, n, bias, caches, work).float()
        got = decoder._step_fused(lib, tokens, positions, n, bias, copies, work).float()
    tol = 1e-4 if dtype == "float32" else 0.1
    assert torch.allclose(got, want, atol=tol, rtol=tol), (got - want).abs().max()
    assert torch.equal(got.argmax(-1), want.argmax(-1))
    for a, b in zip(caches, copies, strict=True):
        for x, y in zip(a, b, strict=True):
            assert torch.allclose(x.float(), y.float(), atol=tol, rtol=tol)  # slot n written alike
            assert torch.equal(x[:, :, :n], y[:, :, :n])  # and nothing else touched
