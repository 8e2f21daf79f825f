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

import ctypes
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Hashable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
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


# ---------------------------------------------------------------------------------------------------------------
# Decoding near the memory bound on CPU
#
# A decode step reads every weight and every cached key/value once; at batch 8-32 x 1-3k cached tokens that is
# 1-3 GB, so on a CPU the step is bounded by memory bandwidth. transformers' ``generate`` took 5-10x that bound
# here (profile in results/README.md, "Decoding near the memory bound"): its matrix products go through MKL's
# sgemm, which re-packs each weight for every call (~2x a plain read at batch 8), and the attention over the
# cache (sdpa's CPU flash kernel, or matmul) streams the keys/values at a third of the bandwidth. The decoder
# below runs the same computation with: weights packed once for oneDNN (q/k/v and gate/up fused into one
# product each), attention computed on the key/value heads by a small C++ kernel that reads each cached
# key/value once (the query heads that share a key/value head are handled together), an additive mask
# written once per turn, and a plain loop instead of ``generate``. The prompt of a turn (the prefill) still
# goes through the transformers model.
# ---------------------------------------------------------------------------------------------------------------

_ATTENTION_SRC = r"""
#include <cstdint>
#include <cstring>

template <typename T> static inline float ld(const T* p, long j);
template <> inline float ld<float>(const float* p, long j) { return p[j]; }
template <> inline float ld<uint16_t>(const uint16_t* p, long j) {  // bfloat16 -> float
  uint32_t u = uint32_t(p[j]) << 16; float f; std::memcpy(&f, &u, 4); return f;
}

#if defined(__AVX512F__)
#include <immintrin.h>
static inline __m512 ld16(const float* p) { return _mm512_loadu_ps(p); }
static inline __m512 ld16(const uint16_t* p) {
  __m512i u = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i*)p));
  return _mm512_castsi512_ps(_mm512_slli_epi32(u, 16));
}
// Lane i of the result: the sum of the 16 lanes of a[i] (a fixed tree, 45 instructions for 16 sums).
static inline __m512 sum16x16(__m512* a) {
  __m512 b[8], c[4], d[2];
  for (int i = 0; i < 8; ++i)
    b[i] = _mm512_add_ps(_mm512_unpacklo_ps(a[2 * i], a[2 * i + 1]), _mm512_unpackhi_ps(a[2 * i], a[2 * i + 1]));
  for (int i = 0; i < 4; ++i)
    c[i] = _mm512_add_ps(_mm512_shuffle_ps(b[2 * i], b[2 * i + 1], 0x44), _mm512_shuffle_ps(b[2 * i], b[2 * i + 1], 0xEE));
  for (int i = 0; i < 2; ++i)
    d[i] = _mm512_add_ps(_mm512_shuffle_f32x4(c[2 * i], c[2 * i + 1], 0x88),
                         _mm512_shuffle_f32x4(c[2 * i], c[2 * i + 1], 0xDD));
  return _mm512_add_ps(_mm512_shuffle_f32x4(d[0], d[1], 0x88), _mm512_shuffle_f32x4(d[0], d[1], 0xDD));
}
// 16 keys at a time: their dot products with each query head of the group, reduced together.
template <typename T, int R, int D>
static long scores16(const float* qf, const T* kp, long kl, const float* bp, float* sp, long L, float scale) {
  const __m512 sc = _mm512_set1_ps(scale);
  long l0 = 0;
  for (; l0 + 16 <= L; l0 += 16) {
    const T* kr = kp + l0 * kl;
    for (int r = 0; r < R; ++r) {
      __m512 qv[D / 16], acc[16];
      for (int c = 0; c < D / 16; ++c) qv[c] = _mm512_loadu_ps(qf + r * D + 16 * c);
      for (int i = 0; i < 16; ++i) {
        acc[i] = _mm512_mul_ps(qv[0], ld16(kr + i * kl));
        for (int c = 1; c < D / 16; ++c) acc[i] = _mm512_fmadd_ps(qv[c], ld16(kr + i * kl + 16 * c), acc[i]);
      }
      _mm512_storeu_ps(sp + r * L + l0, _mm512_fmadd_ps(sum16x16(acc), sc, _mm512_loadu_ps(bp + l0)));
    }
  }
  return l0;
}
#endif

// s[t, r, l] = scale * <q[t, r, :], k[b, h, l, :]> + bias[b, l], t = b * H + h: each key read once for the R
// query heads that share it.
template <typename T, int R, int D>
static void scores(const float* q, const T* k, const float* bias, float* s, long B, long H, long L, long kb,
                   long kh, long kl, long bb, float scale) {
#pragma omp parallel for schedule(static)
  for (long t = 0; t < B * H; ++t) {
    const long b = t / H, h = t % H;
    const float* qf = q + t * R * D;
    const T* kp = k + b * kb + h * kh;
    const float* bp = bias + b * bb;
    float* sp = s + t * R * L;
    long start = 0;
#if defined(__AVX512F__)
    start = scores16<T, R, D>(qf, kp, kl, bp, sp, L, scale);
#endif
    for (long l = start; l < L; ++l) {
      const T* kr = kp + l * kl;
      float acc[R][16];
      for (int r = 0; r < R; ++r)
        for (int j = 0; j < 16; ++j) acc[r][j] = 0.f;
      for (int d0 = 0; d0 < D; d0 += 16)
        for (int j = 0; j < 16; ++j) {
          const float x = ld(kr + d0, j);
          for (int r = 0; r < R; ++r) acc[r][j] += qf[r * D + d0 + j] * x;
        }
      for (int r = 0; r < R; ++r) {  // a fixed tree, which the compiler vectorizes (a chain it can't)
        float a8[8], a4[4];
        for (int j = 0; j < 8; ++j) a8[j] = acc[r][j] + acc[r][j + 8];
        for (int j = 0; j < 4; ++j) a4[j] = a8[j] + a8[j + 4];
        sp[r * L + l] = ((a4[0] + a4[2]) + (a4[1] + a4[3])) * scale + bp[l];
      }
    }
  }
}

// out[t, r, :] = sum_l p[t, r, l] * v[b, h, l, :]: each value read once.
template <typename T, int R, int D>
static void weighted(const float* p, const T* v, float* out, long B, long H, long L, long vb, long vh, long vl) {
#pragma omp parallel for schedule(static)
  for (long t = 0; t < B * H; ++t) {
    const long b = t / H, h = t % H;
    const T* vp = v + b * vb + h * vh;
    const float* pp = p + t * R * L;
    float acc[R][D];
    for (int r = 0; r < R; ++r)
      for (int d = 0; d < D; ++d) acc[r][d] = 0.f;
    for (long l = 0; l < L; ++l) {
      const T* vr = vp + l * vl;
      float w[R];
      for (int r = 0; r < R; ++r) w[r] = pp[r * L + l];
      for (int d = 0; d < D; ++d) {
        const float x = ld(vr, d);
        for (int r = 0; r < R; ++r) acc[r][d] += w[r] * x;
      }
    }
    float* op = out + t * R * D;
    for (int r = 0; r < R; ++r)
      for (int d = 0; d < D; ++d) op[r * D + d] = acc[r][d];
  }
}

template <typename T, int R, int D>
static void run(int which, const float* a, const T* kv, const float* bias, float* o, long B, long H, long L,
                long sb, long sh, long sl, long bb, float scale) {
  if (which == 0) scores<T, R, D>(a, kv, bias, o, B, H, L, sb, sh, sl, bb, scale);
  else weighted<T, R, D>(a, kv, o, B, H, L, sb, sh, sl);
}

template <typename T, int R>
static int by_dim(int which, long D, const float* a, const T* kv, const float* bias, float* o, long B, long H,
                  long L, long sb, long sh, long sl, long bb, float scale) {
  switch (D) {
    case 16: run<T, R, 16>(which, a, kv, bias, o, B, H, L, sb, sh, sl, bb, scale); return 0;
    case 32: run<T, R, 32>(which, a, kv, bias, o, B, H, L, sb, sh, sl, bb, scale); return 0;
    case 64: run<T, R, 64>(which, a, kv, bias, o, B, H, L, sb, sh, sl, bb, scale); return 0;
    case 128: run<T, R, 128>(which, a, kv, bias, o, B, H, L, sb, sh, sl, bb, scale); return 0;
  }
  return 1;
}

template <typename T>
static int by_group(int which, long R, long D, const float* a, const T* kv, const float* bias, float* o, long B,
                    long H, long L, long sb, long sh, long sl, long bb, float scale) {
  switch (R) {
    case 1: return by_dim<T, 1>(which, D, a, kv, bias, o, B, H, L, sb, sh, sl, bb, scale);
    case 2: return by_dim<T, 2>(which, D, a, kv, bias, o, B, H, L, sb, sh, sl, bb, scale);
    case 3: return by_dim<T, 3>(which, D, a, kv, bias, o, B, H, L, sb, sh, sl, bb, scale);
    case 4: return by_dim<T, 4>(which, D, a, kv, bias, o, B, H, L, sb, sh, sl, bb, scale);
    case 5: return by_dim<T, 5>(which, D, a, kv, bias, o, B, H, L, sb, sh, sl, bb, scale);
    case 6: return by_dim<T, 6>(which, D, a, kv, bias, o, B, H, L, sb, sh, sl, bb, scale);
    case 7: return by_dim<T, 7>(which, D, a, kv, bias, o, B, H, L, sb, sh, sl, bb, scale);
    case 8: return by_dim<T, 8>(which, D, a, kv, bias, o, B, H, L, sb, sh, sl, bb, scale);
  }
  return 1;
}

extern "C" int gqa_decode(int which, int bf16, long R, long D, const void* a, const void* kv, const float* bias,
                          float* o, long B, long H, long L, long sb, long sh, long sl, long bb, float scale) {
  if (bf16)
    return by_group<uint16_t>(which, R, D, (const float*)a, (const uint16_t*)kv, bias, o, B, H, L, sb, sh, sl, bb,
                              scale);
  return by_group<float>(which, R, D, (const float*)a, (const float*)kv, bias, o, B, H, L, sb, sh, sl, bb, scale);
}
"""
_KERNEL_FLAGS = ["-O3", "-march=native", "-fopenmp", "-shared", "-fPIC", "-std=c++17"]
_kernel_state: dict = {}
_kernel_lock = threading.Lock()


