"""Decode-step benchmark of the hf backend against the machine's memory-traffic bound.

    python bench/bench_decode.py --shapes 8x1500,32x1500,8x3000 --dtypes float32,bfloat16 \\
        --output results/bench_decode.json

A decode step reads every weight and every cached key/value once, so on a CPU its time is bounded below by
(weight bytes + key/value bytes) / memory read bandwidth. The bandwidth is measured here, in the same run
(best of several sums of a 1 GiB tensor, at the start and at the end, with torch's threads). Each shape is
BATCHxCACHED_TOKENS: a cache of random keys/values (half the rows left-padded by a fifth), then
--prompt-tokens new tokens and --new-tokens greedy tokens, through

- ``generate``: transformers' ``model.generate`` on the backend's preallocated cache (the old path), and
- ``fast``: ``spa_rl.agent.backends.cpu_decode.FastDecoder`` (the backend's default now),

alternating, --repeats times each. Printed per dtype and shape: ms per decode step (median over the steps of
a call, best call), the bound, the ratio to it, and whether both paths produced the same greedy tokens (for
bf16, where rounding differs, also how many of them agree with fp32's when fp32 ran too).
"""

from __future__ import annotations

import platform
import statistics
import sys
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, StoppingCriteria, StoppingCriteriaList

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from spa_rl.agent.backends.cpu_decode import FastDecoder, decode_kernels  # noqa: E402
from spa_rl.agent.backends.kv_cache import preallocated_cache  # noqa: E402
from spa_rl.agent.schema import command_line, write_json_atomic  # noqa: E402
from spa_rl.cli import arg, parse  # noqa: E402


@dataclass
class DecodeBenchConfig:
    model: str = arg("models/smollm2-135m-instruct", "model folder (Hugging Face format)")
    shapes: str = arg("8x1500,32x1500,8x3000", "comma-separated BATCHxCACHED_TOKENS")
    dtypes: str = arg("float32,bfloat16", "comma-separated torch dtypes to load the model in")
    prompt_tokens: int = arg(16, "new prompt tokens run through the model after the cache")
    new_tokens: int = arg(12, "tokens generated per call (steps: one fewer)")
    repeats: int = arg(2, "calls per path, alternating their order")
    threads: int | None = arg(None, "torch threads (default: torch's)")
    output: Path | None = arg(None, "also write the figures to this JSON file")
    profile: str | None = arg(None, "instead: torch.profiler tables of decode steps at BATCHxCACHED, with the "
                              "per-layer kernels and as torch operations (FastDecoder's two step paths)")  # fmt: skip


def read_bandwidth(gib: float = 1.0, repeats: int = 7) -> float:
    """GB/s of the best of ``repeats`` sums over a ``gib`` GiB float32 tensor (a plain read of memory)."""
    x = torch.ones(int(gib * 2**30) // 4)
    x.sum()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        x.sum()
        best = min(best, time.perf_counter() - t0)
    return x.numel() * 4 / best / 1e9


class Stamps(StoppingCriteria):
    """Called by ``generate`` once per token: the intervals are its decode steps."""

    def __init__(self) -> None:
        self.times: list[float] = []

    def __call__(self, input_ids, scores, **kwargs):
        self.times.append(time.perf_counter())
        return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)


def random_cache(model, batch: int, cached: int, capacity: int, seed: int) -> list:
    cfg = model.config
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    gen = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(cfg.num_hidden_layers):
        kv = []
        for _ in range(2):
            buf = torch.empty((batch, cfg.num_key_value_heads, capacity, head_dim), dtype=model.dtype)
            buf[:, :, :cached] = torch.randn(
                (batch, cfg.num_key_value_heads, cached, head_dim), generator=gen
            )
            kv.append(buf)
        out.append(tuple(kv))
    return out


