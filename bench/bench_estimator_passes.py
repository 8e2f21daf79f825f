"""CPU cost of the estimator stage's backbone passes (prm/train.py + prm/infer.py, frozen backbone), the
way the stage read the backbone before the feature store against the way it reads it now, alternating,
in one run, with the ratio:

- ``before``: features of the train split for the head; ``predict`` over train and val for eval.json;
  ``estimate_step_values`` over every rollout for prm/infer.py: about 2.8 backbone passes per rollout
  with the default 20 % held out;
- ``store``: features of train + val once (kept in the store); eval.json from them; prm/infer.py from
  the store: one pass per rollout.

The head's fitting (the same in both, cheap) is left out. The rollouts are real: by default the first
``--rollouts-n`` of the CPU study's exploration, committed in its mirror.

    python bench/bench_estimator_passes.py --rollouts-n 16 --output results/estimator_feature_store/bench.json
"""

from __future__ import annotations

import platform
import random
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from spa_rl.agent.schema import command_line, read_records, write_json_atomic  # noqa: E402
from spa_rl.cli import arg, parse  # noqa: E402
from spa_rl.estimator.data import StepCollator  # noqa: E402
from spa_rl.estimator.feature_store import feature_key, load_features, save_features  # noqa: E402
from spa_rl.estimator.fitting import RolloutDataset, cache_features, predict, predict_cached  # noqa: E402
from spa_rl.estimator.model import EstimatorConfig, ProgressEstimator, estimate_step_values  # noqa: E402
from spa_rl.models.loading import load_tokenizer  # noqa: E402
from spa_rl.models.paths import resolve_model_path  # noqa: E402
from spa_rl.models.precision import cpu_has_bf16  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


@dataclass
class BenchConfig:
    rollouts: str = arg(str(REPO / "results/study/alfworld/run/exploration/episodes.jsonl"), "rollouts JSONL")
    rollouts_n: int = arg(16, "how many of them (the first N)")
    model: str = arg(str(REPO / "models/smollm2-135m-instruct"), "the backbone")
    dtype: str = arg("auto", "compute dtype: auto (bf16 where the CPU has bf16 instructions) | bf16 | fp32")
    val_fraction: float = arg(0.2, "held-out share, as prm/data_org.py splits (by rollout here)")
    repeats: int = arg(1, "alternating repeats of both ways")
    threads: int = arg(0, "torch threads (0: torch's default)")
    max_length: int = arg(4096, "tokens per rollout")
    output: str | None = arg(None, "also write the figures to this JSON file")


def main() -> None:
    cfg = parse(BenchConfig, doc=__doc__)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    dtype = cfg.dtype if cfg.dtype != "auto" else ("bf16" if cpu_has_bf16() else "fp32")
    model_path = resolve_model_path(cfg.model)
    records = read_records(cfg.rollouts)[: cfg.rollouts_n]
    random.Random(0).shuffle(records)
    n_val = max(1, round(cfg.val_fraction * len(records)))
    tok = load_tokenizer(model_path)
    train = RolloutDataset(records[n_val:], tok, cfg.max_length)
    val = RolloutDataset(records[:n_val], tok, cfg.max_length)
    pooled = RolloutDataset.concat(train, val)
    collate = StepCollator(tok.pad_token_id)
    model = ProgressEstimator.create(
        EstimatorConfig(model_path, head="mlp", backbone="frozen", compute_dtype=dtype)
    )
    tokens = sum(len(x["input_ids"]) for x in pooled.items)
    print(f"{len(records)} rollouts ({len(train)} train / {len(val)} val), {tokens} tokens, {dtype}, "
          f"{torch.get_num_threads()} threads")  # fmt: skip

    def before() -> None:
        cache_features(model, train, collate)
        predict(model, train, collate)
        predict(model, val, collate)
        estimate_step_values(model, tok, records, max_length=cfg.max_length)

    def store() -> None:
        with tempfile.TemporaryDirectory() as d:
            feats, _ = cache_features(model, pooled, collate)
            save_features(
                d, model_path, dtype, {feature_key(x): f for x, f in zip(pooled.items, feats, strict=True)}
            )
            predict_cached(model, feats[: len(train)]), predict_cached(model, feats[len(train) :])
            known = load_features(d, model_path, dtype)
            counts: dict[str, int] = {}
            estimate_step_values(
                model, tok, records, max_length=cfg.max_length, features=known, counts=counts
            )
            assert counts["computed"] == len(records) - len(pooled), (
                counts
            )  # every usable rollout from the store

    seconds: dict[str, list[float]] = {"before": [], "store": []}
    for r in range(cfg.repeats):
        for name, fn in (("before", before), ("store", store)):
            t0 = time.time()
            fn()
            seconds[name].append(round(time.time() - t0, 1))
            print(f"repeat {r + 1}: {name} {seconds[name][-1]} s")
    ratio = [round(b / s, 2) for b, s in zip(seconds["before"], seconds["store"], strict=True)]
    print(f"before / store: {ratio}")
    if cfg.output:
        write_json_atomic(
            Path(cfg.output),
            {"command": command_line(), "config": asdict(cfg), "dtype": dtype, "threads": torch.get_num_threads(),
             "machine": platform.machine(), "cpu_bf16": cpu_has_bf16(), "rollouts": len(records), "tokens": tokens,
             "seconds": seconds, "before_over_store": ratio},
        )  # fmt: skip


if __name__ == "__main__":
    main()