def _kernel_cache_dir() -> Path:
    root = os.environ.get("SPA_KERNEL_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "spa-rl", "kernels"
    )
    return Path(root)


def _build_kernel():
    """Compile (once per machine, cached) and load the attention kernel; None where that is not possible (no
    C++ compiler, not x86/ARM Linux, ``SPA_DECODE_KERNEL=0``): the decoder then uses torch matmuls."""
    if os.environ.get("SPA_DECODE_KERNEL", "1") == "0" or sys.platform != "linux":
        return None
    cxx = shutil.which(os.environ.get("CXX", "g++"))
    if cxx is None:
        return None
    try:
        version = subprocess.run([cxx, "--version"], capture_output=True, text=True, timeout=60).stdout
        with open("/proc/cpuinfo") as f:  # -march=native: one build per kind of CPU
            cpu = next((line for line in f if line.startswith("flags")), "")
        key = hashlib.sha256("\0".join([_ATTENTION_SRC, cxx, version, " ".join(_KERNEL_FLAGS), cpu]).encode())
        lib_path = _kernel_cache_dir() / f"gqa_decode_{key.hexdigest()[:16]}.so"
        if not lib_path.exists():
            lib_path.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(dir=lib_path.parent) as tmp:
                src = Path(tmp) / "gqa_decode.cpp"
                src.write_text(_ATTENTION_SRC)
                out = Path(tmp) / lib_path.name
                subprocess.run(
                    [cxx, *_KERNEL_FLAGS, str(src), "-o", str(out)],
                    check=True,
                    capture_output=True,
                    timeout=600,
                )
                os.replace(out, lib_path)  # atomic: concurrent builders are safe
        lib = ctypes.CDLL(str(lib_path))
        fn = lib.gqa_decode
        fn.restype = ctypes.c_int
        long_, ptr = ctypes.c_long, ctypes.c_void_p
        fn.argtypes = [
            ctypes.c_int,
            ctypes.c_int,
            long_,
            long_,
            ptr,
            ptr,
            ptr,
            ptr,
            *[long_] * 7,
            ctypes.c_float,
        ]
        return fn
    except (OSError, subprocess.SubprocessError, StopIteration) as e:
        warnings.warn(f"decode attention kernel unavailable, using torch matmuls: {e}", stacklevel=2)
        return None