def run_path(path, model, decoder, buffers, cached, prompt, mask, new_tokens) -> tuple[list[float], list]:
    """Per-step seconds and the generated tokens of one call."""
    cache = preallocated_cache(model.config.num_hidden_layers, buffers[0][0].shape[2], buffers, filled=cached)
    with torch.no_grad():
        if path == "generate":
            stamps = Stamps()
            out = model.generate(
                input_ids=prompt,
                attention_mask=mask,
                past_key_values=cache,
                max_new_tokens=new_tokens,
                do_sample=False,
                eos_token_id=None,
                pad_token_id=0,
                stopping_criteria=StoppingCriteriaList([stamps]),
            )
            steps = [b - a for a, b in zip(stamps.times, stamps.times[1:], strict=False)]
            tokens = out[:, prompt.shape[1] :].tolist()
        else:
            tokens = decoder.decode(prompt, mask, cache, new_tokens, [], 0).tolist()
            steps = decoder.step_seconds
    assert len(tokens[0]) == new_tokens, (path, len(tokens[0]))
    return steps, tokens


def weight_bytes(model) -> int:
    """Bytes of the weights a decode step reads: all parameters (a tied output layer once)."""
    return sum(p.numel() * p.element_size() for p in model.parameters())


def kv_bytes(model, batch: int, positions: float) -> float:
    cfg = model.config
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    per_position = 2 * cfg.num_hidden_layers * cfg.num_key_value_heads * head_dim * model.dtype.itemsize
    return batch * positions * per_position


def profile_steps(cfg: DecodeBenchConfig) -> None:
    """Where a decode step's time goes: torch.profiler over 5 steps of each step path, every dtype."""
    from torch.profiler import profile

    batch, cached = (int(x) for x in cfg.profile.lower().split("x"))
    for dtype_name in cfg.dtypes.split(","):
        model = AutoModelForCausalLM.from_pretrained(cfg.model, dtype=getattr(torch, dtype_name)).eval()
        decoder = FastDecoder(model)
        decoder._weights()
        lib = decoder._fused(model.dtype)
        buffers = random_cache(model, batch, cached, cached + 8, seed=0)
        bias = torch.zeros(batch, cached + 8)
        work = torch.empty(2 * batch * model.config.num_attention_heads * (cached + 8))
        tokens, positions = torch.zeros(batch, dtype=torch.long), torch.full((batch,), cached)
        args = (tokens, positions, cached, bias, buffers, work)
        paths = {"torch operations": partial(decoder._step, *args)}
        if lib is not None:
            paths["per-layer kernels"] = partial(decoder._step_fused, lib, *args)
        for name, step in paths.items():
            with torch.no_grad():
                step()
                t0 = time.perf_counter()
                with profile() as prof:
                    for _ in range(5):
                        step()
                ms = (time.perf_counter() - t0) / 5 * 1000
            print(f"\n{dtype_name} {batch}x{cached}, {name}: {ms:.1f} ms per step (under the profiler)")
            print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))


