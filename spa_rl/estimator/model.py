"""The progress estimator: a backbone LM and a head read at the last token of every assistant turn,
one value c_t per step; a trajectory's prediction is the sum of its steps' values.

Heads: ``mlp`` (the paper: a light MLP on the last hidden state) and ``vocab-linear`` (the public code:
Linear(vocab_size -> 1) on the output logits). Backbone: ``frozen``, ``lora`` (peft) or ``full``.
Saved as a folder: ``estimator_config.json``, ``head.safetensors``, plus ``adapter/`` (lora) or
``backbone/`` (full); a frozen backbone is re-read from ``base_model``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from spa_rl.models.paths import resolve_model_path
from spa_rl.models.precision import autocast, resolve_dtype

HEADS = ("mlp", "vocab-linear")
BACKBONES = ("frozen", "lora", "full")


@dataclass
class EstimatorConfig:
    base_model: str
    head: str = "mlp"
    backbone: str = "lora"
    mlp_hidden: int = 256
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    compute_dtype: str = "fp32"  # the backbone runs under autocast in it, in training and at inference

    def __post_init__(self) -> None:
        if self.head not in HEADS:
            raise ValueError(f"head must be one of {HEADS}, got {self.head!r}")
        if self.backbone not in BACKBONES:
            raise ValueError(f"backbone must be one of {BACKBONES}, got {self.backbone!r}")


class ProgressEstimator(nn.Module):
    def __init__(self, cfg: EstimatorConfig, lm: nn.Module):
        super().__init__()
        self.cfg = cfg
        self.lm = lm
        hidden = lm.config.hidden_size
        if cfg.head == "mlp":
            self.head = nn.Sequential(
                nn.Linear(hidden, cfg.mlp_hidden), nn.GELU(), nn.Linear(cfg.mlp_hidden, 1)
            )
        else:
            self.head = nn.Linear(lm.config.vocab_size, 1)
        # Start every step at ~0 so the first predictions do not swamp the rewards' scale.
        last = self.head[-1] if isinstance(self.head, nn.Sequential) else self.head
        nn.init.zeros_(last.bias)
        nn.init.normal_(last.weight, std=1e-3)

    @classmethod
    def create(cls, cfg: EstimatorConfig, dtype: torch.dtype = torch.float32) -> ProgressEstimator:
        from transformers import AutoModelForCausalLM

        lm = AutoModelForCausalLM.from_pretrained(cfg.base_model, dtype=dtype)
        if cfg.backbone == "frozen":
            lm.requires_grad_(False)
        elif cfg.backbone == "lora":
            from peft import LoraConfig, inject_adapter_in_model

            lm.requires_grad_(False)
            lora = LoraConfig(
                r=cfg.lora_r,
                lora_alpha=cfg.lora_alpha,
                lora_dropout=cfg.lora_dropout,
                target_modules="all-linear",
                exclude_modules=["lm_head"],
            )
            lm = inject_adapter_in_model(lora, lm)
        return cls(cfg, lm).to(dtype)

    def _trunk(self) -> nn.Module:
        return getattr(self.lm, self.lm.base_model_prefix)

    @property
    def config(self):
        """The backbone's config: the Trainer and its DeepSpeed integration read the model's ``config``
        (hidden size for ZeRO's bucket sizes, ``use_cache``)."""
        return self.lm.config

    def activation_checkpointing_enable(
        self, activation_checkpointing_kwargs=None, every_n_layers: int = 1, offload: bool = False
    ) -> None:
        """Gradient (activation) checkpointing of the backbone's decoder layers: what the Trainer calls
        for ``--gradient-checkpointing`` (non-reentrant, so a frozen or LoRA backbone needs no input
        gradients)."""
        self.lm.activation_checkpointing_enable(
            activation_checkpointing_kwargs or {"use_reentrant": False}, every_n_layers, offload
        )

    def step_values(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, step_index: torch.Tensor
    ) -> torch.Tensor:
        """Values at the positions ``step_index`` (n, 2): (row in batch, token position) per step."""
        hidden = self.backbone_hidden(input_ids, attention_mask)
        return self.head_values(hidden[step_index[:, 0], step_index[:, 1]])

    def head_values(self, hidden: torch.Tensor) -> torch.Tensor:
        """c_t from the backbone's last hidden state at the step positions (n, hidden size): what a frozen
        backbone's cached features are fed to."""
        if self.cfg.head == "vocab-linear":
            hidden = self.lm.get_output_embeddings()(hidden)
        return self.head(hidden.to(self.head_dtype)).squeeze(-1).float()

    def backbone_hidden(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """The backbone's last hidden state, computed in ``cfg.compute_dtype`` (autocast), returned fp32."""
        with autocast(input_ids.device, resolve_dtype(self.cfg.compute_dtype)):
            out = self._trunk()(input_ids=input_ids, attention_mask=attention_mask, use_cache=False)
            out = out.last_hidden_state
        return out.float()

    @property
    def head_dtype(self) -> torch.dtype:
        return next(self.head.parameters()).dtype

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        step_index: torch.Tensor,
        step_row: torch.Tensor,
        target: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        values = self.step_values(input_ids, attention_mask, step_index)
        pred = torch.zeros(input_ids.shape[0], dtype=values.dtype, device=values.device)
        pred = pred.index_add(0, step_row, values)
        out = {"values": values, "prediction": pred}
        if target is not None:
            out["loss"] = torch.mean((pred - target.to(pred.dtype)) ** 2)
        return out

    def save(self, directory: str | Path) -> None:
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        (d / "estimator_config.json").write_text(json.dumps(asdict(self.cfg), indent=2) + "\n")
        save_file(
            {k: v.detach().contiguous() for k, v in self.head.state_dict().items()}, d / "head.safetensors"
        )
        if self.cfg.backbone == "lora":
            from peft import get_peft_model_state_dict

            (d / "adapter").mkdir(exist_ok=True)
            state = {k: v.contiguous() for k, v in get_peft_model_state_dict(self.lm).items()}
            save_file(state, d / "adapter" / "adapter.safetensors")
        elif self.cfg.backbone == "full":
            self.lm.save_pretrained(d / "backbone", safe_serialization=True)

    @classmethod
    def load(cls, directory: str | Path, dtype: torch.dtype = torch.float32) -> ProgressEstimator:
        d = Path(directory)
        cfg_path = d / "estimator_config.json"
        if not cfg_path.exists():
            raise FileNotFoundError(f"{d} is not a progress-estimator folder (no estimator_config.json)")
        cfg = EstimatorConfig(**json.loads(cfg_path.read_text()))
        # A moved or renamed base model must fail here, not be looked up on the Hub.
        if cfg.backbone == "full":
            backbone = resolve_model_path(d / "backbone", f"{d}/backbone")
            cfg_full = EstimatorConfig(**{**asdict(cfg), "base_model": backbone, "backbone": "frozen"})
            model = cls.create(cfg_full, dtype)
            model.cfg = cfg
        else:
            cfg.base_model = resolve_model_path(cfg.base_model, f"{cfg_path} (base_model)")
            model = cls.create(cfg, dtype)
        if cfg.backbone == "lora":
            from peft import set_peft_model_state_dict

            state = load_file(d / "adapter" / "adapter.safetensors")
            res = set_peft_model_state_dict(model.lm, state)
            if getattr(res, "unexpected_keys", None):
                raise ValueError(f"{d}/adapter: unexpected keys {res.unexpected_keys[:3]}")
        model.head.load_state_dict(load_file(d / "head.safetensors"))
        return model.to(dtype).eval()


@torch.no_grad()
def estimate_step_values(
    model: ProgressEstimator,
    tokenizer,
    records: list,
    batch_size: int = 4,
    max_length: int | None = 4096,
    features: Mapping[str, torch.Tensor] | None = None,
    counts: dict[str, int] | None = None,
) -> list[tuple[list[float], int]]:
    """c_t for every step of every record (in input order), and how many trailing steps were past
    ``max_length`` (they get 0). ``features``: a frozen backbone's stored features
    (spa_rl/estimator/feature_store.py); a record whose exact tokens are there skips the backbone.
    ``counts`` gets how many records came from the store ("cached") and from the backbone ("computed")."""
    from spa_rl.estimator.data import StepCollator, encode_rollout
    from spa_rl.estimator.feature_store import feature_key

    model.eval()
    device = next(model.parameters()).device
    collate = StepCollator(tokenizer.pad_token_id)
    encoded = [encode_rollout(tokenizer, r, max_length) for r in records]
    out: dict[int, tuple[list[float], int]] = {}

    def keep(i: int, values: list[float]) -> None:
        n, T = len(encoded[i]["step_pos"]), records[i].n_steps
        out[i] = (values + [0.0] * (T - n), T - n)

    todo = []
    use_store = bool(features) and model.cfg.backbone == "frozen"
    for i, f in enumerate(encoded):
        hit = features.get(feature_key(f)) if use_store and f["step_pos"] else None
        if hit is None:
            todo.append(i)
        else:
            keep(i, model.head_values(hit.to(device)).tolist())
    if counts is not None:
        counts["cached"] = counts.get("cached", 0) + len(records) - len(todo)
        counts["computed"] = counts.get("computed", 0) + len(todo)
    order = sorted(todo, key=lambda i: len(encoded[i]["input_ids"]))  # less padding
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        batch = {k: v.to(device) for k, v in collate([encoded[i] for i in idx]).items() if k != "target"}
        values = model(**batch)["values"].tolist()
        k = 0
        for i in idx:
            n = len(encoded[i]["step_pos"])
            keep(i, values[k : k + n])
            k += n
    return [out[i] for i in range(len(records))]