def attention_kernel():
    """The compiled attention kernel (built on first use), or None."""
    with _kernel_lock:
        if "fn" not in _kernel_state:
            _kernel_state["fn"] = _build_kernel()
        return _kernel_state["fn"]


def gqa_decode_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    bias: torch.Tensor,
    scale: float,
    use_kernel: bool = True,
    work: torch.Tensor | None = None,
) -> torch.Tensor:
    """Attention of one new token per row over a cache, on the key/value heads (no ``repeat_kv``).

    q: [batch, kv_heads, group, dim] (query head ``h`` is ``q[:, h // group, h % group]``); k, v: [batch,
    kv_heads, length, dim], any strides with the last one 1 (views of a longer buffer are fine); bias: [batch,
    length] float32 added to the scores (0 for a real token, -inf for a padding hole). Returns [batch,
    kv_heads, group, dim] in q's dtype. ``work``: an optional float32 buffer of at least 2 x batch x heads x
    length elements for the scores and weights (saves two large allocations per call)."""
    B, H, R, D = q.shape
    L = k.shape[2]
    fn = attention_kernel() if use_kernel and q.device.type == "cpu" else None
    ok = (
        fn is not None
        and k.dtype == v.dtype
        and k.dtype in (torch.float32, torch.bfloat16)
        and bias.dtype == torch.float32
        and k.stride(-1) == v.stride(-1) == bias.stride(-1) == 1
        and R <= 8
        and D in (16, 32, 64, 128)
    )
    if not ok:
        s = torch.matmul(q.float(), k.transpose(-1, -2).float()).mul_(scale).add_(bias[:, None, None, :])
        return torch.matmul(s.softmax(-1), v.float()).to(q.dtype)
    bf16 = int(k.dtype == torch.bfloat16)
    qf = q.to(torch.float32).contiguous()
    n = B * H * R * L
    if work is None or work.numel() < 2 * n:
        work = torch.empty(2 * n, dtype=torch.float32)
    s, p = work[:n].view(B, H, R, L), work[n : 2 * n].view(B, H, R, L)
    fn(0, bf16, R, D, qf.data_ptr(), k.data_ptr(), bias.data_ptr(), s.data_ptr(), B, H, L, *k.stride()[:3],
       bias.stride(0), scale)  # fmt: skip
    torch.ops.aten._softmax.out(s, -1, False, out=p)
    out = torch.empty((B, H, R, D), dtype=torch.float32)
    fn(1, bf16, R, D, p.data_ptr(), v.data_ptr(), None, out.data_ptr(), B, H, L, *v.stride()[:3], 0, 0.0)
    return out if q.dtype == torch.float32 else out.to(q.dtype)


