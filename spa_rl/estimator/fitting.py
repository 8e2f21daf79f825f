"""Fitting the progress estimator: the rollout dataset, the frozen-backbone fast path (features read once,
the head fitted on them), prediction and the regression report, and K-fold cross-fitting by task (each
rollout's c_t from a fold estimator that never saw its task). prm/train.py is the recipe around these."""

from __future__ import annotations

import copy
import gc
import json
import math
import random
import shutil
import time
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch.utils.data import DataLoader, Dataset
from transformers import Trainer, TrainingArguments, set_seed

from spa_rl.agent.schema import command_line, read_records, write_json_atomic
from spa_rl.estimator.data import encode_rollout
from spa_rl.estimator.feature_store import feature_key
from spa_rl.estimator.model import EstimatorConfig, ProgressEstimator
from spa_rl.training import (
    ListDataset,
    last_checkpoint,
    publish_dir,
    write_log_history,
)


class RolloutDataset(Dataset):
    """Encoded rollouts (a JSONL path or records); rollouts with no step inside ``max_length`` are left
    out, and ``records`` stays aligned with ``items``."""

    def __init__(self, source, tokenizer, max_length: int):
        records = read_records(source) if isinstance(source, (str, Path)) else list(source)
        encoded = [(r, encode_rollout(tokenizer, r, max_length)) for r in records]
        self.records = [r for r, x in encoded if x["step_pos"]]
        self.items = [x for _, x in encoded if x["step_pos"]]

    @classmethod
    def concat(cls, *parts: RolloutDataset) -> RolloutDataset:
        out = cls.__new__(cls)
        out.records = [r for p in parts for r in p.records]
        out.items = [x for p in parts for x in p.items]
        return out

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        return self.items[i]


@torch.no_grad()
def predict(model: ProgressEstimator, data: Dataset, collate, batch_size: int = 4) -> list[float]:
    model.eval()
    device = next(model.parameters()).device
    preds = []
    for batch in DataLoader(data, batch_size=batch_size, collate_fn=collate):
        batch = {k: v.to(device) for k, v in batch.items() if k != "target"}
        preds += model(**batch)["prediction"].tolist()
    return preds


