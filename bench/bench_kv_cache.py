"""Decode-speed benchmark of the hf backend's per-turn cache: transformers' DynamicCache (appends each
decoded token with torch.cat, copying the whole cache) against the preallocated buffers of
spa_rl/agent/backends/kv_cache.py, on one batched ``generate`` call that continues a filled cache.

    python bench/bench_kv_cache.py --shapes 8x1500,30x3000 --new-tokens 60 --output results/x.json

Each shape is BATCHxCACHED_TOKENS (the cache holds random keys/values, left-padded rows); both caches
run the same greedy decode of --new-tokens tokens after a 60-token prefill, alternating, --repeats
times. Printed: seconds per call for each cache, the ratio, and whether the generated tokens match.
"""

from __future__ import annotations

import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, DynamicCache

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from spa_rl.agent.backends.kv_cache import preallocated_cache  # noqa: E402
from spa_rl.agent.schema import command_line, write_json_atomic  # noqa: E402
from spa_rl.cli import arg, parse  # noqa: E402


@dataclass
class KVCacheBenchConfig:
    model: str = arg("models/smollm2-135m-instruct", "model folder (Hugging Face format)")
    shapes: str = arg("8x1500,30x3000", "comma-separated BATCHxCACHED_TOKENS")
    new_tokens: int = arg(60, "tokens decoded per call")
    repeats: int = arg(1, "calls per cache, alternating their order")
    output: Path | None = arg(None, "also write the figures to this JSON file")


def one_call(model, kind: str, batch: int, cached: int, new_tokens: int, seed: int) -> tuple[float, list]:
    cfg = model.config
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    gen = torch.Generator().manual_seed(seed)
    shape = (batch, cfg.num_key_value_heads, cached, head_dim)
    past = [
        (torch.randn(shape, generator=gen), torch.randn(shape, generator=gen))
        for _ in range(cfg.num_hidden_layers)
    ]
    past_mask = torch.ones(batch, cached, dtype=torch.long)
    past_mask[: batch // 2, : cached // 5] = 0  # half the rows are shorter (left padding), as in a real batch
    prompt = torch.randint(0, 1000, (batch, 60), generator=gen)
    if kind == "concat":
        cache = DynamicCache(ddp_cache_data=past)
    else:
        cache = preallocated_cache(cfg.num_hidden_layers, cached + 60 + new_tokens, past)
    t0 = time.perf_counter()
    with torch.no_grad():
        out = model.generate(
            input_ids=prompt,
            attention_mask=torch.cat([past_mask, torch.ones_like(prompt)], dim=1),
            past_key_values=cache,
            max_new_tokens=new_tokens,
            min_new_tokens=new_tokens,
            do_sample=False,
            pad_token_id=0,
        )
    return time.perf_counter() - t0, out[:, 60:].tolist()


def main(argv: list[str] | None = None) -> None:
    cfg = parse(KVCacheBenchConfig, argv=argv, doc=__doc__)

    model = AutoModelForCausalLM.from_pretrained(cfg.model, dtype=torch.float32).eval()
    rows = []
    for shape in cfg.shapes.split(","):
        batch, cached = (int(x) for x in shape.lower().split("x"))
        secs: dict[str, list[float]] = {"concat": [], "preallocated": []}
        same = True
        for rep in range(cfg.repeats):
            order = ["concat", "preallocated"] if rep % 2 == 0 else ["preallocated", "concat"]
            tokens = {}
            for kind in order:
                s, tokens[kind] = one_call(model, kind, batch, cached, cfg.new_tokens, seed=rep)
                secs[kind].append(round(s, 2))
            same &= tokens["concat"] == tokens["preallocated"]
        best = {k: min(v) for k, v in secs.items()}
        row = {
            "batch": batch,
            "cached_tokens": cached,
            "new_tokens": cfg.new_tokens,
            "seconds_concat": secs["concat"],
            "seconds_preallocated": secs["preallocated"],
            "speedup": round(best["concat"] / best["preallocated"], 2),
            "same_tokens": same,
        }
        rows.append(row)
        print(
            f"batch {batch:>3} x {cached:>5} cached: concat {best['concat']:.1f} s, preallocated "
            f"{best['preallocated']:.1f} s -> {row['speedup']:.2f}x, same tokens: {same}",
            flush=True,
        )
    if cfg.output:
        write_json_atomic(
            cfg.output,
            {
                "command": command_line(),
                "host": {"machine": platform.machine(), "threads": torch.get_num_threads()},
                "rows": rows,
            },
        )


if __name__ == "__main__":
    main()
