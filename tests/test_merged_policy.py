"""PPO's probe and online rollouts generate on CPU through a merged plain copy of the LoRA policy
(spa_rl/rl/merged_policy.py): it must hold exactly the weights merge_and_unload writes, follow every update,
and run the fast decode loop."""

from __future__ import annotations

import copy

import torch
from conftest import TINY

from spa_rl.agent.backends import GenerationConfig
from spa_rl.agent.backends.hf import HFPolicy
from spa_rl.rl.merged_policy import MergedLoRAPolicy, lora_generator, merged_weights
from spa_rl.rl.policy_value import PolicyWithValue


def _perturb_adapters(policy: PolicyWithValue, seed: int) -> None:
    """LoRA B starts at zero (merged == base): give every adapter weight a nonzero value."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in policy.lm.named_parameters():
            if "lora_" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.05)


def _merged_reference(policy: PolicyWithValue):
    return copy.deepcopy(policy.lm).merge_and_unload().eval()


def test_merged_weights_equal_merge_and_unload():
    policy = PolicyWithValue.create(str(TINY))
    _perturb_adapters(policy, 0)
    ref = dict(_merged_reference(policy).named_parameters(remove_duplicate=False))
    merged = merged_weights(policy.lm)
    assert merged.keys() == ref.keys()
    changed = 0
    for name, t in merged.items():
        torch.testing.assert_close(t, ref[name], rtol=0, atol=1e-6, msg=name)
        if name.endswith("proj.weight"):  # a LoRA-wrapped projection: merged != its base weight
            base = policy.lm.get_base_model().get_parameter(name.replace(".weight", ".base_layer.weight"))
            changed += not torch.equal(t, base)
    assert changed > 0  # the adapters did change the projections


def test_generator_follows_updates_and_matches_the_merged_model(smol_tokenizer):
    tok = smol_tokenizer
    policy = PolicyWithValue.create(str(TINY))
    gen = lora_generator(policy.lm, tok, str(TINY), "cpu", batch_size=2)
    assert isinstance(gen, MergedLoRAPolicy) and gen.fast_decode  # the plain-Llama decode loop on CPU
    convs = [
        [{"role": "user", "content": "Go to the shelf."}],
        [{"role": "user", "content": "Take the apple."}],
    ]
    cfg = GenerationConfig(12, 0.0, 1.0, 0)
    for seed in (1, 2):  # two "updates": the generator must play the weights after each one
        _perturb_adapters(policy, seed)
        gen.weights_changed()
        ref = HFPolicy(TINY, "cpu", batch_size=2, model=_merged_reference(policy), tokenizer=tok)
        got = [g.text for g in gen.generate(convs, cfg, keys=[(seed, 0), (seed, 1)])]
        want = [g.text for g in ref.generate(convs, cfg, keys=[(seed, 0), (seed, 1)])]
        assert got == want
        for name, t in merged_weights(policy.lm).items():
            assert torch.equal(gen.model.get_parameter(name), t), name
