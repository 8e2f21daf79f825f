"""Stepwise progress prediction: run the trained estimator over every exploration rollout and write
c_t for each step to a JSONL file beside the rollouts (one line per rollout).

    python prm/infer.py --estimator runs/demo/alfworld/estimator/estimator \\
        --rollouts runs/demo/alfworld/exploration/episodes.jsonl \\
        --output runs/demo/alfworld/exploration/step_values.jsonl

When the estimator folder has cross-fitted folds (``folds/folds.json``, from ``prm/train.py
--cross-fit-folds K``), each rollout's c_t comes from the fold estimator that never saw its task
(out-of-fold); a rollout of a task no fold knows is an error. ``--in-sample`` scores every rollout with
the main estimator instead (the paper's behaviour). The mode is recorded in ``<output>.info.json``.

``--feature-cache DIR``: the feature store prm/train.py kept for a frozen backbone
(``<output_dir>/features``); a rollout whose exact tokens it holds, under the same backbone and compute
dtype, skips the backbone pass. The info file records how many did.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from spa_rl.agent.schema import read_records, write_json_atomic, write_jsonl_atomic
from spa_rl.cli import arg, parse
from spa_rl.estimator.feature_store import load_features
from spa_rl.estimator.model import ProgressEstimator, estimate_step_values
from spa_rl.fingerprint import claim_file, make_fingerprint, mark_file
from spa_rl.models.loading import load_tokenizer, pick_device
from spa_rl.rewards import final_reward
from spa_rl.validate import positive_int


def fold_assignment(estimator: str | Path) -> dict | None:
    """``folds/folds.json`` of an estimator folder (``folds``: K, ``task_fold``: task id -> fold), if any."""
    path = Path(estimator) / "folds" / "folds.json"
    return json.loads(path.read_text()) if path.exists() else None


def cross_fit_values(
    estimator: str | Path,
    plan: dict,
    records: list,
    device,
    batch_size: int,
    max_length: int,
    feature_cache: str | None = None,
    counts: dict | None = None,
):
    """c_t of every record from the fold estimator that held out its task (``estimate_step_values``'s
    output, in input order). The fold estimators are loaded one at a time."""
    task_fold = plan["task_fold"]
    unknown = sorted({r.task_id for r in records} - set(task_fold))
    if unknown:
        raise SystemExit(
            f"{len(unknown)} task(s) of the rollouts are in no fold of {Path(estimator) / 'folds/folds.json'} "
            f"(e.g. {', '.join(unknown[:3])}), so no fold estimator is known to have held them out; pass "
            "--in-sample to score every rollout with the main estimator"
        )
    results: list = [None] * len(records)
    tokenizer, features = None, None
    for f in range(plan["folds"]):
        idx = [i for i, r in enumerate(records) if task_fold[r.task_id] == f]
        if not idx:
            continue
        model = ProgressEstimator.load(Path(estimator) / "folds" / f"fold{f}").to(device)
        tokenizer = tokenizer or load_tokenizer(model.cfg.base_model)
        if features is None:  # the folds share the frozen backbone: one read of the store
            features = stored_features(feature_cache, model)
        part = estimate_step_values(
            model, tokenizer, [records[i] for i in idx], batch_size, max_length, features, counts
        )
        for i, res in zip(idx, part, strict=True):
            results[i] = res
        del model
    return results


def stored_features(feature_cache: str | None, model: ProgressEstimator) -> dict:
    """The store's features when the estimator's backbone is frozen (a trained one computes others)."""
    if not feature_cache or model.cfg.backbone != "frozen":
        return {}
    return load_features(feature_cache, model.cfg.base_model, model.cfg.compute_dtype)


@dataclass
class InferConfig:
    estimator: str = arg(help="estimator folder (prm/train.py)")
    rollouts: str = arg(help="exploration JSONL")
    output: str = arg(help="step-values JSONL to write")
    batch_size: int = arg(4, "rollouts per forward pass")
    max_length: int = arg(4096, "tokens per rollout; steps past it get c_t = 0")
    device: str | None = arg(None, "torch device (default: the GPU if there is one, else the CPU)")
    in_sample: bool = arg(False, "score every rollout with the main estimator even when the folder has "
                          "cross-fitted folds (the paper's behaviour: c_t of rollouts the estimator was "
                          "trained on)")  # fmt: skip
    overwrite: bool = arg(False, "write the output again even if it is up to date")
    feature_cache: str | None = arg(None, "a frozen backbone's feature store (prm/train.py writes "
                                    "<output-dir>/features): rollouts it holds skip the backbone pass")  # fmt: skip

    def __post_init__(self) -> None:  # refused before the estimator is read
        positive_int("--batch-size", self.batch_size)
        positive_int("--max-length", self.max_length)


def main(argv: list[str] | None = None) -> None:
    cfg = parse(InferConfig, argv=argv, doc=__doc__)
    plan = None if cfg.in_sample else fold_assignment(cfg.estimator)
    mode = "in-sample" if plan is None else f"cross-fit {plan['folds']}"
    settings = {"mode": mode, "max_length": cfg.max_length}
    fp = make_fingerprint("step-values", settings, {"estimator": cfg.estimator, "rollouts": cfg.rollouts})
    with claim_file(cfg.output, fp, cfg.overwrite, redo_when_changed=True) as current:
        if current:
            print(f"{cfg.output} is up to date ({mode}); skipping")
            return
        mark_file(cfg.output, fp)
        run(cfg, plan)


def run(cfg: InferConfig, plan: dict | None) -> None:
    t0 = time.time()
    device = pick_device(cfg.device)
    records = read_records(cfg.rollouts)
    counts: dict[str, int] = {}
    if plan is None:
        mode, folds = "in-sample", 0
        model = ProgressEstimator.load(cfg.estimator).to(device)
        tokenizer = load_tokenizer(model.cfg.base_model)
        features = stored_features(cfg.feature_cache, model)
        results = estimate_step_values(
            model, tokenizer, records, cfg.batch_size, cfg.max_length, features, counts
        )
    else:
        mode, folds = f"cross-fit {plan['folds']}", plan["folds"]
        results = cross_fit_values(
            cfg.estimator, plan, records, device, cfg.batch_size, cfg.max_length, cfg.feature_cache, counts
        )
    lines = [
        json.dumps(
            {
                "task_id": r.task_id,
                "rollout": r.rollout,
                "values": c,
                "prediction": sum(c),
                "reward": final_reward(r),
                "steps_past_max_length": cut,
            }  # fmt: skip
        )
        for r, (c, cut) in zip(records, results, strict=True)
    ]
    missing = sum(cut for _, cut in results)
    out = Path(cfg.output)
    write_jsonl_atomic(out, lines)
    write_json_atomic(
        out.with_suffix(".info.json"),
        {
            "estimator": cfg.estimator,
            "rollouts": cfg.rollouts,
            "mode": mode,
            "folds": folds,
            "n": len(records),
            "steps_past_max_length": missing,
            "from_feature_cache": counts.get("cached", 0),
            "seconds": round(time.time() - t0, 1),
        },  # fmt: skip
    )
    print(
        f"wrote step values of {len(records)} rollouts to {out} ({mode}; {missing} steps past max length; "
        f"{counts.get('cached', 0)} from the feature store)"
    )


if __name__ == "__main__":
    main()
