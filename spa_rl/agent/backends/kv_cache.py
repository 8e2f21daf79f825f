"""Key/value caches kept across an episode's turns, for the ``hf`` backend.

Without them every turn re-encodes the whole conversation (instruction, in-context example, all earlier
turns) to write a ~40-token reply. Here each episode keeps the keys/values of the tokens it has already
run through the model; a turn then only encodes the tokens that are new (the end of the last reply, the
observation, the next turn's header) before generating.

- Caches are stored per episode and compact (no padding). For a batched turn they are left-padded to a
  common length and the new tokens are left-padded after them, so a row may hold masked "holes";
  position ids come from the attention mask, so every real token keeps its true position.
- The cached tokens must be a prefix of the new prompt's tokens; where they are not (the reply was cut
  or retokenises differently), the cache is cropped at the longest common prefix.
- The common prefix of all episodes' prompts (instruction + in-context example) is encoded once and
  copied into each new episode.
- Within a turn, ``preallocated_cache`` holds the batch's keys/values in buffers sized for the whole
  turn. transformers' default ``DynamicLayer`` appends each decoded token with ``torch.cat``, copying the
  whole cache every step: decoding at 30 episodes x 3,000 cached tokens was 3.8x slower on 2 CPU cores
  (``bench/bench_kv_cache.py``, results/README.md).
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass

import torch
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer

KV = list[tuple[torch.Tensor, torch.Tensor]]  # per layer: keys, values of shape [heads, tokens, dim]

MIN_SHARED_PREFIX = 16  # tokens; shorter common prefixes are not worth a copy


@dataclass
class CachedTokens:
    ids: list[int]
    kv: KV  # per layer, [heads, len(ids), dim]

    def crop(self, n: int) -> CachedTokens:
        return CachedTokens(self.ids[:n], [(k[:, :n], v[:, :n]) for k, v in self.kv])


def common_prefix(a: list[int], b: list[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


class KVStore:
    """Per-episode caches plus the shared prompt prefix."""

    def __init__(self) -> None:
        self.episodes: dict[Hashable, CachedTokens] = {}
        self.shared: CachedTokens | None = None
        self.reused_tokens = 0  # prompt tokens served from a cache (for benchmarks)
        self.encoded_tokens = 0  # prompt tokens run through the model

    def lookup(self, key: Hashable, ids: list[int]) -> CachedTokens | None:
        """The longest cached prefix of ``ids`` (always leaving at least one token to encode)."""
        limit = len(ids) - 1
        cached = self.episodes.get(key)
        if cached is not None:
            n = min(common_prefix(cached.ids, ids), limit)
            return cached.crop(n) if n > 0 else None
        if self.shared is not None:
            n = min(common_prefix(self.shared.ids, ids), limit)
            if n >= MIN_SHARED_PREFIX:
                return self.shared.crop(n)
        return None

    def remember_prompt(self, ids: list[int], cached: CachedTokens) -> None:
        """Narrow the shared prefix to what this new episode's prompt has in common with it."""
        if self.shared is None:
            self.shared = cached
            return
        n = common_prefix(self.shared.ids, ids)
        if n < len(self.shared.ids):
            self.shared = self.shared.crop(n)

    def release(self, key: Hashable) -> None:
        self.episodes.pop(key, None)


def stack_left_padded(
    caches: list[CachedTokens | None], width: int, capacity: int | None = None
) -> tuple[KV, torch.Tensor]:
    """Batch per-episode caches: [batch, heads, width, dim] per layer, real tokens right-aligned,
    plus the [batch, width] attention mask of the cached part. With ``capacity`` (>= width) the
    tensors have ``capacity`` positions, the first ``width`` filled: buffers for
    ``preallocated_cache(..., filled=width)`` to take over without a copy (a copy of a long batch's
    cache is gigabytes)."""
    lengths = [len(c.ids) if c is not None else 0 for c in caches]
    mask = torch.zeros((len(caches), width), dtype=torch.long)
    for row, n in enumerate(lengths):
        if n:
            mask[row, width - n :] = 1
    ref = next(c for c in caches if c is not None).kv
    out: KV = []
    for layer, (k_ref, v_ref) in enumerate(ref):
        k = k_ref.new_zeros((len(caches), k_ref.shape[0], capacity or width, k_ref.shape[-1]))
        v = v_ref.new_zeros((len(caches), v_ref.shape[0], capacity or width, v_ref.shape[-1]))
        for row, (c, n) in enumerate(zip(caches, lengths, strict=True)):
            if n:
                k[row, :, width - n : width] = c.kv[layer][0]
                v[row, :, width - n : width] = c.kv[layer][1]
        out.append((k, v))
    return out, mask


def gather_row(kv: KV, row: int, positions: torch.Tensor) -> KV:
    """One row's keys/values at the given sequence positions (compacted, cloned)."""
    return [(k[row][:, positions].clone(), v[row][:, positions].clone()) for k, v in kv]


class PreallocatedLayer(DynamicLayer):
    """A ``DynamicLayer`` that writes new keys/values into a buffer allocated once (grown by doubling if
    a turn outruns it) and returns views of its filled part, instead of re-concatenating every step."""

    def __init__(self, capacity: int) -> None:
        super().__init__()
        self.capacity = capacity
        self.length = 0

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.is_initialized:
            self.dtype, self.device = key_states.dtype, key_states.device
            self._k = key_states.new_empty((*key_states.shape[:2], self.capacity, key_states.shape[3]))
            self._v = value_states.new_empty((*value_states.shape[:2], self.capacity, value_states.shape[3]))
            self.is_initialized = True
        end = self.length + key_states.shape[-2]
        if end > self._k.shape[2]:
            self._k, self._v = (self._grown(buf, max(end, 2 * buf.shape[2])) for buf in (self._k, self._v))
        self._k[:, :, self.length : end] = key_states
        self._v[:, :, self.length : end] = value_states
        self.length = end
        self.keys, self.values = self._k[:, :, :end], self._v[:, :, :end]
        return self.keys, self.values

    def adopt(self, keys: torch.Tensor, values: torch.Tensor, filled: int) -> None:
        """Use ``keys``/``values`` ([batch, heads, positions, dim], the first ``filled`` positions
        holding the past) as the buffers themselves."""
        self._k, self._v, self.length = keys, values, filled
        self.dtype, self.device = keys.dtype, keys.device
        self.keys, self.values = keys[:, :, :filled], values[:, :, :filled]
        self.is_initialized = True

    def _grown(self, buf: torch.Tensor, capacity: int) -> torch.Tensor:
        new = buf.new_empty((*buf.shape[:2], capacity, buf.shape[3]))
        new[:, :, : self.length] = buf[:, :, : self.length]
        return new


def preallocated_cache(
    n_layers: int, capacity: int, past: KV | None = None, filled: int | None = None
) -> DynamicCache:
    """A cache of ``n_layers`` ``PreallocatedLayer``s of ``capacity`` tokens. ``past`` ([batch, heads,
    tokens, dim] per layer) is copied in; with ``filled``, ``past`` are buffers whose first ``filled``
    positions hold the past (``stack_left_padded(..., capacity)``), taken over without a copy."""
    cache = DynamicCache()
    cache.layer_class_to_replicate = None
    cache.layers = [PreallocatedLayer(capacity) for _ in range(n_layers)]
    for layer, (k, v) in zip(cache.layers, past or [], strict=False):
        if filled is None:
            layer.update(k, v)
        else:
            layer.adopt(k, v, filled)
    return cache
