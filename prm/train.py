"""Train the progress estimator (stage 3): per-step values whose sum regresses the final reward,
L = mean over rollouts of (sum_t c_t - R)^2.

    python prm/train.py --data-dir runs/demo/alfworld/prm_data --model runs/demo/alfworld/sft/model \\
        --output-dir runs/demo/alfworld/estimator --head mlp --backbone lora --num-train-epochs 1

Every Hugging Face ``TrainingArguments`` flag works (``--deepspeed prm/configs/ds_zero2.json`` for the
paper's setting). Writes ``<output_dir>/estimator`` (safetensors + config), ``train_log.jsonl``, and
``eval.json``: held-out MSE against predicting the mean training reward, and the correlation of the
prediction with R.

``--cross-fit-folds K`` (K >= 2) also trains K estimators, K-fold by task on train.jsonl + val.jsonl
pooled, into ``<output_dir>/estimator/folds/fold<k>/`` with the assignment in ``folds/folds.json``;
``prm/infer.py`` then gives every rollout its c_t from the fold that never saw its task, and
``eval.json`` gets a ``cross_fit`` section (out-of-fold MSE and correlation over every rollout).
"""

from __future__ import annotations

import contextlib
import copy
import gc
import json
import math
import random
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch.utils.data import DataLoader, Dataset
from transformers import Trainer, TrainingArguments, set_seed

from spa_rl.agent.schema import command_line, read_records, write_json_atomic
from spa_rl.cli import parse
from spa_rl.estimator.data import StepCollator, encode_rollout
from spa_rl.estimator.model import BACKBONES, HEADS, EstimatorConfig, ProgressEstimator
from spa_rl.fingerprint import check_fingerprint, locked, make_fingerprint, settings_of
from spa_rl.models.loading import load_tokenizer
from spa_rl.models.paths import resolve_model_path
from spa_rl.models.precision import configure_training_precision, dtype_name
from spa_rl.training import (
    TRAINING_SETTINGS,
    ListDataset,
    last_checkpoint,
    publish_dir,
    write_log_history,
)
from spa_rl.validate import choice, positive_int


@dataclass
class EstimatorArgs:
    data_dir: str = field(metadata={"help": "folder with train.jsonl / val.jsonl (prm/data_org.py)"})
    model: str = field(metadata={"help": "backbone: the SFT model folder"})
    head: str = field(default="mlp", metadata={"help": "mlp (paper) | vocab-linear (public code)"})
    backbone: str = field(default="lora", metadata={"help": "frozen | lora | full"})
    mlp_hidden: int = field(default=256)
    lora_r: int = field(default=8)
    lora_alpha: int = field(default=16)
    max_length: int = field(default=4096)
    overwrite: bool = field(
        default=False,
        metadata={
            "help": "remove <output_dir>'s contents (estimator, folds, checkpoints; not the data folder) and "
            "train from the start; without it a rerun skips or adds missing folds, and a folder written with "
            "other settings is refused"
        },
    )
    dtype: str = field(
        default="auto",
        metadata={
            "help": "compute dtype: auto (bf16 on a GPU or a CPU with bf16 instructions, else fp32) | "
            "bf16 | fp32; bf16 runs the forward pass under autocast with fp32 master weights"
        },
    )
    cross_fit_folds: int = field(
        default=0,
        metadata={
            "help": "0 = off: the paper's single estimator, which scores the very rollouts it was trained "
            "on (in-sample c_t). K >= 2 = K-fold cross-fitting by task: besides the usual estimator, K "
            "estimators trained on train.jsonl + val.jsonl pooled, each without one fold of tasks "
            "(folds: a shuffle of the task ids seeded with --seed), saved under <output_dir>/estimator/"
            "folds/; prm/infer.py then scores each rollout with the fold that never saw its task, and "
            "eval.json gets the out-of-fold MSE ('cross_fit')"
        },
    )

    def __post_init__(self) -> None:
        # Refused by flag at parse time, before any data or model is loaded.
        choice("--head", self.head, HEADS)
        choice("--backbone", self.backbone, BACKBONES)
        for name in ("mlp_hidden", "lora_r", "lora_alpha", "max_length"):
            positive_int(f"--{name}", getattr(self, name))
        k = self.cross_fit_folds
        if not isinstance(k, int) or k < 0 or k == 1:
            raise ValueError(bad_folds_message(k, None))


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
    model: ProgressEstimator, data: Dataset, collate
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """The frozen backbone's last hidden state at every step position, per rollout (fp32, computed in the
    estimator's compute dtype as at inference), and the targets."""
    model.eval()
    feats, targets = [], []
    with torch.no_grad():
        for i in range(len(data)):
            b = collate([data[i]])
            hidden = model.backbone_hidden(b["input_ids"], b["attention_mask"])
            feats.append(hidden[b["step_index"][:, 0], b["step_index"][:, 1]])
            targets.append(b["target"][0])
    return feats, targets


