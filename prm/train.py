"""Train the progress estimator (stage 3): per-step values whose sum regresses the final reward,
L = mean over rollouts of (sum_t c_t - R)^2.

    python prm/train.py --data_dir runs/demo/alfworld/prm_data --model runs/demo/alfworld/sft/model \\
        --output_dir runs/demo/alfworld/estimator --head mlp --backbone lora --num_train_epochs 1

Every Hugging Face ``TrainingArguments`` flag works (``--deepspeed prm/configs/ds_zero2.json`` for the
paper's setting). Writes ``<output_dir>/estimator`` (safetensors + config), ``train_log.jsonl``, and
``eval.json``: held-out MSE against predicting the mean training reward, and the correlation of the
prediction with R.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset
from transformers import HfArgumentParser, Trainer, TrainingArguments, set_seed

from eval_agent.backends.hf import load_tokenizer
from eval_agent.progress import EstimatorConfig, ProgressEstimator
from eval_agent.progress_data import StepCollator, encode_rollout
from eval_agent.schema import command_line, read_records, write_json_atomic
from eval_agent.training import last_checkpoint, make_cpu_safe, publish_dir, write_log_history


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
    overwrite: bool = field(default=False, metadata={"help": "train again even if the estimator exists"})


class RolloutDataset(Dataset):
    def __init__(self, path: Path, tokenizer, max_length: int):
        self.records = read_records(path)
        self.items = [encode_rollout(tokenizer, r, max_length) for r in self.records]
        self.items = [x for x in self.items if x["step_pos"]]

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
    """The frozen backbone's last hidden state at every step position, per rollout, and the targets."""
    model.eval()
    feats, targets = [], []
    with torch.no_grad():
        for i in range(len(data)):
            b = collate([data[i]])
            hidden = model._trunk()(
                input_ids=b["input_ids"], attention_mask=b["attention_mask"]
            ).last_hidden_state
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


def regression_report(preds: list[float], targets: list[float], baseline: float) -> dict:
    n = len(targets)
    if n == 0:
        return {"n": 0}
    mse = sum((p - t) ** 2 for p, t in zip(preds, targets, strict=True)) / n
    base = sum((baseline - t) ** 2 for t in targets) / n
    mp, mt = sum(preds) / n, sum(targets) / n
    cov = sum((p - mp) * (t - mt) for p, t in zip(preds, targets, strict=True))
    sp = math.sqrt(sum((p - mp) ** 2 for p in preds))
    st = math.sqrt(sum((t - mt) ** 2 for t in targets))
    return {
        "n": n,
        "mse": mse,
        "baseline_mse": base,
        "baseline": f"predict the mean training reward ({baseline:.4f})",
        "beats_baseline": mse < base,
        "pearson_r": cov / (sp * st) if sp > 0 and st > 0 else None,
        "mean_reward": mt,
    }


def main() -> None:
    est_args, args = HfArgumentParser((EstimatorArgs, TrainingArguments)).parse_args_into_dataclasses()
    args = make_cpu_safe(args)
    args.remove_unused_columns = False
    args.label_names = ["target"]
    out = Path(args.output_dir)
    final = out / "estimator"
    if (final / "estimator_config.json").exists() and not est_args.overwrite:
        print(f"{final} exists; pass --overwrite to train again")
        return
    args.output_dir = str(out / "checkpoints")
    set_seed(args.seed)

    tokenizer = load_tokenizer(est_args.model)
    data_dir = Path(est_args.data_dir)
    train = RolloutDataset(data_dir / "train.jsonl", tokenizer, est_args.max_length)
    val = RolloutDataset(data_dir / "val.jsonl", tokenizer, est_args.max_length)
    if len(train) == 0:
        raise SystemExit(f"{data_dir / 'train.jsonl'} has no usable rollouts")
    cfg = EstimatorConfig(
        base_model=est_args.model,
        head=est_args.head,
        backbone=est_args.backbone,
        mlp_hidden=est_args.mlp_hidden,
        lora_r=est_args.lora_r,
        lora_alpha=est_args.lora_alpha,
    )
    model = ProgressEstimator.create(cfg)
    n_trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    print(f"{len(train)} train / {len(val)} val rollouts; {n_trainable} trainable parameters")
    collate = StepCollator(tokenizer.pad_token_id)
    t0 = time.time()
    if cfg.backbone == "frozen":
        history = train_head_on_cached_features(model, train, collate, args)
        main_process = True
    else:
        trainer = Trainer(model=model, args=args, train_dataset=train, data_collator=collate)
        trainer.train(resume_from_checkpoint=last_checkpoint(args.output_dir))
        history, main_process = trainer.state.log_history, trainer.is_world_process_zero()
        model = trainer.accelerator.unwrap_model(trainer.model)
    seconds = time.time() - t0

    if main_process:
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
