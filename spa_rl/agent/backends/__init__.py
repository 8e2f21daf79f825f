"""Policy backends behind one interface (``generate(conversations, cfg) -> [Generation]``)."""

from __future__ import annotations

from spa_rl.agent.backends.base import Generation, GenerationConfig, Policy


def make_policy(backend: str, model: str, **kwargs) -> Policy:
    """``hf``: ``model`` is a local model folder. ``openai``: ``model`` is the served model name and
    ``api_base`` the endpoint (e.g. http://127.0.0.1:8000/v1)."""
    if backend == "hf":
        from spa_rl.models.paths import resolve_model_path

        model = resolve_model_path(model)  # before importing torch: a typo'd folder fails at once
        from spa_rl.agent.backends.hf import HFPolicy

        allowed = {
            k: v
            for k, v in kwargs.items()
            if k in ("device", "dtype", "batch_size", "max_context", "kv_cache")
        }
        return HFPolicy(model, **allowed)
    if backend == "openai":
        from spa_rl.agent.backends.openai_api import OpenAIPolicy

        if not kwargs.get("api_base"):
            raise ValueError("the openai backend needs --api-base (e.g. http://127.0.0.1:8000/v1)")
        return OpenAIPolicy(kwargs["api_base"], model, concurrency=kwargs.get("batch_size") or 8)
    raise ValueError(f"unknown backend {backend!r}; use 'hf' or 'openai'")


__all__ = ["Generation", "GenerationConfig", "Policy", "make_policy"]
