"""Generation from a LoRA policy through a merged plain copy of it.

PPO's probe and online rollouts play with the policy being trained. Generating through the peft model
itself runs transformers' ``generate`` with every LoRA matmul beside the base one, and on CPU it cannot use
the project's decode loop (``backends/cpu_decode.py``), which runs only a plain Llama: the probe of the CPU
study played its 32 games several times slower than the evaluation played 159. ``merged_generator`` keeps
a plain copy of the model and writes W + scale * B A into it whenever the weights changed (the callers say
so through ``weights_changed``), so generation runs the merged model that ``ppo/merge.py`` writes and the
evaluation plays. The copy costs one more model in memory, so it is used where the fast loop applies (CPU);
elsewhere the peft model generates as before."""

from __future__ import annotations

import torch
from torch import nn

from spa_rl.agent.backends.cpu_decode import FastDecoder
from spa_rl.agent.backends.hf import HFPolicy


@torch.no_grad()
def merged_weights(peft_lm: nn.Module) -> dict[str, torch.Tensor]:
    """The plain model's parameters (tied names included) with every active LoRA adapter merged in,
    computed in fp32 and stored in the base weight's dtype, as ``merge_and_unload`` would leave them."""
    from peft.tuners.lora import LoraLayer

    base = peft_lm.get_base_model()
    out: dict[str, torch.Tensor] = {}
    lora_prefixes = []
    for name, module in base.named_modules():
        if isinstance(module, LoraLayer):
            layer = module.get_base_layer()
            w = layer.weight.float()
            for adapter in module.active_adapters:
                if adapter in module.lora_A:
                    w = w + module.get_delta_weight(adapter).float()
            out[f"{name}.weight"] = w.to(layer.weight.dtype)
            if getattr(layer, "bias", None) is not None:
                out[f"{name}.bias"] = layer.bias
            lora_prefixes.append(f"{name}.")
    for name, p in base.named_parameters(remove_duplicate=False):
        if not any(name.startswith(prefix) for prefix in lora_prefixes):
            out[name] = p
    return out


class MergedLoRAPolicy(HFPolicy):
    """``HFPolicy`` over ``plain``, a plain model of ``peft_lm``'s architecture that holds the merged
    weights and is re-merged on every ``weights_changed``."""

    def __init__(self, peft_lm: nn.Module, plain: nn.Module, tokenizer, batch_size: int = 8):
        plain.eval().requires_grad_(False)
        self.peft_lm = peft_lm
        self._params = dict(plain.named_parameters(remove_duplicate=False))
        self._sync()
        base = peft_lm.get_base_model()
        super().__init__(
            getattr(base, "name_or_path", "merged"), str(plain.device), model=plain, tokenizer=tokenizer,
            batch_size=batch_size,
        )  # fmt: skip

    @torch.no_grad()
    def _sync(self) -> None:
        merged = merged_weights(self.peft_lm)
        if merged.keys() != self._params.keys():
            missing, extra = self._params.keys() - merged.keys(), merged.keys() - self._params.keys()
            raise RuntimeError(
                f"merging the LoRA policy: missing {sorted(missing)[:5]}, extra {sorted(extra)[:5]}"
            )
        for name, t in merged.items():
            self._params[name].copy_(t)

    def weights_changed(self) -> None:
        self._sync()
        super().weights_changed()


def lora_generator(peft_lm: nn.Module, tokenizer, model_path: str, device: str, batch_size: int) -> HFPolicy:
    """The generator PPO's probe and online rollouts use for the LoRA policy ``peft_lm``: a merged plain copy
    where the CPU decode loop can run it, else the peft model itself. Call ``weights_changed`` before each
    use after an update."""
    from transformers import AutoModelForCausalLM

    base = peft_lm.get_base_model()
    if base.device.type == "cpu":
        plain = AutoModelForCausalLM.from_config(base.config, dtype=next(base.parameters()).dtype)
        if FastDecoder.unsupported(plain) is None:
            return MergedLoRAPolicy(peft_lm, plain, tokenizer, batch_size=batch_size)
    return HFPolicy(model_path, device, batch_size=batch_size, model=peft_lm, tokenizer=tokenizer)
