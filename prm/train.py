"""Train the progress estimator (stage 3): per-step values whose sum regresses the final reward,
L = mean over rollouts of (sum_t c_t - R)^2.

    python prm/train.py --data-dir runs/demo/alfworld/prm_data --model runs/demo/alfworld/sft/model \\
        --output-dir runs/demo/alfworld/estimator --head mlp --backbone lora --num-train-epochs 1

Every Hugging Face ``TrainingArguments`` flag works (``--deepspeed prm/configs/ds_zero2.json`` for the
paper's setting). Writes ``<output_dir>/estimator`` (safetensors + config), ``train_log.jsonl``, and
``eval.json``: held-out MSE against predicting the mean training reward, and the correlation of the
prediction with R. A frozen backbone (``--backbone frozen``) reads each rollout once: its features are
cached, the head is fitted on them, and they are kept in ``<output_dir>/features/`` for ``prm/infer.py
--feature-cache`` and for a rerun (spa_rl/estimator/feature_store.py).

``--cross-fit-folds K`` (K >= 2) also trains K estimators, K-fold by task on train.jsonl + val.jsonl
pooled, into ``<output_dir>/estimator/folds/fold<k>/`` with the assignment in ``folds/folds.json``;
``prm/infer.py`` then gives every rollout its c_t from the fold that never saw its task, and
``eval.json`` gets a ``cross_fit`` section (out-of-fold MSE and correlation over every rollout).
"""

from __future__ import annotations

import contextlib
import gc
import json
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from transformers import Trainer, TrainingArguments, set_seed

