"""Backend for any OpenAI-compatible chat endpoint (``vllm serve``, SGLang, ...), over HTTP."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

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
        # The server does its own prefix caching (vLLM: automatic prefix caching); keys are not needed.
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            return list(pool.map(lambda m: self._one(m, cfg), conversations))

    def release(self, keys) -> None:
        pass