def _rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """transformers' LlamaRMSNorm (in float32, then the weight in the input's dtype) in one fused op: equal
    to it in float32 (checked in tests)."""
    if x.dtype == torch.float32:
        return F.rms_norm(x, weight.shape, weight, eps)
    return weight * F.rms_norm(x.to(torch.float32), weight.shape, None, eps).to(x.dtype)


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


class _Linear:
    """y = x @ w.T with ``w`` packed once for oneDNN (2x faster than MKL's sgemm for a few rows here, which
    re-packs the weight at every call), or plain ``F.linear`` where oneDNN can't take it."""

    def __init__(self, w: torch.Tensor, pack: bool):
        self.w = w
        self.packed = None
        if pack:
            try:
                packed = torch.ops.mkldnn._reorder_linear_weight(w, 8)
                x = torch.randn(3, w.shape[1], generator=torch.Generator().manual_seed(0)).to(w.dtype)
                got = torch.ops.mkldnn._linear_pointwise(x, packed, None, "none", [], "")
                tol = 1e-4 if w.dtype == torch.float32 else 2e-2
                if torch.allclose(got.float(), F.linear(x, w).float(), rtol=tol, atol=tol):
                    self.packed, self.w = packed, None  # the packed copy replaces a concatenated one
            except (RuntimeError, AttributeError):
                pass

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.packed is not None:
            return torch.ops.mkldnn._linear_pointwise(x, self.packed, None, "none", [], "")
        return F.linear(x, self.w)


