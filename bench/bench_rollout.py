"""Rollout speed benchmark: the same ALFWorld episodes (fixed games, greedy, a fixed number of steps)
through several generation paths, in one run, with ratios.

    python bench/bench_rollout.py --model models/smollm2-135m-instruct --episodes 8 --steps 6
    python bench/bench_rollout.py ... --api-base http://127.0.0.1:8000/v1 --api-model smollm2

Paths: hf-sequential (one episode at a time, no cache), hf-batched (all episodes per generate call, no
cache), hf-batched-cache (batched, key/value cache kept across turns), hf-batched-cache-rowwise (the
same, but the first turn encodes the shared instruction + example once per episode),
hf-batched-cache-concat (the same as hf-batched-cache, but each turn's cache is transformers' DynamicCache,
which appends every decoded token by concatenation instead of writing into a preallocated buffer), openai (an OpenAI-compatible
server such as vLLM, when --api-base is given), lora-peft and lora-merged (a PPO policy, LoRA r 8 with seeded
nonzero adapters: generation through the peft model, as PPO's probe and online rollouts did before, and
through spa_rl/rl/merged_policy.py's merged plain copy, as they do on CPU now; batched, with the cache).
Printed per path: episodes/min, generated tokens/s,
prompt tokens run through the model per episode (for the server: prompt tokens sent), and the ratio of
episodes/min to hf-batched.
"""

from __future__ import annotations

import json
import platform
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from envs import load_tasks  # noqa: E402
from spa_rl.agent.backends import GenerationConfig  # noqa: E402
from spa_rl.agent.backends.hf import HFPolicy  # noqa: E402
from spa_rl.agent.backends.openai_api import OpenAIPolicy  # noqa: E402
from spa_rl.agent.runner import RolloutConfig, run_rollouts  # noqa: E402
from spa_rl.agent.schema import command_line, write_json_atomic  # noqa: E402
from spa_rl.cli import arg, parse  # noqa: E402


@dataclass
class RolloutBenchConfig:
    model: str = arg("models/smollm2-135m-instruct", "model folder (Hugging Face format)")
    split: str = arg("unseen", "ALFWorld split the games come from")
    episodes: int = arg(8, "first N games of the split")
    steps: int = arg(6, "steps per episode (fixed; games are rarely won)")
    max_new_tokens: int = arg(64, "tokens generated per turn")
    paths: str = arg("hf-sequential,hf-batched,hf-batched-cache,openai", "comma-separated generation paths "
                     "(see above); a path may repeat")  # fmt: skip
    device: str | None = arg(None, "hf paths: torch device (default: cuda if available, else cpu)")
    dtype: str | None = arg(None, "hf paths: weight dtype, auto | bf16 | fp32 (default: auto, bf16 where the "
                            "hardware has it)")  # fmt: skip
    api_base: str | None = arg(None, "OpenAI-compatible endpoint for the openai path")
    api_model: str | None = arg(None, "model name the server knows (default: --model)")
    output: Path | None = arg(None, "write the table as JSON here")


def run_path(name, policy, tasks, batch_size, bench: RolloutBenchConfig) -> dict:
    cfg = RolloutConfig(
        batch_size=batch_size,
        max_steps=bench.steps,
        generation=GenerationConfig(max_new_tokens=bench.max_new_tokens, temperature=0.0),
    )
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        recs, stats = run_rollouts(tasks, policy, Path(tmp) / "e.jsonl", cfg, progress=False)
        seconds = time.perf_counter() - t0
    kv = getattr(policy, "kv", None)
    prefill = kv.encoded_tokens if kv is not None else stats.prompt_tokens
    return {
        "path": name,
        "episodes": len(recs),
        "steps": stats.steps,
        "seconds": round(seconds, 2),
        "episodes_per_min": round(len(recs) / seconds * 60, 3),
        "generated_tokens_per_s": round(stats.completion_tokens / seconds, 2),
        "prefill_tokens_per_episode": round(prefill / len(recs), 1),
        "replies": [[s.reply for s in r.steps] for r in recs],
    }


