"""The compute dtype, chosen by what the hardware does fast: bf16 on a GPU that supports it and on a CPU
with bf16 instructions (x86 avx512_bf16 / amx_bf16, Arm bf16), fp32 elsewhere. One ``--dtype`` choice
(``DTYPE`` in the shell configs) overrides it everywhere: ``auto`` | ``bf16`` | ``fp32``.

Why by capability: on this project's 2-core AMD EPYC (avx512_bf16) a bf16 matmul ran 4.3x an fp32 one
and bf16 autocast doubled a SmolLM2 training step, while on CPUs without the instructions bf16 is
emulated and was measured ~16x slower. Training keeps fp32 master weights and optimizer state and runs
the forward pass under bf16 autocast; losses, log-softmax (PPO ratios) and the value head stay fp32.
Generation loads the weights in bf16."""

from __future__ import annotations

import contextlib
import platform
import warnings
from functools import cache
from typing import Any

import torch

DTYPE_CHOICES = ("auto", "bf16", "fp32")
_ALIASES = {"auto": None, "bf16": torch.bfloat16, "bfloat16": torch.bfloat16, "fp32": torch.float32,
            "float32": torch.float32}  # fmt: skip


@cache
def cpu_has_bf16() -> bool:
    """The CPU has bf16 arithmetic instructions (read from /proc/cpuinfo on Linux)."""
    try:
        text = open("/proc/cpuinfo", encoding="utf-8").read()
    except OSError:
        return platform.machine() == "arm64" and platform.system() == "Darwin"  # Apple M2 and later
    flags = set()
    for line in text.splitlines():
        if line.startswith(("flags", "Features")):
            flags.update(line.split(":", 1)[1].split())
    return bool(flags & {"avx512_bf16", "amx_bf16", "bf16"})


def auto_dtype(device: str | torch.device | None = None) -> torch.dtype:
    kind = (
        torch.device(device).type if device is not None else ("cuda" if torch.cuda.is_available() else "cpu")
    )
    if kind == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float32
    if kind == "cpu":
        return torch.bfloat16 if cpu_has_bf16() else torch.float32
    return torch.float32


def resolve_dtype(name: str | None, device: str | torch.device | None = None) -> torch.dtype:
    """``auto`` (or None) -> by capability; ``bf16`` / ``fp32`` (or their torch names) as given."""
    key = "auto" if name is None else str(name).lower()
    if key not in _ALIASES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPE_CHOICES)}, got {name!r}")
    return _ALIASES[key] or auto_dtype(device)


def dtype_name(dtype: torch.dtype) -> str:
    return {torch.bfloat16: "bf16", torch.float32: "fp32"}.get(dtype, str(dtype))


def autocast(device: str | torch.device, dtype: torch.dtype):
    """bf16 autocast for a forward pass on ``device`` when ``dtype`` is bf16; nothing otherwise."""
    if dtype == torch.bfloat16:
        return torch.autocast(torch.device(device).type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def cpu_trainer_argv(argv: list[str]) -> list[str]:
    """A Trainer recipe's command line with ``--use-cpu`` added on a machine without a GPU. Without it a
    torchrun / accelerate launch on CPU trains one independent copy per process, each believing it is
    process 0; the flag must be there when ``TrainingArguments`` is built, which sets up the devices."""
    if torch.cuda.is_available() or any(a.split("=")[0] in ("--use-cpu", "--use_cpu") for a in argv):
        return argv
    return [*argv, "--use-cpu"]


def gradient_checkpointing_requested(args: Any) -> bool:
    """``TrainingArguments`` asks for gradient checkpointing (``--gradient-checkpointing`` or its new name
    ``--activation-checkpointing``)."""
    return bool(
        getattr(args, "activation_checkpointing", False) or getattr(args, "gradient_checkpointing", False)
    )


def use_gradient_checkpointing(requested: bool, device: str | torch.device) -> bool:
    """Gradient checkpointing where it was asked for and the device is a GPU. On a CPU it only slows a step
    (the recompute) to save memory the machine has, so it is turned off there with a warning, as in the
    Trainer recipes (configure_training_precision)."""
    if requested and torch.device(device).type == "cpu":
        warnings.warn("no GPU: turned off gradient checkpointing", stacklevel=2)
        return False
    return requested


def configure_training_precision(args: Any, dtype: str | None) -> torch.dtype:
    """Set a ``TrainingArguments``' mixed precision from ``dtype`` (``auto``: by capability) and turn off
    what is slow or unsupported without a GPU (gradient checkpointing, fused AdamW, pinned memory).
    ``--bf16`` / ``--fp16`` given explicitly win over ``auto``. Returns the compute dtype."""
    gpu = torch.cuda.is_available()
    if (dtype in (None, "auto")) and (getattr(args, "bf16", False) or getattr(args, "fp16", False)):
        chosen = torch.bfloat16 if args.bf16 else torch.float16
    else:
        chosen = resolve_dtype(dtype, "cuda" if gpu else "cpu")
    changed = []
    if not gpu:
        if chosen == torch.float16:
            chosen = torch.float32
            changed.append("fp16")
        if chosen == torch.bfloat16 and not cpu_has_bf16() and dtype in (None, "auto"):
            chosen = torch.float32  # emulated bf16 is many times slower than fp32
            changed.append("bf16 (this CPU has no bf16 instructions)")
        if gradient_checkpointing_requested(args):
            # transformers 5 reads activation_checkpointing; gradient_checkpointing is its deprecated alias.
            args.activation_checkpointing = args.gradient_checkpointing = False
            changed.append("gradient checkpointing")
        args.dataloader_pin_memory = False
        if "fused" in str(getattr(args, "optim", "")):
            args.optim = "adamw_torch"
            changed.append("fused optimizer")
    args.bf16 = chosen == torch.bfloat16
    args.fp16 = chosen == torch.float16
    args.mixed_precision = "bf16" if args.bf16 else "fp16" if args.fp16 else "no"
    if getattr(args, "hf_deepspeed_config", None) is not None:
        # TrainingArguments filled the DeepSpeed config's "auto" entries (bf16.enabled, ...) when it was
        # built, before the dtype was chosen here: fill them again from the final settings.
        from accelerate.utils import DeepSpeedPlugin
        from transformers.integrations.deepspeed import HfTrainerDeepSpeedConfig

        args.hf_deepspeed_config = HfTrainerDeepSpeedConfig(args.deepspeed)
        args.hf_deepspeed_config.trainer_config_process(args)
        args.deepspeed_plugin = DeepSpeedPlugin(hf_ds_config=args.hf_deepspeed_config)
    if changed:
        warnings.warn(f"no GPU: turned off {', '.join(changed)}", stacklevel=2)
    return chosen
