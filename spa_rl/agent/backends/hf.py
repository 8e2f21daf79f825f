"""In-process transformers backend: many conversations per ``generate`` call, left padding, stop at the
template's end-of-turn token. With ``kv_cache=True`` and episode keys, each episode's keys/values are
kept across turns (see ``kv_cache.py``)."""

from __future__ import annotations

from collections.abc import Hashable
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, DynamicCache

from spa_rl.agent.backends.base import Generation, GenerationConfig, Message
from spa_rl.agent.backends.cpu_decode import FastDecoder
from spa_rl.agent.backends.kv_cache import (
    MIN_SHARED_PREFIX,
    CachedTokens,
    KVStore,
    common_prefix,
    gather_row,
    preallocated_cache,
    stack_left_padded,
)
from spa_rl.agent.chat import end_of_turn_ids, render_prompt
from spa_rl.models.loading import load_tokenizer, pick_device  # noqa: F401  (re-exported)
from spa_rl.models.paths import resolve_model_path
from spa_rl.models.precision import resolve_dtype


def left_pad(seqs: list[list[int]], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids and attention mask of ``seqs``, right-aligned in a [batch, longest] tensor."""
    width = max(len(x) for x in seqs)
    ids = torch.full((len(seqs), width), pad, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for r, seq in enumerate(seqs):
        if seq:
            ids[r, width - len(seq) :] = torch.tensor(seq)
            mask[r, width - len(seq) :] = 1
    return ids, mask


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
        kv_cache: bool = True,
        prefill_shared: bool = True,
        preallocate: bool = True,
        fast_decode: bool = True,
    ):
        self.device = pick_device(device)
        if model is None or tokenizer is None:
            model_path = resolve_model_path(model_path)  # a typo'd folder is no Hub id
        self.tokenizer = tokenizer if tokenizer is not None else load_tokenizer(model_path)
        if model is None:
            torch_dtype = resolve_dtype(dtype, self.device)  # auto: bf16 where the hardware has it
            model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch_dtype).to(self.device)
        self.model = model.eval()
        self.batch_size = batch_size
        cfg_max = getattr(self.model.config, "max_position_embeddings", None) or 4096
        self.max_context = min(max_context or cfg_max, cfg_max)
        self.stop_ids = end_of_turn_ids(self.tokenizer)
        self.model_path = str(model_path)
        self.kv = KVStore() if kv_cache else None
        self.prefill_shared = prefill_shared
        self.preallocate = preallocate
        self._n_layers = self.model.config.get_text_config().num_hidden_layers
        # The decode loop of cpu_decode.FastDecoder (packed weights, C++ kernels for the attention and the rest)
        # where it supports the model (a plain Llama on CPU), else transformers' generate. It continues a
        # preallocated cache, so preallocate=False (the benchmarks' old path) keeps generate as well.
        self.fast_decode = fast_decode and preallocate and FastDecoder.unsupported(self.model) is None
        self._decoder = FastDecoder(self.model) if self.fast_decode else None

    def weights_changed(self) -> None:
        """Forget every cached key/value (the shared prompt prefix and the episodes' caches): they were
        computed with the old weights. Online PPO calls this after each update, so that its rollouts come
        from the current policy and not from a prefix encoded by the starting one."""
        if self.kv is not None:
            old = self.kv
            self.kv = KVStore()
            self.kv.reused_tokens, self.kv.encoded_tokens = old.reused_tokens, old.encoded_tokens
        if self._decoder is not None:
            self._decoder.invalidate()  # its packed copy of the weights

    def release(self, keys: list[Hashable]) -> None:
        """Forget the caches of finished episodes."""
        if self.kv is not None:
            for k in keys:
                self.kv.release(k)

    @torch.no_grad()
    def generate(
        self, conversations: list[list[Message]], cfg: GenerationConfig, keys: list[Hashable] | None = None
    ) -> list[Generation]:
        """One reply per conversation. ``keys`` name the episodes (needed for the cross-turn cache)."""
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
            ids = [encoded[i] for i in chunk]
            if self.kv is not None and keys is not None:
                gens = self._generate_cached(ids, [keys[i] for i in chunk], cfg)
            else:
                gens = self._generate_batch(ids, cfg)
            for i, gen in zip(chunk, gens, strict=True):
                out[i] = gen
        return out  # type: ignore[return-value]

    def _sampling_kwargs(self, cfg: GenerationConfig) -> dict:
        sampling = cfg.temperature > 0
        kw = dict(max_new_tokens=cfg.max_new_tokens, do_sample=sampling, top_k=None)
        kw.update(eos_token_id=self.stop_ids, pad_token_id=self.tokenizer.pad_token_id)
        if sampling:
            kw.update(temperature=cfg.temperature, top_p=cfg.top_p)
        return kw

    def _new_cache(self, capacity: int) -> DynamicCache:
        """An empty cache for a turn: buffers sized for the turn (default), or with ``preallocate=False``
        transformers' own growing-by-concatenation cache (kept to benchmark against)."""
        return preallocated_cache(self._n_layers, capacity) if self.preallocate else DynamicCache()

    def _finish(self, new: list[int], n_prompt: int) -> Generation:
        stop = next((k for k, t in enumerate(new) if t in self.stop_ids), None)
        kept = new[:stop] if stop is not None else new
        text = self.tokenizer.decode(kept, skip_special_tokens=True)
        return Generation(
            text, n_prompt, len(kept) + (stop is not None), "stop" if stop is not None else "length"
        )

    def _generate_cached(
        self, batch: list[list[int]], keys: list[Hashable], cfg: GenerationConfig
    ) -> list[Generation]:
        store = self.kv
        if self.prefill_shared and store.shared is None:
            self._encode_shared_prefix(batch, keys)
        cached = [store.lookup(k, ids) for k, ids in zip(keys, batch, strict=True)]
        past = [len(c.ids) if c else 0 for c in cached]
        new_parts = [ids[n:] for ids, n in zip(batch, past, strict=True)]
        width_p, width_n = max(past), max(len(x) for x in new_parts)
        new_ids, new_mask = left_pad(new_parts, self.tokenizer.pad_token_id)
        capacity = width_p + width_n + cfg.max_new_tokens
        if width_p > 0 and self.preallocate:
            buffers, past_mask = stack_left_padded(cached, width_p, capacity)
            cache = preallocated_cache(self._n_layers, capacity, buffers, filled=width_p)
        elif width_p > 0:
            past_kv, past_mask = stack_left_padded(cached, width_p)
            cache = DynamicCache(ddp_cache_data=past_kv)
        else:
            past_mask, cache = torch.zeros((len(batch), 0), dtype=torch.long), self._new_cache(capacity)
        # Only the new tokens go in; the mask covers cache + new, so positions stay true.
        generated = self._run(new_ids, torch.cat([past_mask, new_mask], dim=1), cache, cfg)
        kv_after = [(layer.keys, layer.values) for layer in cache.layers]
        # width_p + width_n + (generated - 1): the last generated token is never fed back.
        cache_len = kv_after[0][0].shape[2]
        results = []
        for r, ids in enumerate(batch):
            gen = self._finish(generated[r], len(ids))
            results.append(gen)
            real_gen = generated[r][: gen.completion_tokens]
            fed = min(len(real_gen), cache_len - width_p - width_n)
            positions = torch.cat(
                [
                    torch.arange(width_p - past[r], width_p),
                    torch.arange(width_p + width_n - len(new_parts[r]), width_p + width_n + fed),
                ]
            )
            entry = CachedTokens(ids + real_gen[:fed], gather_row(kv_after, r, positions.to(self.device)))
            if keys[r] not in store.episodes:  # a new episode
                store.remember_prompt(ids, entry.crop(len(ids)))
            store.episodes[keys[r]] = entry
            store.reused_tokens += past[r]
            store.encoded_tokens += len(new_parts[r])
        return results

    def _encode_shared_prefix(self, batch: list[list[int]], keys: list[Hashable]) -> None:
        """When episodes start together (the first turn of a run), encode the prompt prefix they share
        (instruction + in-context example, ~1k tokens) once, instead of once per row of the batch."""
        fresh = [ids for k, ids in zip(keys, batch, strict=True) if k not in self.kv.episodes]
        if len(fresh) < 2:
            return
        n = min(min(common_prefix(fresh[0], ids) for ids in fresh[1:]), min(map(len, fresh)) - 1)
        if n < MIN_SHARED_PREFIX:
            return
        ids = torch.tensor([fresh[0][:n]], device=self.device)
        out = self.model(input_ids=ids, use_cache=True, logits_to_keep=1)
        kv = [(layer.keys[0], layer.values[0]) for layer in out.past_key_values.layers]
        self.kv.shared = CachedTokens(fresh[0][:n], kv)
        self.kv.encoded_tokens += n

    def _generate_batch(self, batch: list[list[int]], cfg: GenerationConfig) -> list[Generation]:
        input_ids, attention = left_pad(batch, self.tokenizer.pad_token_id)
        width = input_ids.shape[1]
        generated = self._run(input_ids, attention, self._new_cache(width + cfg.max_new_tokens), cfg)
        return [self._finish(generated[r], len(ids)) for r, ids in enumerate(batch)]

    def _run(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        cache: DynamicCache,
        cfg: GenerationConfig,
    ) -> list[list[int]]:
        """The generated tokens of each row (after a stop token: pad tokens), continuing ``cache`` (left with
        every token but the last generated one), by the fast decoder or ``generate``."""
        input_ids, attention_mask = input_ids.to(self.device), attention_mask.to(self.device)
        if self._decoder is not None:
            sampling = cfg.temperature > 0
            tokens = self._decoder.decode(
                input_ids,
                attention_mask,
                cache,
                cfg.max_new_tokens,
                self.stop_ids,
                self.tokenizer.pad_token_id,
                temperature=cfg.temperature if sampling else 0.0,
                top_p=cfg.top_p if sampling else 1.0,
            )
            return tokens.tolist()
        seqs = self.model.generate(
            input_ids=input_ids,
            attention_mask=attention_mask,
            past_key_values=cache,
            **self._sampling_kwargs(cfg),
        )
        return seqs[:, input_ids.shape[1] :].tolist()