def main(argv: list[str] | None = None) -> None:
    cfg = parse(DecodeBenchConfig, argv=argv, doc=__doc__)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if cfg.profile:
        profile_steps(cfg)
        return

    bandwidth = [read_bandwidth()]
    print(f"memory read bandwidth: {bandwidth[0]:.1f} GB/s ({torch.get_num_threads()} threads)", flush=True)
    kernel = decode_kernels() is not None
    print(f"decode kernels compiled: {kernel}", flush=True)
    shapes = [tuple(int(x) for x in s.lower().split("x")) for s in cfg.shapes.split(",")]
    rows = []
    fp32_tokens: dict[tuple[int, int], list] = {}
    for dtype_name in cfg.dtypes.split(","):
        dtype = getattr(torch, dtype_name)
        model = AutoModelForCausalLM.from_pretrained(cfg.model, dtype=dtype).eval()
        decoder = FastDecoder(model)
        decoder._weights()  # pack once, outside the timings (the backend keeps them across calls)
        for batch, cached in shapes:
            gen = torch.Generator().manual_seed(batch * 100_000 + cached)
            capacity = cached + cfg.prompt_tokens + cfg.new_tokens
            buffers = random_cache(model, batch, cached, capacity, seed=cached)
            mask = torch.ones((batch, cached + cfg.prompt_tokens), dtype=torch.long)
            mask[: batch // 2, : cached // 5] = 0  # half the rows shorter: left padding, as in a real batch
            prompt = torch.randint(0, 1000, (batch, cfg.prompt_tokens), generator=gen)
            secs: dict[str, list[float]] = {"generate": [], "fast": []}
            tokens: dict[str, list] = {}
            same = True
            for rep in range(cfg.repeats):
                order = ["generate", "fast"] if rep % 2 == 0 else ["fast", "generate"]
                for path in order:
                    steps, tokens[path] = run_path(
                        path, model, decoder, buffers, cached, prompt, mask, cfg.new_tokens
                    )
                    secs[path].append(statistics.median(steps))
                same &= tokens["generate"] == tokens["fast"]
            del buffers
            # Decode step i (1 .. new_tokens - 1) attends to cached + prompt + i positions (holes included).
            positions = cached + cfg.prompt_tokens + cfg.new_tokens / 2
            rows.append(
                {
                    "dtype": dtype_name,
                    "batch": batch,
                    "cached_tokens": cached,
                    "ms_per_step": {k: [round(1000 * s, 1) for s in v] for k, v in secs.items()},
                    "best_ms": {k: round(1000 * min(v), 1) for k, v in secs.items()},
                    "weight_bytes": weight_bytes(model),
                    "kv_bytes": round(kv_bytes(model, batch, positions)),
                    "same_tokens": same,
                }
            )
            if dtype == torch.float32:
                fp32_tokens[(batch, cached)] = tokens["fast"]
            elif (batch, cached) in fp32_tokens:
                ref = [t for row in fp32_tokens[(batch, cached)] for t in row]
                for path in ("generate", "fast"):
                    got = [t for row in tokens[path] for t in row]
                    rows[-1][f"agree_with_fp32_{path}"] = round(
                        sum(a == b for a, b in zip(ref, got, strict=True)) / len(ref), 3
                    )
            print(
                f"{dtype_name} batch {batch} x {cached}: generate {rows[-1]['best_ms']['generate']:.0f} ms, "
                f"fast {rows[-1]['best_ms']['fast']:.0f} ms per step, same tokens: {same}",
                flush=True,
            )
        del model, decoder
    bandwidth.append(read_bandwidth())
    bw = max(bandwidth)
    print(f"memory read bandwidth at the end: {bandwidth[1]:.1f} GB/s; bound uses the best, {bw:.1f} GB/s\n")
    print(f"{'dtype':<9} {'shape':>10} {'bound ms':>9} {'generate ms':>12} {'x bound':>8} {'fast ms':>8} "
          f"{'x bound':>8} {'speedup':>8} {'same':>5}")  # fmt: skip
    for r in rows:
        bound_ms = (r["weight_bytes"] + r["kv_bytes"]) / (bw * 1e9) * 1000
        r["bound_ms"] = round(bound_ms, 1)
        r["ratio_to_bound"] = {k: round(v / bound_ms, 2) for k, v in r["best_ms"].items()}
        r["speedup"] = round(r["best_ms"]["generate"] / r["best_ms"]["fast"], 2)
        print(
            f"{r['dtype']:<9} {r['batch']:>4}x{r['cached_tokens']:<5} {bound_ms:>9.1f} "
            f"{r['best_ms']['generate']:>12.1f} {r['ratio_to_bound']['generate']:>7.2f}x "
            f"{r['best_ms']['fast']:>8.1f} {r['ratio_to_bound']['fast']:>7.2f}x {r['speedup']:>7.2f}x "
            f"{str(r['same_tokens']):>5}"
        )
    if cfg.output:
        write_json_atomic(
            cfg.output,
            {
                "command": command_line(),
                "host": {
                    "machine": platform.machine(),
                    "threads": torch.get_num_threads(),
                    "torch": torch.__version__,
                    "load_average": Path("/proc/loadavg").read_text().split()[:3]
                    if Path("/proc/loadavg").exists()
                    else None,
                },
                "read_bandwidth_gb_s": [round(b, 2) for b in bandwidth],
                "attention_kernel": kernel,
                "prompt_tokens": cfg.prompt_tokens,
                "new_tokens": cfg.new_tokens,
                "rows": rows,
            },
        )


if __name__ == "__main__":
    main()
