"""How the training stages (SFT, estimator, PPO) are launched, checked before any work starts.

``scripts/common.sh`` runs ``python -m spa_rl.launch --num-gpus N [--deepspeed VAR=CONFIG ...]`` first
(``check_launch``), then starts a recipe (``train_launch``): one process when ``NUM_GPUS=1`` (GPU 0 or the
CPU, no DeepSpeed), or ``accelerate launch --config_file scripts/accelerate/ddp.yaml --num_processes N``
over N GPUs, the Trainer recipes with ``--deepspeed CONFIG`` when a DeepSpeed config is set
(``SFT_DEEPSPEED``, ``PRM_DEEPSPEED``). The check stops with one message that names what is missing: GPUs
(``NUM_GPUS=4`` on a machine whose torch sees none), DeepSpeed (not installed), or a config file.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spa_rl.cli import arg, parse

DEEPSPEED_PIN = "deepspeed==0.19.8"


def deepspeed_installed() -> bool:
    if importlib.util.find_spec("deepspeed") is None:
        return False
    try:
        importlib.metadata.version("deepspeed")  # transformers checks the distribution, not the import
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def deepspeed_stage(config: str | dict[str, Any] | None) -> int | None:
    """The ZeRO stage of a DeepSpeed config (a file or a dict); None without a config, 0 without ZeRO."""
    if not config:
        return None
    if isinstance(config, (str, Path)):
        config = json.loads(Path(config).read_text())
    return int(config.get("zero_optimization", {}).get("stage", 0))


def launch_problems(num_gpus: int, deepspeed: dict[str, str], visible_gpus: int, torch_version: str,
                    cuda_build: bool, have_deepspeed: bool) -> list[str]:  # fmt: skip
    """What stops a launch of ``num_gpus`` processes with the DeepSpeed configs ``deepspeed`` (variable ->
    file; empty files are unset) on a machine whose torch sees ``visible_gpus`` GPUs."""
    problems = []
    if num_gpus < 1:
        return [f"NUM_GPUS={num_gpus}: give 1 (one process, GPU or CPU) or the number of GPUs to train on"]
    if num_gpus > 1 and visible_gpus == 0:
        build = "" if cuda_build else ", a CPU-only build"
        problems.append(
            f"NUM_GPUS={num_gpus} but torch sees no GPU (torch {torch_version}{build}). On a GPU machine install "
            "a CUDA build of torch (SPA_TORCH_SPEC=torch bash scripts/setup.sh). To run on this CPU anyway: "
            "NUM_GPUS=1 (one process, no DeepSpeed; practical for a small BASE_MODEL only)"
        )
    elif num_gpus > 1 and num_gpus > visible_gpus:
        problems.append(
            f"NUM_GPUS={num_gpus} but torch sees {visible_gpus} GPU(s) (CUDA_VISIBLE_DEVICES="
            f"{os.environ.get('CUDA_VISIBLE_DEVICES', 'unset')}): set NUM_GPUS={visible_gpus} or fewer"
        )
    if num_gpus > 1:
        for var, path in deepspeed.items():
            if not path:
                continue
            if not Path(path).is_file():
                problems.append(f"{var}={path}: no such DeepSpeed config")
            elif not have_deepspeed:
                problems.append(
                    f"{var}={path} needs DeepSpeed, which is not installed: DS_BUILD_OPS=0 pip install "
                    f"{DEEPSPEED_PIN} (scripts/setup.sh installs it where a GPU is present), or {var}= to "
                    "train with plain DDP"
                )
    return problems


def launch_notes(num_gpus: int, deepspeed: dict[str, str]) -> list[str]:
    """Settings that a launch of ``num_gpus`` processes leaves unused (said, not refused)."""
    if num_gpus != 1:
        return []
    return [
        f"note: {var}={path} applies with NUM_GPUS > 1; one process trains without DeepSpeed"
        for var, path in deepspeed.items()
        if path
    ]


def refuse_zero3(config: str | dict | None, recipe: str, why: str) -> None:
    """Stop a recipe that cannot run under ZeRO-3 (its weights partitioned across processes)."""
    stage = deepspeed_stage(config)
    if stage is not None and stage >= 3:
        raise SystemExit(f"{recipe} does not run under DeepSpeed ZeRO-3 ({config}): {why}; use ZeRO-2")


@dataclass
class LaunchCheck:
    num_gpus: int = arg(1, "processes to launch (NUM_GPUS): 1 = one process on GPU 0 or the CPU")
    deepspeed: list[str] = arg(
        default_factory=list,
        help="VAR=CONFIG: a DeepSpeed config the launch would use (repeatable)",
        repeat=True,
    )


def main(argv: list[str] | None = None) -> int:
    args = parse(LaunchCheck, argv=argv, doc=__doc__)
    ds = dict(item.partition("=")[::2] for item in args.deepspeed)
    import torch

    problems = launch_problems(
        args.num_gpus,
        ds,
        torch.cuda.device_count(),
        torch.__version__,
        torch.version.cuda is not None,
        deepspeed_installed(),
    )
    for p in problems:
        print(f"error: {p}", file=sys.stderr)
    if problems:
        return 2
    for n in launch_notes(args.num_gpus, ds):
        print(n, file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
