"""K-fold cross-validation of the progress estimator by task (frozen backbone: features read once,
a fresh head fitted per fold). Every rollout gets a prediction from a head that never saw its task, so
small runs get a held-out MSE and correlation over all their rollouts.

    python prm/cross_validate.py --data-dir runs/demo/alfworld/estimator/data \\
        --model runs/demo/alfworld/sft/model --folds 4 --epochs 300 --lr 1e-3 \\
        --output runs/demo/alfworld/estimator/cv.json
"""

from __future__ import annotations

import argparse
import random
import time
from types import SimpleNamespace

import torch
from train import RolloutDataset, cache_features, fit_head, predict_cached, regression_report

from eval_agent.backends.hf import load_tokenizer
from eval_agent.progress import EstimatorConfig, ProgressEstimator
from eval_agent.progress_data import StepCollator
from eval_agent.schema import command_line, write_json_atomic
from eval_agent.training import ListDataset


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--data-dir", required=True, help="prm/data_org.py output (train.jsonl + val.jsonl are pooled)"
    )
    ap.add_argument("--model", required=True)
    ap.add_argument("--head", default="mlp")
    ap.add_argument("--mlp-hidden", type=int, default=256)
    ap.add_argument("--folds", type=int, default=4)
    ap.add_argument("--epochs", type=int, default=300)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--max-length", type=int, default=4096)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--output", required=True)
    args = ap.parse_args()

    t0 = time.time()
    tok = load_tokenizer(args.model)
    parts = [RolloutDataset(f"{args.data_dir}/{n}.jsonl", tok, args.max_length) for n in ("train", "val")]
    recs = [r for p in parts for r in p.records]
    items = [x for p in parts for x in p.items]
    tasks = sorted({r.task_id for r in recs})
    random.Random(args.seed).shuffle(tasks)
    fold_of = {t: i % args.folds for i, t in enumerate(tasks)}
    collate = StepCollator(tok.pad_token_id)
    cfg = EstimatorConfig(args.model, head=args.head, backbone="frozen", mlp_hidden=args.mlp_hidden)
    base = ProgressEstimator.create(cfg)
    targets = [x["target"] for x in items]
    feats, target_t = cache_features(base, ListDataset(items), collate)  # the backbone is read once
    preds, baselines = [0.0] * len(items), [0.0] * len(items)
    hp = SimpleNamespace(learning_rate=args.lr, weight_decay=0.0, seed=args.seed,
                         per_device_train_batch_size=args.batch_size, num_train_epochs=args.epochs, logging_steps=10**9)  # fmt: skip
    for k in range(args.folds):
        held = [i for i, r in enumerate(recs) if fold_of[r.task_id] == k]
        train = [i for i, r in enumerate(recs) if fold_of[r.task_id] != k]
        if not held or not train:
            continue
        torch.manual_seed(args.seed + k)
        model = ProgressEstimator(cfg, base.lm)  # shares the frozen backbone, fresh head
        fit_head(model, [feats[i] for i in train], [target_t[i] for i in train], hp)
        for i, p in zip(held, predict_cached(model, [feats[i] for i in held]), strict=True):
            preds[i] = p
            baselines[i] = sum(targets[j] for j in train) / len(train)
    rep = regression_report(preds, targets, 0.0)
    rep["baseline_mse"] = sum((b - t) ** 2 for b, t in zip(baselines, targets, strict=True)) / len(targets)
    rep["baseline"] = "per fold, predict the mean reward of the other folds"
    rep["beats_baseline"] = rep["mse"] < rep["baseline_mse"]
    out = {"command": command_line(), "folds": args.folds, "tasks": len(tasks), "seconds": round(time.time() - t0, 1),
           "held_out": rep, "predictions": [{"task_id": r.task_id, "rollout": r.rollout, "reward": t, "prediction": p}
                                            for r, t, p in zip(recs, targets, preds, strict=True)]}  # fmt: skip
    write_json_atomic(args.output, out)
    print({k: rep[k] for k in ("n", "mse", "baseline_mse", "beats_baseline", "pearson_r")})


if __name__ == "__main__":
    main()