class FastDecoder:
    """Decoding for transformers' ``LlamaForCausalLM`` (SmolLM2, Llama, tiny-llama) on CPU, in fp32 or bf16.

    ``decode`` continues a ``preallocated_cache``: the prompt part goes through the transformers model as in
    ``generate``; every next token is one ``_step`` over weights packed once (repacked when a parameter
    changes in place, as an optimizer step does) and the key/value buffers themselves. Greedy and sampled
    (temperature, top-p: transformers' own warpers) selection; a row stops at a stop token and is fed the pad
    token afterwards, as ``generate`` does, so the cache it leaves is laid out the same.

    The logits differ from ``generate``'s by float rounding (another summation order in the products and the
    attention), as they already do between batch sizes; greedy tokens are checked equal in tests and in
    ``bench/bench_decode.py``."""

    def __init__(self, model, pack_weights: bool = True, use_kernel: bool = True):
        self.model = model
        cfg = model.config
        self.n_heads, self.n_kv = cfg.num_attention_heads, cfg.num_key_value_heads
        self.head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
        self.group = self.n_heads // self.n_kv
        self.inter = cfg.intermediate_size
        self.eps = cfg.rms_norm_eps
        self.scale = model.model.layers[0].self_attn.scaling
        self.pack_weights, self.use_kernel = pack_weights, use_kernel
        self._layers: list | None = None
        self._key = None
        self.step_seconds: list[float] = []  # wall time of each decode step of the last call (benchmarks)

    @staticmethod
    def unsupported(model) -> str | None:
        """Why this decoder can't run ``model`` (None: it can). Anything but a plain Llama with plain
        ``nn.Linear`` layers on CPU (a peft LoRA wrapper, biases, other architectures) is refused, so that
        the caller falls back to ``generate``."""
        from transformers import LlamaForCausalLM

        if type(model) is not LlamaForCausalLM:
            return f"not a LlamaForCausalLM ({type(model).__name__})"
        cfg = model.config
        if getattr(cfg, "attention_bias", False) or getattr(cfg, "mlp_bias", False):
            return "biases"
        if cfg.hidden_act != "silu" or getattr(cfg, "pretraining_tp", 1) != 1:
            return "activation / tensor parallel layout"
        if model.device.type != "cpu" or model.dtype not in (torch.float32, torch.bfloat16):
            return f"{model.device.type} {model.dtype}"
        for layer in model.model.layers:
            a, m = layer.self_attn, layer.mlp
            linears = (a.q_proj, a.k_proj, a.v_proj, a.o_proj, m.gate_proj, m.up_proj, m.down_proj)
            if any(type(x) is not torch.nn.Linear for x in linears):
                return "wrapped linear layers (an adapter?)"
        if type(model.lm_head) is not torch.nn.Linear:
            return "wrapped output layer"
        return None

    def invalidate(self) -> None:
        """Drop the packed weights (they are rebuilt on the next call)."""
        self._layers, self._key = None, None

    def _weights(self) -> list:
        params = list(self.model.parameters())
        key = tuple((p.data_ptr(), p._version) for p in params)
        if key != self._key:
            self._layers, self._key = None, None
            pack = self.pack_weights and torch.backends.mkldnn.is_available()
            layers = []
            with torch.no_grad():
                for layer in self.model.model.layers:
                    a, m = layer.self_attn, layer.mlp
                    qkv = torch.cat([a.q_proj.weight, a.k_proj.weight, a.v_proj.weight])
                    gate_up = torch.cat([m.gate_proj.weight, m.up_proj.weight])
                    layers.append(
                        (
                            layer.input_layernorm.weight,
                            _Linear(qkv, pack),
                            _Linear(a.o_proj.weight, pack),
                            layer.post_attention_layernorm.weight,
                            _Linear(gate_up, pack),
                            _Linear(m.down_proj.weight, pack),
                        )
                    )
                self._lm_head = _Linear(self.model.lm_head.weight.detach(), pack)
            self._layers, self._key = layers, key
        return self._layers

    def _step(self, tokens, positions, n, bias, buffers, work=None) -> torch.Tensor:
        """Logits [batch, vocab] for ``tokens`` [batch] at ``positions``; their keys/values go to slot ``n``."""
        B, H, G, D = tokens.shape[0], self.n_kv, self.group, self.head_dim
        x = F.embedding(tokens, self.model.model.embed_tokens.weight)
        cos, sin = self.model.model.rotary_emb(x, positions[:, None])  # [batch, 1, dim]
        nq, nk = self.n_heads * D, H * D
        for (ln1, qkv, o, ln2, gate_up, down), (kb, vb) in zip(self._layers, buffers, strict=True):
            y = qkv(_rms_norm(x, ln1, self.eps))
            qk = y[:, : nq + nk].view(B, self.n_heads + H, D)  # the rotation of q and k heads at once
            qk = qk * cos + _rotate_half(qk) * sin
            kb[:, :, n] = qk[:, self.n_heads :]
            vb[:, :, n] = y[:, nq + nk :].view(B, H, D)
            att = gqa_decode_attention(
                qk[:, : self.n_heads].view(B, H, G, D), kb[:, :, : n + 1], vb[:, :, : n + 1], bias[:, : n + 1],
                self.scale, self.use_kernel, work,
            )  # fmt: skip
            x = x + o(att.view(B, -1))
            y = gate_up(_rms_norm(x, ln2, self.eps))
            x = x + down(F.silu(y[:, : self.inter]) * y[:, self.inter :])
        return self._lm_head(_rms_norm(x, self.model.model.norm.weight, self.eps))

    @torch.no_grad()
    def decode(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        cache: DynamicCache,
        max_new_tokens: int,
        stop_ids: list[int],
        pad_token_id: int,
        temperature: float = 0.0,
        top_p: float = 1.0,
    ) -> torch.Tensor:
        """Generate up to ``max_new_tokens`` after ``input_ids`` [batch, new] (left-padded), whose
        ``attention_mask`` covers the cache's filled part and ``input_ids``; returns the generated tokens
        [batch, steps] (the pad token after a row's stop token), leaving the cache filled with everything but
        the last token, like ``generate``."""
        from transformers.generation.logits_process import (
            LogitsProcessorList,
            TemperatureLogitsWarper,
            TopPLogitsWarper,
        )

        if max_new_tokens < 1:
            raise ValueError("max_new_tokens must be at least 1")
        self.step_seconds = []
        self._weights()
        warpers, sample = LogitsProcessorList(), temperature > 0
        if sample:
            if temperature != 1.0:
                warpers.append(TemperatureLogitsWarper(temperature))
            if top_p < 1.0:
                warpers.append(TopPLogitsWarper(top_p))
        B, width = input_ids.shape
        positions = attention_mask.long().cumsum(-1) - 1
        positions = positions.masked_fill(attention_mask == 0, 0)
        out = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=positions[:, -width:],
            past_key_values=cache,
            use_cache=True,
            logits_to_keep=1,
        )
        logits = out.logits[:, -1].to(dtype=torch.float32)
        del out
        layers = cache.layers
        n = layers[0].length  # the next free slot
        need = n + max_new_tokens - 1
        for layer in layers:
            if need > layer._k.shape[2]:
                layer._k, layer._v = (layer._grown(b, need) for b in (layer._k, layer._v))
        bias = torch.zeros((B, layers[0]._k.shape[2]), dtype=torch.float32)
        bias[:, : attention_mask.shape[1]].masked_fill_(attention_mask == 0, float("-inf"))
        buffers = [(layer._k, layer._v) for layer in layers]
        work = torch.empty(2 * B * self.n_heads * bias.shape[1], dtype=torch.float32)  # attention scratch
        stops = torch.tensor(stop_ids, dtype=torch.long)
        pos = positions[:, -1]
        unfinished = torch.ones(B, dtype=torch.bool)
        seq = input_ids
        generated = []
        t0 = time.perf_counter()
        while True:
            if sample:
                probs = warpers(seq, logits).softmax(-1)
                tokens = torch.multinomial(probs, num_samples=1).squeeze(1)
            else:
                tokens = torch.argmax(logits, dim=-1)
            tokens = torch.where(unfinished, tokens, pad_token_id)
            generated.append(tokens)
            if sample:
                seq = torch.cat([seq, tokens[:, None]], dim=-1)
            unfinished &= ~torch.isin(tokens, stops)
            t1 = time.perf_counter()
            if len(generated) > 1:
                self.step_seconds.append(t1 - t0)
            t0 = t1
            if len(generated) == max_new_tokens or not unfinished.any():
                break
            pos = pos + 1
            logits = self._step(tokens, pos, n, bias, buffers, work).to(torch.float32)
            n += 1
        for layer in layers:
            layer.length = n
            layer.keys, layer.values = layer._k[:, :, :n], layer._v[:, :, :n]
        return torch.stack(generated, dim=1)