def lora_policy(path: str, cfg: RolloutBenchConfig, batch: int):
    """A PPO policy on --model with LoRA adapters set to seeded nonzero values (so that merging matters), and
    the generator of ``path``: lora-peft (the peft model) or lora-merged (the merged plain copy)."""
    from spa_rl.models.loading import load_tokenizer
    from spa_rl.models.precision import resolve_dtype
    from spa_rl.rl.merged_policy import MergedLoRAPolicy, lora_generator
    from spa_rl.rl.policy_value import PolicyWithValue

    device = str(cfg.device or "cpu")
    model = PolicyWithValue.create(cfg.model, dtype=resolve_dtype(cfg.dtype, device)).to(device).eval()
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in model.lm.named_parameters():
            if "lora_" in name:
                p.copy_(torch.randn(p.shape, generator=g).to(p.device) * 0.01)
    tok = load_tokenizer(cfg.model)
    if path == "lora-peft":
        return HFPolicy(cfg.model, device, batch_size=batch, model=model.lm, tokenizer=tok)
    gen = lora_generator(model.lm, tok, cfg.model, device, batch)
    if not isinstance(gen, MergedLoRAPolicy):
        print(f"lora-merged: no merged copy on {device} (the peft model generates)")
    return gen


def main(argv: list[str] | None = None) -> None:
    cfg = parse(RolloutBenchConfig, argv=argv, doc=__doc__)

    tasks = load_tasks("alfworld", cfg.split, limit=cfg.episodes)
    wanted = [p.strip() for p in cfg.paths.split(",")]
    rows = []
    for path in wanted:
        if path == "openai":
            if not cfg.api_base:
                print("openai: skipped (no --api-base)")
                continue
            policy = OpenAIPolicy(cfg.api_base, cfg.api_model or cfg.model, concurrency=len(tasks))
            rows.append(run_path(path, policy, tasks, len(tasks), cfg))
        elif path.startswith("lora-"):
            policy = lora_policy(path, cfg, len(tasks))
            rows.append(run_path(path, policy, tasks, len(tasks), cfg))
            del policy
        else:
            cache = path.startswith("hf-batched-cache")
            batch = 1 if path == "hf-sequential" else len(tasks)
            policy = HFPolicy(
                cfg.model,
                device=cfg.device,
                dtype=cfg.dtype,
                batch_size=batch,
                kv_cache=cache,
                prefill_shared=path != "hf-batched-cache-rowwise",
                preallocate=path != "hf-batched-cache-concat",
            )
            rows.append(run_path(path, policy, tasks, batch, cfg))
            del policy
        print(json.dumps({k: v for k, v in rows[-1].items() if k != "replies"}), flush=True)

    base = next((r for r in rows if r["path"] == "hf-batched"), rows[0])
    print(f"\n{'path':<24} {'ep/min':>8} {'gen tok/s':>10} {'prefill tok/ep':>15} {'x hf-batched':>13}")
    for r in rows:
        ratio = r["episodes_per_min"] / base["episodes_per_min"]
        r["ratio_vs_hf_batched"] = round(ratio, 2)
        print(
            f"{r['path']:<24} {r['episodes_per_min']:>8.2f} {r['generated_tokens_per_s']:>10.1f} "
            f"{r['prefill_tokens_per_episode']:>15.0f} {ratio:>12.2f}x"
        )
    hf_rows = [r for r in rows if r["path"].startswith("hf")]
    same = all(r["replies"] == hf_rows[0]["replies"] for r in hf_rows)
    print(f"\nhf paths produced identical greedy replies: {same}")
    lora = {r["path"]: r["replies"] for r in rows if r["path"].startswith("lora-")}
    if len(lora) == 2:  # the merged weights round differently from base + LoRA: replies may part late
        pairs = [(a, b) for ra, rb in zip(*lora.values(), strict=True) for a, b in zip(ra, rb, strict=False)]
        print(f"lora-peft and lora-merged: {sum(a == b for a, b in pairs)}/{len(pairs)} replies identical")
    if cfg.output:
        write_json_atomic(
            cfg.output,
            {
                "command": command_line(),
                "host": {"machine": platform.machine(), "threads": torch.get_num_threads()},
                "hf_replies_identical": same,
                "rows": [{k: v for k, v in r.items() if k != "replies"} for r in rows],
            },
        )


if __name__ == "__main__":
    main()