def fit_head(model: ProgressEstimator, feats: list, targets: list, args) -> list[dict]:
    """Fit the head alone on cached features (AdamW, the run's lr / epochs / batch size / weight decay)."""
    head_in = model.lm.get_output_embeddings() if model.cfg.head == "vocab-linear" else torch.nn.Identity()
    opt = torch.optim.AdamW(model.head.parameters(), lr=args.learning_rate, weight_decay=args.weight_decay)
    g = torch.Generator().manual_seed(args.seed)
    history, bs = [], args.per_device_train_batch_size
    epochs = math.ceil(args.num_train_epochs)
    for epoch in range(epochs):
        order = torch.randperm(len(feats), generator=g).tolist()
        total = 0.0
        for s in range(0, len(order), bs):
            idx = order[s : s + bs]
            preds = torch.stack([model.head(head_in(feats[i])).squeeze(-1).sum() for i in idx])
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
    head_in = model.lm.get_output_embeddings() if model.cfg.head == "vocab-linear" else torch.nn.Identity()
    return [model.head(head_in(f)).squeeze(-1).sum().item() for f in feats]


def train_head_on_cached_features(
    model: ProgressEstimator, data: Dataset, collate, args: TrainingArguments
) -> list[dict]:
    """Frozen backbone: read the backbone once at every step position, then fit the head alone on the
    cached features for many cheap epochs."""
    return fit_head(model, *cache_features(model, data, collate), args)


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


def main() -> None:
    est_args, args = parse(EstimatorArgs, TrainingArguments, doc=__doc__)  # one line names a refused flag
    est_args.model = resolve_model_path(est_args.model)  # a typo'd folder fails here, not on the Hub
    compute_dtype = configure_training_precision(args, est_args.dtype)
    args.remove_unused_columns = False
    args.label_names = ["target"]
    out = Path(args.output_dir)
    final = out / "estimator"
    k = est_args.cross_fit_folds  # EstimatorArgs refused 1 and negative counts
    # The cross-fit folds are not in the fingerprint: switching them on for a finished estimator trains
    # the folds only (folds_complete checks their count and seed).
    settings = settings_of(est_args, {"data_dir", "model", "overwrite", "cross_fit_folds"})
    settings |= {k: getattr(args, k, None) for k in TRAINING_SETTINGS} | {"dtype": dtype_name(compute_dtype)}
    fp = make_fingerprint("estimator", settings, {"data": est_args.data_dir, "model": est_args.model})
    with contextlib.ExitStack() as stack:
        with args.main_process_first(desc="output folder"):
            if args.process_index == 0:
                stack.enter_context(locked(out))
            # The estimator data folder (prm/data_org.py) usually lives inside this folder.
            foreign = (
                frozenset({Path(est_args.data_dir).name})
                if Path(est_args.data_dir).parent == out
                else frozenset()
            )
            check_fingerprint(
                out, fp, est_args.overwrite and args.process_index == 0, "an estimator", foreign
            )
        train_main = not (final / "estimator_config.json").exists()
        train_folds = k >= 2 and not folds_complete(final / "folds", k, args.seed)
        if not train_main and not train_folds:
            print(f"{final} exists with these settings; pass --overwrite to train again")
            return
        train_estimator(est_args, args, out, final, compute_dtype, train_main, train_folds)


