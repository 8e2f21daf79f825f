"""SFT step-speed benchmark: the loss over all positions (``model(**batch, labels=...)``, the
Trainer's default) against ``labelled_positions_loss`` (logits only where an expert token follows),
forward + backward on the same expert trajectories, alternating, in one run.

    python bench/bench_sft.py --data data/sft/alfworld_sft.json --task-types pick --trajectories 6

Printed per method: seconds, tokens/s, and the ratio; also the largest loss difference between the
two (they compute the same loss).
"""

from __future__ import annotations

import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from sft.train import ExpertDataset  # noqa: E402
from spa_rl.agent.schema import command_line, write_json_atomic  # noqa: E402
from spa_rl.agent.sharegpt import read_sharegpt  # noqa: E402
from spa_rl.cli import arg, parse  # noqa: E402
from spa_rl.models.loading import load_tokenizer  # noqa: E402
from spa_rl.training import CausalLMCollator, labelled_positions_loss  # noqa: E402


@dataclass
class SFTBenchConfig:
    data: str = arg("data/sft/alfworld_sft.json", "ShareGPT expert file (sft/build_expert_data.py)")
    model: str = arg("models/smollm2-135m-instruct", "model folder (Hugging Face format)")
    task_types: str = arg("pick", "comma-separated; empty = all")
    trajectories: int = arg(6, "first N expert trajectories (of those task types)")
    repeats: int = arg(2, "passes per method, alternating their order")
    output: Path | None = arg(None, "also write the figures to this JSON file")


def full_loss(model, batch):
    return model(**batch).loss


def main(argv: list[str] | None = None) -> None:
    cfg = parse(SFTBenchConfig, argv=argv, doc=__doc__)

    tok = load_tokenizer(cfg.model)
    records = read_sharegpt(cfg.data)
    if cfg.task_types:
        wanted = set(cfg.task_types.split(","))
        records = [r for r in records if r.get("task_type") in wanted]
    data = ExpertDataset(records[: cfg.trajectories], tok, max_length=4096, train_on_context=False)
    collate = CausalLMCollator(tok.pad_token_id)
    batches = [collate([data[i]]) for i in range(len(data))]
    n_tokens = data.n_tokens()
    labelled = sum(int((b["labels"] != -100).sum()) for b in batches)
    model = AutoModelForCausalLM.from_pretrained(cfg.model, dtype=torch.float32)
    model.train()

    methods = {"all_positions": full_loss, "labelled_positions": labelled_positions_loss}
    secs: dict[str, list[float]] = {m: [] for m in methods}
    losses: dict[str, list[float]] = {m: [] for m in methods}
    for rep in range(cfg.repeats):
        order = list(methods) if rep % 2 == 0 else list(reversed(methods))
        for name in order:
            t0 = time.perf_counter()
            for b in batches:
                model.zero_grad(set_to_none=True)
                loss = methods[name](model, b)
                loss.backward()
                losses[name].append(loss.item())
            secs[name].append(round(time.perf_counter() - t0, 2))
    best = {m: min(v) for m, v in secs.items()}
    diff = max(abs(a - b) for a, b in zip(losses["all_positions"], losses["labelled_positions"], strict=True))
    for name in methods:
        print(f"{name:<20} {best[name]:7.1f} s  {n_tokens / best[name]:7.1f} tokens/s")
    speedup = best["all_positions"] / best["labelled_positions"]
    print(
        f"{len(batches)} trajectories, {n_tokens} tokens ({labelled} labelled); speedup {speedup:.2f}x; "
        f"largest loss difference {diff:.2e}"
    )
    if cfg.output:
        write_json_atomic(
            cfg.output,
            {
                "command": command_line(),
                "host": {"machine": platform.machine(), "threads": torch.get_num_threads()},
                "trajectories": len(batches),
                "tokens": n_tokens,
                "labelled_tokens": labelled,
                "seconds": secs,
                "speedup": round(speedup, 2),
                "largest_loss_difference": diff,
            },
        )


if __name__ == "__main__":
    main()
