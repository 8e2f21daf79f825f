"""SFT (behaviour cloning): fine-tune a causal LM on expert conversations, loss on the expert's
assistant turns only.

    python sft/train.py --data data/sft/alfworld_sft.json --model models/smollm2-135m-instruct \\
        --output-dir runs/demo/alfworld/sft --num-train-epochs 3 --learning-rate 2e-5 ...

Every Hugging Face ``TrainingArguments`` flag works (``--deepspeed``, ...); ``--dtype`` picks the compute
dtype (default: bf16 where the hardware has it, see spa_rl/models/precision.py). Launch with
``accelerate launch`` for several GPUs. Writes ``<output_dir>/model`` (safetensors + tokenizer),
``train_log.jsonl`` (the trainer's log history) and ``train_summary.json``; checkpoints go to
``<output_dir>/checkpoints`` and a rerun resumes from the newest one.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch.utils.data import Dataset
from transformers import AutoModelForCausalLM, Trainer, TrainingArguments, set_seed

from spa_rl.agent.chat import render_chat
from spa_rl.agent.prompts import (
    check_icl_examples,
    check_model_icl,
    recorded_icl,
    validate_icl_examples,
    write_model_info,
)
from spa_rl.agent.schema import command_line, write_json_atomic
from spa_rl.agent.sharegpt import read_sharegpt, to_messages
from spa_rl.cli import parse
from spa_rl.fingerprint import check_fingerprint, locked, make_fingerprint, settings_of
from spa_rl.models.loading import load_tokenizer
from spa_rl.models.paths import resolve_model_path
from spa_rl.models.precision import configure_training_precision, cpu_trainer_argv, dtype_name
from spa_rl.tracking import trainer_argv, trainer_logging_dir
from spa_rl.training import (
    IGNORE_INDEX,
    TRAINING_SETTINGS,
    CausalLMCollator,
    labelled_positions_loss,
    last_checkpoint,
    publish_dir,
    write_log_history,
)
from spa_rl.validate import positive_int


@dataclass
class SFTArgs:
    data: str = field(metadata={"help": "ShareGPT expert file (sft/build_expert_data.py)"})
    model: str = field(metadata={"help": "base model folder (Hugging Face format)"})
    max_length: int = field(default=4096, metadata={"help": "tokens per conversation; longer ones are cut"})
    num_trajectories: int | None = field(default=None, metadata={"help": "use the first N records only"})
    task_types: str | None = field(
        default=None, metadata={"help": "comma-separated task types to keep (records' task_type), before N"}
    )
    overwrite: bool = field(
        default=False,
        metadata={
            "help": "remove <output_dir>'s contents (model, checkpoints) and train from the start; without "
            "it a rerun resumes or skips, and a folder written with other settings is refused"
        },
    )
    train_on_context: bool = field(
        default=False, metadata={"help": "also learn the in-context example's turns (ETO's behaviour)"}
    )
    icl_examples: int = field(
        default=1,
        metadata={
            "help": "in-context examples in the prompt (--icl_examples or --icl-examples): 1 (the paper's) "
            "or 0 (instruction + task); the expert file must be built with the same setting, and it is "
            "recorded in <output_dir>/model/spa_rl.json"
        },
    )
    dtype: str = field(
        default="auto",
        metadata={
            "help": "compute dtype: auto (bf16 on a GPU or a CPU with bf16 instructions, else fp32) | "
            "bf16 | fp32; bf16 runs the forward pass under autocast with fp32 master weights"
        },
    )

    def __post_init__(self) -> None:
        # Refused by flag at parse time: argparse lets 0 and -1 through (num_trajectories 0 trains on nothing).
        positive_int("--max_length", self.max_length)
        positive_int("--num_trajectories", self.num_trajectories, allow_none=True)  # None: all


class SFTTrainer(Trainer):
    """``Trainer`` whose loss computes logits only at the expert's tokens (see labelled_positions_loss)."""

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if return_outputs:  # evaluation with predictions: the default path
            return super().compute_loss(model, inputs, True, num_items_in_batch)
        # As the default: normalised over the accumulated batch's label count when the Trainer counts
        # it, and scaled back up by the process count when that count spans processes.
        n_items = num_items_in_batch if self.model_accepts_loss_kwargs else None
        loss = labelled_positions_loss(model, inputs, n_items)
        if self.args.average_tokens_across_devices and n_items is not None:
            loss = loss * (self.accelerator.num_processes // self.get_tp_size())
        return loss


class ExpertDataset(Dataset):
    def __init__(self, records: list[dict], tokenizer, max_length: int, train_on_context: bool):
        self.items, self.cut, self.dropped = [], 0, 0
        for r in records:
            messages, start = to_messages(r)
            rc = render_chat(
                tokenizer, messages, train_from=0 if train_on_context else start, max_length=max_length
            )
            if not any(rc.assistant_mask):
                self.dropped += 1  # the expert's first turn lies beyond max_length
                continue
            self.cut += rc.truncated
            labels = [t if m else IGNORE_INDEX for t, m in zip(rc.input_ids, rc.assistant_mask, strict=True)]
            self.items.append({"input_ids": rc.input_ids, "labels": labels})
        if not self.items:
            raise ValueError(f"no record has a trainable turn within max_length={max_length}")

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        return self.items[i]

    def n_tokens(self) -> int:
        return sum(len(x["input_ids"]) for x in self.items)


def main() -> None:
    sft_args, args = parse(
        SFTArgs, TrainingArguments, argv=cpu_trainer_argv(trainer_argv(sys.argv[1:])), doc=__doc__
    )  # one line names a refused flag
    sft_args.model = resolve_model_path(sft_args.model)  # a typo'd folder fails here, not on the Hub
    compute_dtype = configure_training_precision(args, sft_args.dtype)
    out = Path(args.output_dir)
    final = out / "model"
    validate_icl_examples(sft_args.icl_examples, "--icl_examples")
    settings = settings_of(sft_args, {"data", "model", "overwrite"})
    settings |= {k: getattr(args, k, None) for k in TRAINING_SETTINGS} | {"dtype": dtype_name(compute_dtype)}
    with contextlib.ExitStack() as stack:
        # The main process locks the folder and checks (or, with --overwrite, clears and writes) the
        # fingerprint before the others look at it.
        with args.main_process_first(desc="output folder"):
            if args.process_index == 0:
                stack.enter_context(locked(out))
            inputs = {"data": sft_args.data, "model": sft_args.model}
            fp = make_fingerprint("sft", settings, inputs)
            check_fingerprint(out, fp, sft_args.overwrite and args.process_index == 0, "an SFT run")
        if (final / "config.json").exists():
            check_model_icl(final, sft_args.icl_examples)
            print(f"{final} exists with these settings; pass --overwrite to train again")
            return
        train(sft_args, args, out, final, compute_dtype)


def train(sft_args: SFTArgs, args: TrainingArguments, out: Path, final: Path, compute_dtype) -> None:
    trainer_logging_dir(args, out)
    args.output_dir = str(out / "checkpoints")
    set_seed(args.seed)

    tokenizer = load_tokenizer(sft_args.model)
    tokenizer.padding_side = "right"
    records = read_sharegpt(sft_args.data)
    for i, r in enumerate(records):  # an expert file built with the other prompt is refused
        where = f"{sft_args.data} (record {i}, id {r['id']!r})"
        check_icl_examples(sft_args.icl_examples, recorded_icl(r, where), where, "the expert data")
    check_model_icl(sft_args.model, sft_args.icl_examples)
    if sft_args.task_types:
        wanted = {t.strip() for t in sft_args.task_types.split(",")}
        records = [r for r in records if r.get("task_type") in wanted]
        if not records:
            raise SystemExit(f"{sft_args.data}: no record of task type {sorted(wanted)}")
    records = records[: sft_args.num_trajectories]
    data = ExpertDataset(records, tokenizer, sft_args.max_length, sft_args.train_on_context)
    print(f"{len(data)} trajectories, {data.n_tokens()} tokens ({data.cut} cut at {sft_args.max_length})")
    if data.dropped:
        print(
            f"warning: {data.dropped} trajectories left out: the expert's first turn starts after "
            f"--max-length {sft_args.max_length} (raise it, or use --icl-examples 0)",
            file=sys.stderr,
        )

    model = AutoModelForCausalLM.from_pretrained(sft_args.model, dtype=torch.float32)
    if args.gradient_checkpointing:
        model.config.use_cache = False
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=data,
        data_collator=CausalLMCollator(tokenizer.pad_token_id),
        processing_class=tokenizer,
    )
    resume = last_checkpoint(args.output_dir)
    if resume:
        print(f"resuming from {resume}")
    t0 = time.time()
    result = trainer.train(resume_from_checkpoint=resume)
    seconds = time.time() - t0

    if trainer.is_world_process_zero():
        out.mkdir(parents=True, exist_ok=True)
        write_log_history(out / "train_log.jsonl", trainer.state.log_history)
    tmp = out / "model.partial"
    trainer.save_model(str(tmp))  # every process takes part (DeepSpeed gathers the weights)
    if trainer.is_world_process_zero():
        tokenizer.padding_side = "left"  # the saved folder is for generation
        tokenizer.save_pretrained(str(tmp))
        (tmp / "training_args.bin").unlink(missing_ok=True)  # a pickle; the summary keeps the arguments
        write_model_info(
            tmp, sft_args.icl_examples, stage="sft", data=sft_args.data, base_model=sft_args.model
        )
        # The games behind the expert data: later stages can draw from them or hold them out.
        (tmp / "task_ids.txt").write_text("".join(f"{r['id']}\n" for r in records))
        publish_dir(tmp, final)
        # Checkpoints serve an interrupted run only; left here, a retrain would resume from them.
        shutil.rmtree(args.output_dir, ignore_errors=True)
        losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
        tokens = data.n_tokens() * args.num_train_epochs
        summary = {
            "command": command_line(),
            "sft_args": asdict(sft_args),
            "trajectories": len(data),
            "tokens_per_epoch": data.n_tokens(),
            "optimizer_steps": trainer.state.global_step,
            "train_seconds": round(seconds, 1),
            "tokens_per_second": round(tokens / seconds, 1) if not resume else None,
            "first_loss": losses[0] if losses else None,
            "last_loss": losses[-1] if losses else None,
            "train_loss": result.training_loss,
            "device": "cuda" if torch.cuda.is_available() else "cpu",
            "compute_dtype": dtype_name(compute_dtype),
            "world_size": args.world_size,
            "training_args": json.loads(args.to_json_string()),
        }
        write_json_atomic(out / "train_summary.json", summary)
        print(f"saved {final}; loss {summary['first_loss']} -> {summary['last_loss']} in {seconds:.0f} s")


if __name__ == "__main__":
    main()
