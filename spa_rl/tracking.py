"""Experiment tracking: where training scalars go besides the JSONL logs every stage writes.

``--report-to`` takes ``auto`` (TensorBoard when the ``tensorboard`` package is installed, else nothing),
``none``, ``tensorboard`` or ``wandb`` (comma-separated for several). SFT and the estimator hand the
resolved value to the Hugging Face Trainer (``TrainingArguments.report_to``) with the TensorBoard folder
set to ``<output_dir>/tensorboard``; PPO writes its per-iteration scalars through ``Tracker`` to the same
kind of place, so ``tensorboard --logdir runs/`` shows every stage of every run side by side.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from spa_rl.validate import is_finite_number

TRACKERS = ("tensorboard", "wandb")
REPORT_TO_HELP = (
    "where training scalars go besides the JSONL logs: auto (tensorboard when installed, else none) | none | "
    "tensorboard | wandb (comma-separated for several); TensorBoard files go to <output-dir>/tensorboard"
)


def resolve_report_to(value: str | list[str] | None) -> list[str]:
    """The trackers ``--report-to`` names, ``auto`` resolved; a tracker whose package is missing is refused
    by name (ValueError) rather than skipped, since the user asked for it."""
    words = (
        value if isinstance(value, list) else [w.strip() for w in (value or "none").split(",") if w.strip()]
    )
    if words in (["auto"], []):
        return ["tensorboard"] if importlib.util.find_spec("tensorboard") else []
    if words == ["none"]:
        return []
    for w in words:
        if w not in TRACKERS:
            raise ValueError(f"--report-to must be auto, none or some of {', '.join(TRACKERS)}, got {w!r}")
        if importlib.util.find_spec(w) is None:
            raise ValueError(f"--report-to {w}: the {w!r} package is not installed (pip install {w})")
    return words


def trainer_argv(argv: list[str]) -> list[str]:
    """A Trainer recipe's command line with ``--report-to`` resolved: ``auto`` (also when the flag is absent:
    the Trainer's own default is none) becomes the installed trackers, since ``TrainingArguments`` refuses
    the word."""
    flags = ("--report-to", "--report_to")
    for i, a in enumerate(argv):
        if a in flags and i + 1 < len(argv) and argv[i + 1] == "auto":
            return [*argv[: i + 1], ",".join(resolve_report_to("auto")) or "none", *argv[i + 2 :]]
        if a in flags or a.startswith(tuple(f + "=" for f in flags)):
            return argv
    return [*argv, "--report-to", ",".join(resolve_report_to("auto")) or "none"]


def trainer_logging_dir(args: Any, out: Path) -> None:
    """Point the Trainer's TensorBoard callback at ``<out>/tensorboard``: its own default sits under the
    checkpoint folder, which the recipes delete when training ends."""
    if "tensorboard" in (args.report_to or []):
        os.environ["TENSORBOARD_LOGGING_DIR"] = str(out / "tensorboard")


class Tracker:
    """Scalars of a training loop (PPO) to the resolved trackers; a no-op with none."""

    def __init__(self, report_to: str, out: Path, run_name: str, config: Mapping[str, Any]):
        self.writers: list[Any] = []
        for name in resolve_report_to(report_to):
            if name == "tensorboard":
                from torch.utils.tensorboard import SummaryWriter

                writer = SummaryWriter(log_dir=str(out / "tensorboard"))
                writer.add_text("config", "\n".join(f"    {k}: {v}" for k, v in config.items()))
                self.writers.append(writer)
            else:
                import wandb

                self.writers.append(
                    wandb.init(name=run_name, dir=str(out), config=dict(config), resume="allow")
                )

    def log(self, step: int, scalars: Mapping[str, Any], prefix: str = "") -> None:
        values = {f"{prefix}{k}": float(v) for k, v in scalars.items() if is_finite_number(v)}
        for w in self.writers:
            if hasattr(w, "add_scalar"):
                for k, v in values.items():
                    w.add_scalar(k, v, step)
            else:
                w.log(values, step=step)

    def close(self) -> None:
        for w in self.writers:
            (w.close if hasattr(w, "close") else w.finish)()