from spa_rl.agent.schema import command_line, read_records, write_json_atomic
from spa_rl.cli import parse
from spa_rl.estimator.data import StepCollator
from spa_rl.estimator.feature_store import feature_key, load_features, save_features
from spa_rl.estimator.fitting import (
    RolloutDataset,
    assign_folds,
    bad_folds_message,
    cache_features,
    cross_fit,
    fit_head,
    folds_complete,
    predict,
    predict_cached,
    regression_report,
)
from spa_rl.estimator.model import BACKBONES, HEADS, EstimatorConfig, ProgressEstimator
from spa_rl.fingerprint import check_fingerprint, locked, make_fingerprint, settings_of
from spa_rl.launch import refuse_zero3
from spa_rl.models.loading import load_tokenizer, pick_device
from spa_rl.models.paths import resolve_model_path
from spa_rl.models.precision import configure_training_precision, cpu_trainer_argv, dtype_name
from spa_rl.tracking import Tracker, trainer_argv, trainer_logging_dir
from spa_rl.training import (
    TRAINING_SETTINGS,
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
    save_features: bool = field(
        default=True,
        metadata={
            "help": "frozen backbone: keep its features of every rollout in <output_dir>/features/ (about "
            "hidden size x 4 bytes per step), so prm/infer.py (--feature-cache) and a rerun that adds folds "
            "read each rollout through the backbone once; --no_save_features leaves no store"
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


def main() -> None:
    est_args, args = parse(
        EstimatorArgs, TrainingArguments, argv=cpu_trainer_argv(trainer_argv(sys.argv[1:])), doc=__doc__
    )  # one line names a refused flag
    est_args.model = resolve_model_path(est_args.model)  # a typo'd folder fails here, not on the Hub
    compute_dtype = configure_training_precision(args, est_args.dtype)
    # The main process saves the head and backbone itself (publish_main): it needs them whole.
    refuse_zero3(args.deepspeed, "the estimator", "it saves its weights from one process; ZeRO-3 shards them")
    args.remove_unused_columns = False
    args.label_names = ["target"]
    out = Path(args.output_dir)
    final = out / "estimator"
    k = est_args.cross_fit_folds  # EstimatorArgs refused 1 and negative counts
    # The cross-fit folds are not in the fingerprint: switching them on for a finished estimator trains
    # the folds only (folds_complete checks their count and seed).
    settings = settings_of(est_args, {"data_dir", "model", "overwrite", "cross_fit_folds", "save_features"})
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
            if args.process_index == 0 and not (out / "eval.json").exists():
                evaluate_published(est_args, out, final)
            return
        train_estimator(est_args, args, out, final, compute_dtype, train_main, train_folds)


def train_estimator(
    est_args, args, out: Path, final: Path, compute_dtype, train_main: bool, train_folds: bool
):
    k = est_args.cross_fit_folds
    trainer_logging_dir(args, out)
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
    frozen, feature_info = None, {}
    model = ProgressEstimator.create(cfg) if train_main or cfg.backbone == "frozen" else None
    main_process = args.process_index == 0  # frozen backbone: every process fits the same head; one publishes
    if cfg.backbone == "frozen":
        save = est_args.save_features and main_process
        frozen, feature_info = read_features(model, pooled, collate, out / "features", save)
    if train_main:
        n_trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        print(f"{len(train)} train / {len(val)} val rollouts; {n_trainable} trainable parameters")
        t0 = time.time()
        if frozen is not None:
            history = fit_head(model, frozen[1][: len(train)], frozen[2][: len(train)], args)
        else:
            trainer = Trainer(model=model, args=args, train_dataset=train, data_collator=collate)
            trainer.train(resume_from_checkpoint=last_checkpoint(args.output_dir))
            history, main_process = trainer.state.log_history, trainer.is_world_process_zero()
            model = trainer.accelerator.unwrap_model(trainer.model)
        seconds = time.time() - t0
        # No Trainer, so no Trainer callbacks: the frozen head's epochs go to the trackers here.
        if cfg.backbone == "frozen" and main_process:
            tracker = Tracker(",".join(args.report_to) or "none", out, out.name, asdict(cfg))
            for h in history:
                tracker.log(h["epoch"], {"loss": h["loss"]}, "train/")
            tracker.close()
        if main_process:
            extra = {"trainable_parameters": n_trainable, "train_seconds": round(seconds, 1), **feature_info}
            publish_main(model, train, val, collate, history, extra, out, frozen and frozen[1])
        if cfg.backbone != "frozen":
            del model, trainer  # the folds train their own backbones
            gc.collect()
    if train_folds:
        rep = cross_fit(cfg, pooled, fold_of, k, args, collate, out, frozen)
        if rep is not None:
            rep.update(feature_info)
            eval_path = out / "eval.json"
            ev = json.loads(eval_path.read_text()) if eval_path.exists() else {"command": command_line()}
            ev["cross_fit"] = rep
            write_json_atomic(eval_path, ev)
            print(
                f"saved {final / 'folds'}; cross-fit ({k} folds, {rep['n']} rollouts) mse {rep['mse']} "
                f"vs baseline {rep['baseline_mse']}, r={rep['pearson_r']}"
            )


def read_features(model, pooled, collate, store: Path, save: bool) -> tuple[tuple, dict]:
    """A frozen backbone is read once per rollout, for the main estimator, every fold and prm/infer.py:
    the features of ``pooled`` (train then val), from ``store`` where it holds them, and written back to
    it (``--save-features``). Returns ``(model, features, targets)`` and what eval.json records of it."""
    t0 = time.time()
    cfg = model.cfg
    known = load_features(store, cfg.base_model, cfg.compute_dtype)
    feats, targets = cache_features(model, pooled, collate, known)
    keys = [feature_key(x) for x in pooled.items]
    reused = sum(k in known for k in keys)
    if save and reused < len(keys):
        save_features(
            store, cfg.base_model, cfg.compute_dtype, {**known, **dict(zip(keys, feats, strict=True))}
        )
    info = {"feature_seconds": round(time.time() - t0, 1), "features_reused": reused, "features": len(keys)}
    print(f"backbone features of {len(keys)} rollouts: {reused} from {store}, {len(keys) - reused} read")
    return (model, feats, targets), info


def publish_main(model, train, val, collate, history, extra: dict, out: Path, feats: list | None) -> None:
    """Write ``train_log.jsonl`` and ``eval.json`` (train and val splits against predicting the mean
    training reward; from ``feats``, the frozen backbone's features of train then val, when given), then
    publish the in-sample estimator to ``<out>/estimator``. The folder comes last: its presence is what
    tells a rerun that this estimator is finished."""
    final = out / "estimator"
    write_log_history(out / "train_log.jsonl", history)
    report = write_eval(model, train, val, collate, out, extra, feats)
    tmp = out / "estimator.partial"
    model.save(tmp)
    publish_dir(tmp, final)
    v = report["val"]
    print(
        f"saved {final}; val mse {v.get('mse')} vs baseline {v.get('baseline_mse')}, r={v.get('pearson_r')}"
    )


def write_eval(model, train, val, collate, out: Path, extra: dict, feats: list | None = None) -> dict:
    targets = {name: [x["target"] for x in d.items] for name, d in (("train", train), ("val", val))}
    baseline = sum(targets["train"]) / len(targets["train"])
    if feats is not None:
        preds = {
            "train": predict_cached(model, feats[: len(train)]),
            "val": predict_cached(model, feats[len(train) :]),
        }
    else:
        preds = {name: predict(model, d, collate) for name, d in (("train", train), ("val", val))}
    report = {name: regression_report(preds[name], targets[name], baseline) for name in ("train", "val")}
    write_json_atomic(
        out / "eval.json", {"command": command_line(), "estimator": asdict(model.cfg), **extra, **report}
    )
    return report


def evaluate_published(est_args, out: Path, final: Path) -> None:
    """``eval.json`` for an estimator published by a run that stopped before writing it (older versions
    wrote it after the folder)."""
    model = ProgressEstimator.load(final).to(pick_device(None))
    tokenizer = load_tokenizer(est_args.model)
    data = {
        name: RolloutDataset(
            read_records(Path(est_args.data_dir) / f"{name}.jsonl"), tokenizer, est_args.max_length
        )
        for name in ("train", "val")
    }
    report = write_eval(
        model,
        data["train"],
        data["val"],
        StepCollator(tokenizer.pad_token_id),
        out,
        {"note": "evaluated after the fact: the training run stopped before writing eval.json"},
    )
    print(
        f"wrote {out / 'eval.json'}; val mse {report['val'].get('mse')} vs baseline "
        f"{report['val'].get('baseline_mse')}, r={report['val'].get('pearson_r')}"
    )


if __name__ == "__main__":
    main()
