"""Memory settings of the training recipes (issue 21): token-bounded PPO micro-batches that give the same
update as one pass, gradient checkpointing that reaches the model's layers (PPO and the estimator) and
gives the same gradients, bf16 frozen weights under fp32 adapters, and the CPU rule for checkpointing."""

from __future__ import annotations

import warnings
from types import SimpleNamespace

import pytest
import torch
from conftest import TINY

from spa_rl.models.precision import configure_training_precision, use_gradient_checkpointing
from spa_rl.rl.policy_value import PolicyWithValue
from spa_rl.rl.ppo import KLController, Sample, collate, token_micro_batches
from spa_rl.rl.update import UpdateConfig, ppo_iteration

CPU = SimpleNamespace(
    device="cpu", backward=lambda loss: loss.backward(), clip_grad_norm_=torch.nn.utils.clip_grad_norm_
)


def _sample(n: int, seed: int) -> Sample:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(10, 40000, (n,), generator=g).tolist()
    act = list(range(n // 2, n))  # the second half: two steps of actions
    return Sample(ids, act, [len(act) // 2 - 1, len(act) - 1], [0.3 * seed, 1.0], 1.0)


def test_micro_batches_keep_padded_tokens_under_the_bound():
    samples = [_sample(n, 1) for n in (100, 400, 300, 50, 250)]
    parts = token_micro_batches(samples, [0, 1, 2, 3, 4], 600)
    assert parts == [[1], [2, 4], [0, 3]]  # longest first; rows x longest <= 600
    assert token_micro_batches(samples, [3, 0], None) == [[3, 0]]  # no bound: one pass, order kept
    assert token_micro_batches(samples, [1, 3], 200) == [[1], [3]]  # longer than the bound: alone
    assert token_micro_batches(samples, [], 600) == []


def _policy(seed: int = 0) -> PolicyWithValue:
    torch.manual_seed(seed)
    policy = PolicyWithValue.create(str(TINY))
    with torch.no_grad():  # adapters away from zero, so every LoRA weight has a gradient
        for n, p in policy.lm.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.05)
    return policy


def _ucfg(**kw) -> UpdateConfig:
    base = dict(variant="progress", step_weighting="none", gae_level="token", gamma=0.99, lam=0.95,
                whiten_advantages=True, ppo_epochs=1, minibatch_size=4, grad_accum=1, clip=0.2, value_clip=0.2,
                vf_coef=0.1, max_grad_norm=1e9, seed=0)  # fmt: skip
    return UpdateConfig(**(base | kw))


def _update(max_tokens: int | None, checkpointing: bool = False):
    """One PPO iteration (SGD, lr 1: the weights move by exactly the gradient) of 4 rollouts; returns the
    trainable weights after it, the stats and the number of forward passes."""
    policy = _policy()
    if checkpointing:
        policy.enable_gradient_checkpointing()
    calls = []
    policy.register_forward_pre_hook(
        lambda m, a, kw: calls.append((a[0] if a else kw["input_ids"]).shape), with_kwargs=True
    )
    opt = torch.optim.SGD([p for p in policy.parameters() if p.requires_grad], lr=1.0)
    samples = [_sample(n, k) for k, n in enumerate((40, 90, 64, 30))]
    cfg = _ucfg(max_tokens_per_micro_batch=max_tokens)
    stats = ppo_iteration(policy, policy, opt, CPU, samples, cfg, KLController(0.1), 2, 0)
    weights = {n: p.detach().clone() for n, p in policy.named_parameters() if p.requires_grad}
    return weights, stats, calls


def test_token_bounded_micro_batches_give_the_one_pass_update():
    one, stats_one, calls_one = _update(None)
    split, stats_split, calls_split = _update(100)
    # Scoring (policy + reference) and the update: 3 passes of all 4 rollouts, or of at most 100 tokens.
    assert len(calls_one) == 3 and all(s[0] == 4 for s in calls_one)
    assert len(calls_split) > 3 and all(s[0] * s[1] <= 100 or s[0] == 1 for s in calls_split)
    for n in one:
        assert torch.allclose(one[n], split[n], atol=1e-6, rtol=1e-4), n
    for k in ("pg_loss", "vf_loss", "clipfrac", "approx_kl", "kl", "score"):
        assert stats_split[k] == pytest.approx(stats_one[k], rel=1e-4, abs=1e-6), k
    init = {n: p for n, p in _policy().named_parameters() if p.requires_grad}
    assert max((one[n] - init[n]).abs().max().item() for n in one) > 1e-4  # the update moved the weights


def test_gradient_checkpointing_reaches_every_layer_and_gives_the_same_update():
    from transformers.modeling_layers import GradientCheckpointingLayer

    policy = _policy()
    policy.enable_gradient_checkpointing()
    layers = [m for m in policy.lm.modules() if isinstance(m, GradientCheckpointingLayer)]
    assert layers and all(m.gradient_checkpointing for m in layers)
    used = []
    for m in layers:
        fn = m._gradient_checkpointing_func
        m._gradient_checkpointing_func = lambda *a, _fn=fn, **kw: (used.append(1), _fn(*a, **kw))[1]
    batch = collate([_sample(40, 1)], 2, "cpu")
    policy.eval()  # PPO's mode: no dropout
    with torch.no_grad():
        policy(**batch)  # scoring: no graph, no checkpoints
    assert not used
    lp, v = policy(**batch)
    (lp.sum() + v.sum()).backward()
    assert len(used) == len(layers)  # each layer checkpointed once in eval mode
    assert not any(m.training for m in layers)  # the training flag was only lent for the pass
    # The same update as without checkpointing.
    plain, _, _ = _update(None)
    ckpt, _, _ = _update(None, checkpointing=True)
    for n in plain:
        assert torch.allclose(plain[n], ckpt[n], atol=1e-6, rtol=1e-5), n


def test_estimator_gradient_checkpointing_reaches_the_backbone():
    from transformers.modeling_layers import GradientCheckpointingLayer

    from spa_rl.estimator.model import EstimatorConfig, ProgressEstimator

    est = ProgressEstimator.create(EstimatorConfig(str(TINY), head="mlp", backbone="lora", mlp_hidden=8))
    assert est.config is est.lm.config  # what the Trainer and DeepSpeed read (hidden size, use_cache)
    est.activation_checkpointing_enable()  # what the Trainer calls for --gradient-checkpointing
    layers = [m for m in est.lm.modules() if isinstance(m, GradientCheckpointingLayer)]
    assert layers and all(m.gradient_checkpointing for m in layers)
    est.train()
    ids = torch.tensor([_sample(30, 2).input_ids])
    out = est(ids, torch.ones_like(ids), torch.tensor([[0, 9], [0, 29]]), torch.tensor([0, 0]), torch.ones(1))
    out["loss"].backward()  # a frozen base under LoRA: non-reentrant checkpoints need no input gradients
    assert any(
        p.grad is not None and p.grad.abs().sum() > 0 for n, p in est.named_parameters() if "lora_B" in n
    )


def test_frozen_base_in_bf16_under_fp32_adapters():
    policy = PolicyWithValue.create(str(TINY), dtype=torch.bfloat16)
    policy.compute_dtype = torch.bfloat16
    frozen = {p.dtype for p in policy.parameters() if not p.requires_grad}
    trained = {p.dtype for p in policy.parameters() if p.requires_grad}
    assert frozen == {torch.bfloat16} and trained == {torch.float32}
    lp, v = policy.eval()(**collate([_sample(30, 1)], 2, "cpu"))
    assert lp.dtype == torch.float32 and v.dtype == torch.float32 and torch.isfinite(lp).all()


def test_gradient_checkpointing_is_for_gpus():
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        assert use_gradient_checkpointing(True, "cpu") is False
    assert any("gradient checkpointing" in str(x.message) for x in w)
    assert use_gradient_checkpointing(True, "cuda") is True
    assert use_gradient_checkpointing(False, "cuda") is False


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU rule")
def test_trainer_checkpointing_is_turned_off_under_its_new_name_too(tmp_path):
    """transformers 5 reads activation_checkpointing (gradient_checkpointing is its deprecated alias):
    turning off only the alias left checkpointing on."""
    from transformers import TrainingArguments

    for flag in ("gradient_checkpointing", "activation_checkpointing"):
        args = TrainingArguments(output_dir=str(tmp_path), report_to="none", **{flag: True})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            configure_training_precision(args, "fp32")
        assert not args.activation_checkpointing and not args.gradient_checkpointing, flag