def train_estimator(
    est_args, args, out: Path, final: Path, compute_dtype, train_main: bool, train_folds: bool
):
    k = est_args.cross_fit_folds
    args.output_dir = str(out / "checkpoints")
    set_seed(args.seed)

    data_dir = Path(est_args.data_dir)
    records = {name: read_records(data_dir / f"{name}.jsonl") for name in ("train", "val")}
    fold_of = None
    if train_folds:
        try:
            fold_of = assign_folds([r.task_id for rs in records.values() for r in rs], k, args.seed)
        except ValueError as e:
            raise SystemExit(str(e)) from None
    tokenizer = load_tokenizer(est_args.model)
    train = RolloutDataset(records["train"], tokenizer, est_args.max_length)
    val = RolloutDataset(records["val"], tokenizer, est_args.max_length)
    if len(train) == 0:
        raise SystemExit(f"{data_dir / 'train.jsonl'} has no usable rollouts")
    cfg = EstimatorConfig(
        base_model=est_args.model,
        head=est_args.head,
        backbone=est_args.backbone,
        mlp_hidden=est_args.mlp_hidden,
        lora_r=est_args.lora_r,
        lora_alpha=est_args.lora_alpha,
        compute_dtype=dtype_name(compute_dtype),
    )
    collate = StepCollator(tokenizer.pad_token_id)
    pooled = RolloutDataset.concat(train, val)
    frozen, fold_seconds = None, 0.0
    model = ProgressEstimator.create(cfg) if train_main or cfg.backbone == "frozen" else None
    if train_folds and cfg.backbone == "frozen":
        t0 = time.time()  # the backbone is read once, for the main estimator and every fold
        frozen = (model, *cache_features(model, pooled, collate))
        fold_seconds = time.time() - t0
    main_process = True
    if train_main:
        n_trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        print(f"{len(train)} train / {len(val)} val rollouts; {n_trainable} trainable parameters")
        t0 = time.time()
        if cfg.backbone == "frozen" and frozen is not None:
            history = fit_head(model, frozen[1][: len(train)], frozen[2][: len(train)], args)
        elif cfg.backbone == "frozen":
            history = train_head_on_cached_features(model, train, collate, args)
        else:
            trainer = Trainer(model=model, args=args, train_dataset=train, data_collator=collate)
            trainer.train(resume_from_checkpoint=last_checkpoint(args.output_dir))
            history, main_process = trainer.state.log_history, trainer.is_world_process_zero()
            model = trainer.accelerator.unwrap_model(trainer.model)
        seconds = time.time() - t0
        if main_process:
            publish_main(model, cfg, train, val, collate, history, n_trainable, seconds, out)
        if cfg.backbone != "frozen":
            del model, trainer  # the folds train their own backbones
            gc.collect()
    if train_folds:
        rep = cross_fit(cfg, pooled, fold_of, k, args, collate, out, frozen)
        if rep is not None:
            rep["seconds"] = round(rep["seconds"] + fold_seconds, 1)
            eval_path = out / "eval.json"
            ev = json.loads(eval_path.read_text()) if eval_path.exists() else {"command": command_line()}
            ev["cross_fit"] = rep
            write_json_atomic(eval_path, ev)
            print(
                f"saved {final / 'folds'}; cross-fit ({k} folds, {rep['n']} rollouts) mse {rep['mse']} "
                f"vs baseline {rep['baseline_mse']}, r={rep['pearson_r']}"
            )


def publish_main(model, cfg, train, val, collate, history, n_trainable, seconds, out: Path) -> None:
    """Save the in-sample estimator to ``<out>/estimator`` and write ``train_log.jsonl`` and ``eval.json``
    (train and val splits against predicting the mean training reward)."""
    final = out / "estimator"
    tmp = out / "estimator.partial"
    model.save(tmp)
    publish_dir(tmp, final)
    write_log_history(out / "train_log.jsonl", history)
    targets = {name: [x["target"] for x in d.items] for name, d in (("train", train), ("val", val))}
    baseline = sum(targets["train"]) / len(targets["train"])
    report = {
        name: regression_report(predict(model, d, collate), targets[name], baseline)
        for name, d in (("train", train), ("val", val))
    }
    write_json_atomic(
        out / "eval.json",
        {
            "command": command_line(),
            "estimator": asdict(cfg),
            "trainable_parameters": n_trainable,
            "train_seconds": round(seconds, 1),
            **report,
        },
    )
    v = report["val"]
    print(
        f"saved {final}; val mse {v.get('mse')} vs baseline {v.get('baseline_mse')}, r={v.get('pearson_r')}"
    )


if __name__ == "__main__":
    main()