def cache_features(
    model: ProgressEstimator, data: Dataset, collate, known: Mapping[str, torch.Tensor] | None = None
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """The frozen backbone's last hidden state at every step position, per rollout (fp32, computed in the
    estimator's compute dtype as at inference), and the targets. ``known``: stored features of this
    backbone and dtype (spa_rl/estimator/feature_store.py), used instead of reading the backbone."""
    model.eval()
    feats, targets = [], []
    with torch.no_grad():
        for i in range(len(data)):
            b = collate([data[i]])
            f = known.get(feature_key(data[i])) if known else None
            if f is None:
                hidden = model.backbone_hidden(b["input_ids"], b["attention_mask"])
                f = hidden[b["step_index"][:, 0], b["step_index"][:, 1]]
            feats.append(f)
            targets.append(b["target"][0])
    return feats, targets


def fit_head(model: ProgressEstimator, feats: list, targets: list, args) -> list[dict]:
    """Fit the head alone on cached features (AdamW, the run's lr / epochs / batch size / weight decay)."""
    opt = torch.optim.AdamW(model.head.parameters(), lr=args.learning_rate, weight_decay=args.weight_decay)
    g = torch.Generator().manual_seed(args.seed)
    history, bs = [], args.per_device_train_batch_size
    epochs = math.ceil(args.num_train_epochs)
    for epoch in range(epochs):
        order = torch.randperm(len(feats), generator=g).tolist()
        total = 0.0
        for s in range(0, len(order), bs):
            idx = order[s : s + bs]
            preds = torch.stack([model.head_values(feats[i]).sum() for i in idx])
            loss = torch.mean((preds - torch.stack([targets[i] for i in idx])) ** 2)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        if epoch % max(1, args.logging_steps) == 0 or epoch == epochs - 1:
            history.append({"epoch": epoch + 1, "loss": total / len(order)})
            print(history[-1])
    return history


@torch.no_grad()
def predict_cached(model: ProgressEstimator, feats: list) -> list[float]:
    return [model.head_values(f).sum().item() for f in feats]


def regression_report(
    preds: list[float], targets: list[float], baseline: float | list[float], baseline_name: str | None = None
) -> dict:
    """MSE of ``preds`` against ``targets`` and against ``baseline`` (one number for every rollout, or
    one per rollout), and the Pearson correlation of ``preds`` with ``targets``."""
    n = len(targets)
    if n == 0:
        return {"n": 0}
    base = [baseline] * n if isinstance(baseline, (int, float)) else list(baseline)
    mse = sum((p - t) ** 2 for p, t in zip(preds, targets, strict=True)) / n
    base_mse = sum((b - t) ** 2 for b, t in zip(base, targets, strict=True)) / n
    mp, mt = sum(preds) / n, sum(targets) / n
    cov = sum((p - mp) * (t - mt) for p, t in zip(preds, targets, strict=True))
    sp = math.sqrt(sum((p - mp) ** 2 for p in preds))
    st = math.sqrt(sum((t - mt) ** 2 for t in targets))
    return {
        "n": n,
        "mse": mse,
        "baseline_mse": base_mse,
        "baseline": baseline_name or f"predict the mean training reward ({baseline:.4f})",
        "beats_baseline": mse < base_mse,
        "pearson_r": cov / (sp * st) if sp > 0 and st > 0 else None,
        "mean_reward": mt,
    }


# ---------------------------------------------------------------------------------------------------
# K-fold cross-fitting by task


def assign_folds(task_ids, k: int, seed: int) -> dict[str, int]:
    """``{task_id: fold}``: the sorted task ids shuffled with ``seed`` and dealt round-robin into ``k``
    folds, so every rollout of a task lands in one fold and every fold has a task."""
    tasks = sorted(set(task_ids))
    if k < 2 or k > len(tasks):
        raise ValueError(bad_folds_message(k, len(tasks)))
    random.Random(seed).shuffle(tasks)
    return {t: i % k for i, t in enumerate(tasks)}


def bad_folds_message(k: int, n_tasks: int | None) -> str:
    have = "" if n_tasks is None else f"; the data has {n_tasks} tasks"
    return (
        f"--cross_fit_folds {k}: give 0 (off, the single in-sample estimator) or a fold count K with "
        f"2 <= K <= the number of tasks in train.jsonl + val.jsonl{have}"
    )


def folds_plan(fold_of: dict[str, int], k: int, seed: int, cfg: EstimatorConfig, args) -> dict:
    """What ``folds/folds.json`` records; finished folds of an interrupted run are reused only when the
    plan is the same."""
    return {
        "folds": k,
        "seed": seed,
        "estimator": asdict(cfg),
        "training": {
            "learning_rate": args.learning_rate,
            "num_train_epochs": args.num_train_epochs,
            "per_device_train_batch_size": args.per_device_train_batch_size,
            "weight_decay": args.weight_decay,
        },
        "task_fold": dict(sorted(fold_of.items())),
    }


def folds_complete(folds_dir: Path, k: int, seed: int) -> bool:
    """``folds_dir`` holds a finished cross-fit with ``k`` folds assigned with ``seed``."""
    f = folds_dir / "folds.json"
    if not f.exists():
        return False
    plan = json.loads(f.read_text())
    return plan.get("folds") == k and plan.get("seed") == seed


def _same_plan(a: dict, b: dict) -> bool:
    keys = ("folds", "seed", "estimator", "training", "task_fold")
    return all(a.get(x) == b.get(x) for x in keys)


def cross_fit(
    cfg: EstimatorConfig,
    data: RolloutDataset,
    fold_of: dict[str, int],
    k: int,
    args: TrainingArguments,
    collate,
    out: Path,
    frozen: tuple[ProgressEstimator, list, list] | None = None,
) -> dict | None:
    """Train the K fold estimators into ``<out>/estimator/folds`` (through ``<out>/estimator_folds.partial``,
    where finished folds of an interrupted run with the same plan are kept) and return the ``cross_fit``
    report: every rollout predicted by the fold estimator that never saw its task. ``frozen``: the
    backbone (shared by every fold: only the heads are fitted) and its cached features of ``data``.
    Returns None in the processes other than the main one."""
    t0 = time.time()
    tmp, final = out / "estimator_folds.partial", out / "estimator" / "folds"
    plan = folds_plan(fold_of, k, args.seed, cfg, args)
    main_process = args.process_index == 0
    with args.main_process_first(desc="cross-fit folder"):
        old = tmp / "folds.json"
        if main_process and tmp.exists():
            if not (old.exists() and _same_plan(json.loads(old.read_text()), plan)):
                shutil.rmtree(tmp)  # another plan's folds: start again
        if main_process:
            tmp.mkdir(parents=True, exist_ok=True)
            write_json_atomic(tmp / "folds.json", {"command": command_line(), **plan})
    done = {f for f in range(k) if (tmp / f"fold{f}").is_dir()}  # finished by an interrupted run
    targets = [x["target"] for x in data.items]
    preds, baselines = [0.0] * len(data), [0.0] * len(data)
    for f in range(k):
        train_idx = [i for i, r in enumerate(data.records) if fold_of[r.task_id] != f]
        held = [i for i, r in enumerate(data.records) if fold_of[r.task_id] == f]
        if not train_idx:
            raise SystemExit(f"fold {f}: no usable rollout outside the fold's tasks to train on")
        fold_dir = tmp / f"fold{f}"
        what = "finished earlier, reused" if f in done else f"train on {len(train_idx)} rollouts"
        print(f"[cross-fit] fold{f} of {k}: {what}, hold out {len(held)}")
        set_seed(args.seed + f)
        if frozen is not None:
            base, feats, feat_targets = frozen
            model = ProgressEstimator(cfg, base.lm)  # the shared frozen backbone, a fresh head
            if f in done:
                model.head.load_state_dict(load_file(fold_dir / "head.safetensors"))
            else:
                history = fit_head(
                    model, [feats[i] for i in train_idx], [feat_targets[i] for i in train_idx], args
                )
            fold_preds = predict_cached(model, [feats[i] for i in held])
        else:
            if f in done:
                model = ProgressEstimator.load(fold_dir).to(args.device)
            else:
                fold_args = copy.copy(args)
                fold_args.output_dir = str(out / "checkpoints" / f"fold{f}")
                trainer = Trainer(
                    model=ProgressEstimator.create(cfg),
                    args=fold_args,
                    train_dataset=ListDataset([data.items[i] for i in train_idx]),
                    data_collator=collate,
                )
                trainer.train(resume_from_checkpoint=last_checkpoint(fold_args.output_dir))
                history = trainer.state.log_history
                model = trainer.accelerator.unwrap_model(trainer.model)
                del trainer
            fold_preds = predict(model, ListDataset([data.items[i] for i in held]), collate)
        if main_process and f not in done:
            part = tmp / f"fold{f}.partial"
            shutil.rmtree(part, ignore_errors=True)
            model.save(part)
            write_log_history(part / "train_log.jsonl", history)
            part.replace(fold_dir)
        mean_other = sum(targets[i] for i in train_idx) / len(train_idx)
        for i, p in zip(held, fold_preds, strict=True):
            preds[i], baselines[i] = p, mean_other
        del model
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    if not main_process:
        return None
    publish_dir(tmp, final)
    rep = regression_report(preds, targets, baselines, "per fold, predict the mean reward of the other folds")
    rep.update(folds=k, tasks=len(fold_of), seed=args.seed, seconds=round(time.time() - t0, 1))
    rep["predictions"] = [
        {"task_id": r.task_id, "rollout": r.rollout, "fold": fold_of[r.task_id], "reward": t, "prediction": p}
        for r, t, p in zip(data.records, targets, preds, strict=True)
    ]
    return rep
