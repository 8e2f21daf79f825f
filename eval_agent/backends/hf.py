"""In-process transformers backend: many conversations per ``generate`` call, left padding, stop at the
template's end-of-turn token."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from eval_agent.backends.base import Generation, GenerationConfig, Message
from eval_agent.chat import end_of_turn_ids, render_prompt


def pick_device(device: str | None) -> torch.device:
    if device:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def load_tokenizer(model_path: str | Path):
    tok = AutoTokenizer.from_pretrained(model_path)
    tok.padding_side = "left"
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


class HFPolicy:
    name = "hf"

    def __init__(
        self,
        model_path: str | Path,
        device: str | None = None,
        dtype: str | None = None,
        batch_size: int = 8,
        max_context: int | None = None,
        model=None,
        tokenizer=None,
    ):
        self.device = pick_device(device)
        self.tokenizer = tokenizer if tokenizer is not None else load_tokenizer(model_path)
        if model is None:
            torch_dtype = (
                getattr(torch, dtype)
                if dtype
                else (torch.bfloat16 if self.device.type == "cuda" else torch.float32)
            )
            model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch_dtype).to(self.device)
        self.model = model.eval()
        self.batch_size = batch_size
        cfg_max = getattr(self.model.config, "max_position_embeddings", None) or 4096
        self.max_context = min(max_context or cfg_max, cfg_max)
        self.stop_ids = end_of_turn_ids(self.tokenizer)
        self.model_path = str(model_path)

    @torch.no_grad()
    def generate(self, conversations: list[list[Message]], cfg: GenerationConfig) -> list[Generation]:
        prompts = [render_prompt(self.tokenizer, m) for m in conversations]
        encoded = [self.tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
        out: list[Generation | None] = [None] * len(prompts)
        runnable = []
        for i, ids in enumerate(encoded):
            if len(ids) + cfg.max_new_tokens > self.max_context:
                out[i] = Generation("", len(ids), 0, "context_limit")
            else:
                runnable.append(i)
        # Similar lengths together: less padding per micro-batch.
        runnable.sort(key=lambda i: len(encoded[i]))
        if cfg.temperature > 0:
            torch.manual_seed(cfg.seed)
        for start in range(0, len(runnable), self.batch_size):
            chunk = runnable[start : start + self.batch_size]
            for i, gen in zip(chunk, self._generate_batch([encoded[i] for i in chunk], cfg), strict=True):
                out[i] = gen
        return out  # type: ignore[return-value]

    def _generate_batch(self, batch: list[list[int]], cfg: GenerationConfig) -> list[Generation]:
        pad = self.tokenizer.pad_token_id
        width = max(len(x) for x in batch)
        input_ids = torch.full((len(batch), width), pad, dtype=torch.long)
        attention = torch.zeros((len(batch), width), dtype=torch.long)
        for r, ids in enumerate(batch):
            input_ids[r, width - len(ids) :] = torch.tensor(ids)
            attention[r, width - len(ids) :] = 1
        sampling = cfg.temperature > 0
        kwargs = dict(temperature=cfg.temperature, top_p=cfg.top_p) if sampling else {}
        seqs = self.model.generate(
            input_ids=input_ids.to(self.device),
            attention_mask=attention.to(self.device),
            max_new_tokens=cfg.max_new_tokens,
            do_sample=sampling,
            eos_token_id=self.stop_ids,
            pad_token_id=pad,
            top_k=None,
            **kwargs,
        )
        results = []
        for r, ids in enumerate(batch):
            new = seqs[r, width:].tolist()
            stop = next((k for k, t in enumerate(new) if t in self.stop_ids), None)
            reason = "stop" if stop is not None else "length"
            new = new[:stop] if stop is not None else new
            text = self.tokenizer.decode(new, skip_special_tokens=True)
            results.append(Generation(text, len(ids), len(new) + (stop is not None), reason))
        return results
