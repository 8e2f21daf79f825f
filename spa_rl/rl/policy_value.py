"""The PPO policy: the SFT model with LoRA adapters (peft) and a value head on the last hidden state.
The reference policy is the same model with its adapters disabled, so no second copy is kept.

Memory: the frozen base weights may be held in bf16 (``create(dtype=torch.bfloat16)``: half the bytes; the
LoRA adapters and the value head stay fp32), and gradient checkpointing (``enable_gradient_checkpointing``)
keeps one hidden state per decoder layer for the backward pass instead of every activation."""

from __future__ import annotations

import contextlib
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from spa_rl.models.precision import autocast


class PolicyWithValue(nn.Module):
    def __init__(self, lm: nn.Module):
        super().__init__()
        self.lm = lm  # a peft PeftModel
        self.v_head = nn.Linear(lm.config.hidden_size, 1)
        # Forward passes run under autocast in this dtype (bf16: spa_rl/models/precision.py); the weights,
        # the log-softmax and the value head stay fp32.
        self.compute_dtype = torch.float32
        self.gradient_checkpointing = False
        nn.init.normal_(self.v_head.weight, std=1e-3)
        nn.init.zeros_(self.v_head.bias)

    @classmethod
    def create(
        cls,
        model_path: str,
        lora_r: int = 8,
        lora_alpha: int = 16,
        lora_dropout: float = 0.0,  # PPO trains without dropout (the ratio must start at 1)
        adapter: str | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> PolicyWithValue:
        """``dtype``: the frozen base weights' dtype (ppo/train.py passes its compute dtype: bf16 where the
        hardware has it). peft keeps the adapters in fp32 either way, and the value head is fp32."""
        from transformers import AutoModelForCausalLM

        base = AutoModelForCausalLM.from_pretrained(model_path, dtype=dtype)
        return cls.from_base(base, lora_r, lora_alpha, lora_dropout, adapter)

    @classmethod
    def from_base(
        cls,
        base: nn.Module,
        lora_r: int = 8,
        lora_alpha: int = 16,
        lora_dropout: float = 0.0,
        adapter: str | None = None,
    ) -> PolicyWithValue:
        """The policy on a loaded causal LM ``base`` (``create`` loads it from a folder; the memory benchmark
        builds one from a config)."""
        from peft import LoraConfig, PeftModel, get_peft_model

        if adapter:
            lm = PeftModel.from_pretrained(base, adapter, is_trainable=True)
        else:
            cfg = LoraConfig(
                r=lora_r,
                lora_alpha=lora_alpha,
                lora_dropout=lora_dropout,
                target_modules="all-linear",
                task_type="CAUSAL_LM",
            )
            lm = get_peft_model(base, cfg)
        model = cls(lm)
        if adapter and (Path(adapter) / "value_head.safetensors").exists():
            model.v_head.load_state_dict(load_file(Path(adapter) / "value_head.safetensors"))
        return model

    def _base(self) -> nn.Module:
        return self.lm.get_base_model()

    def enable_gradient_checkpointing(self) -> None:
        """Recompute each decoder layer's activations in the backward pass (non-reentrant checkpoints)."""
        self._base().activation_checkpointing_enable({"use_reentrant": False})
        self.gradient_checkpointing = True

    @contextlib.contextmanager
    def _checkpointing(self, active: bool):
        """Transformers' layers checkpoint only in training mode, and PPO runs in eval mode (no dropout, so
        the ratio starts at 1): for a forward pass that builds a graph, switch on the training flag of the
        checkpointed layers themselves, not of their submodules (dropout stays off), and restore it after.
        Generation, scoring and the reference (no graph) keep the usual eval-mode path and its cache."""
        from transformers.modeling_layers import GradientCheckpointingLayer

        layers = []
        if active:
            layers = [
                m
                for m in self.lm.modules()
                if isinstance(m, GradientCheckpointingLayer) and m.gradient_checkpointing and not m.training
            ]
        for m in layers:
            m.training = True
        try:
            yield
        finally:
            for m in layers:
                m.training = False

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        act_index: torch.Tensor,
        temperature: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Log-probabilities and values of the action tokens at ``act_index`` (n, 2): (row, position).
        Both are read from the hidden state one position earlier, the state that emits the token.
        ``temperature`` (n,): the log-probabilities are those of softmax(logits / temperature), the
        distribution the rollouts were sampled from (None: 1)."""
        base = self._base()
        trunk = getattr(base, base.base_model_prefix)
        rows, pos = act_index[:, 0], act_index[:, 1]
        checkpointing = self._checkpointing(self.gradient_checkpointing and torch.is_grad_enabled())
        with autocast(input_ids.device, self.compute_dtype), checkpointing:
            # use_cache=False: no key/value cache is built for a scoring or training pass (it would hold
            # every layer's keys and values to the end of the pass).
            out = trunk(input_ids=input_ids, attention_mask=attention_mask, use_cache=False)
            hidden = out.last_hidden_state
            h = hidden[rows, pos - 1]
            logits = base.get_output_embeddings()(h)
        logits, h = logits.float(), h.float()
        if temperature is not None:
            logits = logits / temperature.to(logits.dtype).unsqueeze(-1)
        logprobs = (
            torch.log_softmax(logits, dim=-1).gather(-1, input_ids[rows, pos].unsqueeze(-1)).squeeze(-1)
        )
        values = self.v_head(h).squeeze(-1).float()
        return logprobs, values

    @torch.no_grad()
    def reference_logprobs(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        act_index: torch.Tensor,
        temperature: torch.Tensor | None = None,
    ) -> torch.Tensor:
        with self.lm.disable_adapter():
            return self(input_ids, attention_mask, act_index, temperature)[0]

    def save(self, directory: str | Path) -> None:
        """The adapter (peft's safetensors format) and the value head beside it."""
        d = Path(directory)
        self.lm.save_pretrained(d, safe_serialization=True)
        save_file(
            {k: v.contiguous() for k, v in self.v_head.state_dict().items()}, d / "value_head.safetensors"
        )
