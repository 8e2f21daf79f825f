"""Online PPO's rollouts from a server (``--rollout-backend vllm | serve``) instead of the trainer's own
``generate``: the SFT model is served once with runtime LoRA loading (vLLM: ``--enable-lora`` and
``VLLM_ALLOW_RUNTIME_LORA_UPDATING=True``), and before each iteration the policy's current adapter is saved
to a folder of its own, loaded under a new name (``POST /v1/load_lora_adapter``), and the previous one
unloaded and deleted; so the rollouts of iteration i come from the weights after i updates, as with the
in-process backend. The server runs on the trainer's device (``CUDA_VISIBLE_DEVICES``) with a share of its
memory (``--vllm-mem-fraction``)."""

from __future__ import annotations

import shlex
import shutil
from collections.abc import Hashable
from pathlib import Path

from spa_rl.agent.backends.base import Generation, GenerationConfig, Message
from spa_rl.agent.backends.openai_api import OpenAIPolicy
from spa_rl.agent.managed_server import ManagedServer, ServerSpec


class ServedLoRAPolicy:
    """The ``Policy`` protocol over a served base model + the trainer's current LoRA adapter."""

    name = "openai"

    def __init__(self, cfg, lm, device: str = "cpu", rank: int = 0):
        """``cfg``: the SourceConfig; ``lm``: the trainer's PeftModel (its adapter is what gets served)."""
        self.lm = lm
        suffix = f".rank{rank}" if rank else ""
        self.dir = Path(cfg.output_dir) / f"rollout_adapters{suffix}"
        shutil.rmtree(self.dir, ignore_errors=True)  # a killed run's leftovers
        env = {}
        if device.startswith("cuda"):
            index = device.split(":", 1)[1] if ":" in device else "0"
            env["CUDA_VISIBLE_DEVICES"] = _visible(index)
        spec = ServerSpec(
            model=cfg.model,
            engine=cfg.rollout_backend,
            python=cfg.vllm_python or None,
            lora=True,
            max_lora_rank=max(16, _next_supported_rank(cfg.lora_r)),
            mem_fraction=cfg.vllm_mem_fraction,
            seed=cfg.seed,
            extra_args=shlex.split(cfg.vllm_args or ""),
            env=env,
            log=str(Path(cfg.output_dir) / f"rollout_server{suffix}.log"),
            start_timeout=cfg.vllm_start_timeout,
        )
        self.server = ManagedServer(spec).start()
        self.client = OpenAIPolicy(self.server.api_base, self.server.name, concurrency=cfg.gen_batch_size)
        self.version = 0
        self.current: str | None = None

    def weights_changed(self) -> None:
        """Serve the trainer's adapter as it is now (called before every iteration's rollouts)."""
        self.version += 1
        name, folder = f"policy-v{self.version}", self.dir / f"v{self.version:05d}"
        self.lm.save_pretrained(folder, safe_serialization=True)  # the adapter alone (peft)
        self.server.load_lora(name, folder)
        old, self.current = self.current, name
        self.client.model = name
        if old is not None:
            self.server.unload_lora(old)
            shutil.rmtree(self.dir / f"v{self.version - 1:05d}", ignore_errors=True)

    def generate(
        self, conversations: list[list[Message]], cfg: GenerationConfig, keys: list[Hashable] | None = None
    ) -> list[Generation]:
        if self.current is None:
            self.weights_changed()
        return self.client.generate(conversations, cfg, keys)

    def release(self, keys) -> None:
        pass

    def close(self) -> None:
        self.server.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def _visible(index: str) -> str:
    """The physical GPU behind the trainer's ``cuda:index`` under the current CUDA_VISIBLE_DEVICES."""
    import os

    visible = [v for v in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if v.strip()]
    return visible[int(index)] if visible and int(index) < len(visible) else index


def _next_supported_rank(r: int) -> int:
    """vLLM's --max-lora-rank takes one of 1, 8, 16, 32, 64, 128, 256, 320, 512."""
    for v in (8, 16, 32, 64, 128, 256, 320, 512):
        if r <= v:
            return v
    return r
