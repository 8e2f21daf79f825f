"""Decoding near the memory bound on CPU: ``FastDecoder``, the decode loop of the ``hf`` backend.

A decode step reads every weight and every cached key/value once; at batch 8-32 x 1-3k cached tokens that is
0.5-3 GB, so on a CPU the step is bounded by memory bandwidth. transformers' ``generate`` took 5-10x that
bound here (profile in results/README.md, "Decoding near the memory bound"): its matrix products go through
MKL's sgemm, which re-packs each weight for every call (~2x a plain read at batch 8), the attention over the
cache (sdpa's CPU flash kernel, or matmul) streams the keys/values at a third of the bandwidth, and each
layer runs ~45 small torch operations whose dispatch costs add up to a third of a batch-1 step. The decoder
here runs the same computation with: weights packed once for oneDNN (q/k/v and gate/up fused into one product each);
attention computed on the key/value heads by a C++ kernel that reads each cached key/value once (the query
heads that share a key/value head are handled together); the norms, the rotary embedding and the cache writes
as one kernel call each (``cpu_decode.cpp``); an additive mask written once per turn; and a plain loop
instead of ``generate``. The prompt of a turn (the prefill) still goes through the transformers model.
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
from pathlib import Path
from types import SimpleNamespace

import torch
import torch.nn.functional as F
from transformers import DynamicCache

_SOURCE = Path(__file__).with_name("cpu_decode.cpp")
_KERNEL_FLAGS = ["-O3", "-march=native", "-fopenmp", "-shared", "-fPIC", "-std=c++17"]
_kernel_state: dict = {}
_kernel_lock = threading.Lock()


def _kernel_cache_dir() -> Path:
    root = os.environ.get("SPA_KERNEL_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "spa-rl", "kernels"
    )
    return Path(root)


def _build_kernel():
    """Compile (once per machine, cached) and load ``cpu_decode.cpp``; None where that is not possible (no
    C++ compiler, not Linux, ``SPA_DECODE_KERNEL=0``): the decoder then runs the same steps as torch
    operations."""
    if os.environ.get("SPA_DECODE_KERNEL", "1") == "0" or sys.platform != "linux":
        return None
    cxx = shutil.which(os.environ.get("CXX", "g++"))
    if cxx is None:
        return None
    try:
        source = _SOURCE.read_text()
        version = subprocess.run([cxx, "--version"], capture_output=True, text=True, timeout=60).stdout
        with open("/proc/cpuinfo") as f:  # -march=native: one build per kind of CPU
            cpu = next((line for line in f if line.startswith("flags")), "")
        key = hashlib.sha256("\0".join([source, cxx, version, " ".join(_KERNEL_FLAGS), cpu]).encode())
        lib_path = _kernel_cache_dir() / f"cpu_decode_{key.hexdigest()[:16]}.so"
        if not lib_path.exists():
            lib_path.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(dir=lib_path.parent) as tmp:
                src = Path(tmp) / "cpu_decode.cpp"
                src.write_text(source)
                out = Path(tmp) / lib_path.name
                subprocess.run(
                    [cxx, *_KERNEL_FLAGS, str(src), "-o", str(out)],
                    check=True,
                    capture_output=True,
                    timeout=600,
                )
                os.replace(out, lib_path)  # atomic: concurrent builders are safe
        lib = ctypes.CDLL(str(lib_path))
        long_, ptr, float_ = ctypes.c_long, ctypes.c_void_p, ctypes.c_float

        def fn(name: str, argtypes: list, restype=None):
            f = getattr(lib, name)
            f.argtypes, f.restype = argtypes, restype
            return f

        return SimpleNamespace(
            gqa=fn("gqa_decode", [ctypes.c_int, ctypes.c_int, long_, long_, *[ptr] * 4, *[long_] * 7, float_],
                   ctypes.c_int),
            rms_norm={dt: fn(f"rms_norm_{name}", [*[ptr] * 4, long_, long_, float_])
                      for dt, name in ((torch.float32, "f32"), (torch.bfloat16, "bf16"))},
            rope_store={dt: fn(f"rope_store_{name}", [*[ptr] * 6, *[long_] * 8])
                        for dt, name in ((torch.float32, "f32"), (torch.bfloat16, "bf16"))},
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError, StopIteration, AttributeError) as e:
        warnings.warn(f"decode kernels unavailable, using torch operations: {e}", stacklevel=2)
        return None


def decode_kernels() -> SimpleNamespace | None:
    """The compiled kernels of ``cpu_decode.cpp`` (built on first use), or None."""
    with _kernel_lock:
        if "lib" not in _kernel_state:
            _kernel_state["lib"] = _build_kernel()
        return _kernel_state["lib"]


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
    lib = decode_kernels() if use_kernel and q.device.type == "cpu" else None
    fn = lib.gqa if lib is not None else None
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
    out = torch.empty((B, H, R, D), dtype=v.dtype)  # written in the cache's dtype
    fn(1, bf16, R, D, p.data_ptr(), v.data_ptr(), None, out.data_ptr(), B, H, L, *v.stride()[:3], 0, 0.0)
    return out.to(q.dtype)


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

    def _fused(self, dtype: torch.dtype) -> SimpleNamespace | None:
        """The kernels for ``_step_fused``, or None where it can't run (no compiler, another shape)."""
        lib = decode_kernels() if self.use_kernel else None
        ok = (
            dtype in (torch.float32, torch.bfloat16)
            and self.group <= 8
            and self.head_dim in (16, 32, 64, 128)
        )
        return lib if ok else None

    def _step_fused(self, lib, tokens, positions, n, bias, buffers, work) -> torch.Tensor:
        """``_step`` with the norms (residual sums included), the rotary embedding and the cache writes as one
        kernel call each, and the attention's scores and weighted sum as two (its softmax stays torch's): 12
        calls per layer instead of ~45 torch operations. Greedy tokens equal ``_step``'s (tests)."""
        B, H, G, D = tokens.shape[0], self.n_kv, self.group, self.head_dim
        dtype = self.model.dtype
        norm, rope, gqa = lib.rms_norm[dtype], lib.rope_store[dtype], lib.gqa
        bf16 = int(dtype == torch.bfloat16)
        x = F.embedding(tokens, self.model.model.embed_tokens.weight).contiguous()
        cos, sin = self.model.model.rotary_emb(x.float(), positions[:, None])  # float32, [batch, 1, dim]
        cos, sin = cos[:, 0].contiguous(), sin[:, 0].contiguous()
        h = torch.empty_like(x)
        q = torch.empty((B, self.n_heads * D), dtype=torch.float32)
        att = torch.empty((B, self.n_heads * D), dtype=dtype)
        L = n + 1  # the cached positions this step attends to, its own included
        m = B * self.n_heads * L
        s, p = work[:m].view(B, H, G, L), work[m : 2 * m].view(B, H, G, L)
        kb0, _ = buffers[0]
        sb, sh, sl = kb0.stride()[:3]
        x_, h_, q_, att_, s_, p_ = (t.data_ptr() for t in (x, h, q, att, s, p))
        bias_, bias_stride = bias.data_ptr(), bias.stride(0)
        hidden, delta = x.shape[1], None
        for (ln1, qkv, o, ln2, gate_up, down), (kb, vb) in zip(self._layers, buffers, strict=True):
            norm(x_, delta, ln1.data_ptr(), h_, B, hidden, self.eps)  # x += delta; h = norm(x)
            y = qkv(h)
            rope(y.data_ptr(), cos.data_ptr(), sin.data_ptr(), q_, kb.data_ptr(), vb.data_ptr(),
                 B, self.n_heads, H, D, n, sb, sh, sl)  # fmt: skip
            gqa(0, bf16, G, D, q_, kb.data_ptr(), bias_, s_, B, H, L, sb, sh, sl, bias_stride, self.scale)
            torch.ops.aten._softmax.out(s, -1, False, out=p)
            gqa(1, bf16, G, D, p_, vb.data_ptr(), None, att_, B, H, L, sb, sh, sl, 0, 0.0)
            d = o(att)
            norm(x_, d.data_ptr(), ln2.data_ptr(), h_, B, hidden, self.eps)
            y = gate_up(h)
            g = F.silu(y[:, : self.inter]).mul_(y[:, self.inter :])
            d = down(g)
            delta = d.data_ptr()
        norm(x_, delta, self.model.model.norm.weight.data_ptr(), h_, B, hidden, self.eps)
        return self._lm_head(h)

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
        lib = self._fused(self.model.dtype)
        kb0 = buffers[0][0]
        if lib is not None and not all(
            b.stride() == kb0.stride() and b.dtype == self.model.dtype for kv in buffers for b in kv
        ):
            lib = None  # the fused step takes one layout for every layer's buffers
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
            if lib is not None:
                logits = self._step_fused(lib, tokens, pos, n, bias, buffers, work).to(torch.float32)
            else:
                logits = self._step(tokens, pos, n, bias, buffers, work).to(torch.float32)
            n += 1
        for layer in layers:
            layer.length = n
            layer.keys, layer.values = layer._k[:, :, :n], layer._v[:, :, :n]
        return torch.stack(generated, dim=1)
