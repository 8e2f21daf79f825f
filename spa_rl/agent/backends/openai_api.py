"""Backend for any OpenAI-compatible chat endpoint (``vllm serve``, SGLang, ...), over HTTP."""

from __future__ import annotations

import zlib
from collections.abc import Hashable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import httpx

from spa_rl.agent.backends.base import Generation, GenerationConfig, Message


class OpenAIPolicy:
    name = "openai"

    def __init__(
        self, base_url: str, model: str, api_key: str = "EMPTY", concurrency: int = 8, timeout: float = 300
    ):
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.concurrency = concurrency
        self.client = httpx.Client(timeout=timeout, headers={"Authorization": f"Bearer {api_key}"})

    def _one(self, messages: list[Message], cfg: GenerationConfig) -> Generation:
        body = {
            "model": self.model,
            "messages": messages,
            "max_tokens": cfg.max_new_tokens,
            "temperature": cfg.temperature,
            "top_p": cfg.top_p,
            "seed": cfg.seed,
        }
        r = self.client.post(f"{self.base_url}/chat/completions", json=body)
        if r.status_code == 400 and "context" in r.text.lower():
            return Generation("", 0, 0, "context_limit")
        if r.status_code != 200:
            raise RuntimeError(f"{self.base_url}/chat/completions answered {r.status_code}: {r.text[:500]}")
        data = r.json()
        choice = data["choices"][0]
        usage = data.get("usage") or {}
        reason = "length" if choice.get("finish_reason") == "length" else "stop"
        return Generation(
            choice["message"].get("content") or "",
            int(usage.get("prompt_tokens", 0)),
            int(usage.get("completion_tokens", 0)),
            reason,
        )

    def generate(
        self, conversations: list[list[Message]], cfg: GenerationConfig, keys=None
    ) -> list[Generation]:
        # The server does its own prefix caching (vLLM: automatic prefix caching); keys are not needed for
        # that. Each request gets its own seed (from the batch's seed and the episode's key): with one seed
        # for all, a server that seeds per request (vLLM) would sample the same reply for the same prompt,
        # and the M rollouts of a task (exploration, GRPO groups) would all be one rollout.
        seeds = [request_seed(cfg.seed, k, i) for i, k in enumerate(keys or [None] * len(conversations))]
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            return list(pool.map(lambda m, s: self._one(m, replace(cfg, seed=s)), conversations, seeds))

    def release(self, keys) -> None:
        pass


def request_seed(seed: int, key: Hashable | None, index: int) -> int:
    """A request's sampling seed: a function of the batch's seed and the episode key (else its index)."""
    tag = repr(key) if key is not None else f"#{index}"
    return zlib.crc32(f"{seed}:{tag}".encode()) & 0x7FFFFFFF
