"""A minimal OpenAI-compatible chat server over the ``hf`` backend (``POST /v1/chat/completions``).

For trying the ``openai`` backend without vLLM, and for testing it against a real model. It serves one
request at a time; use ``vllm serve`` or SGLang for throughput. ``ROLLOUT_BACKEND=serve`` runs the
pipeline's stages through it (``spa_rl.agent.managed_server``).

    python -m spa_rl.agent.serve --model models/smollm2-135m-instruct --port 8000

With ``--enable-lora`` it takes LoRA adapters at run time as vLLM does with
``VLLM_ALLOW_RUNTIME_LORA_UPDATING``: ``POST /v1/load_lora_adapter {"lora_name", "lora_path"}`` serves the
base model with that adapter merged under the name ``lora_name``; ``POST /v1/unload_lora_adapter
{"lora_name"}`` drops it (online PPO's rollouts from the current policy, without vLLM).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from spa_rl.agent.backends.base import GenerationConfig, Message
from spa_rl.agent.backends.hf import HFPolicy
from spa_rl.agent.schema import fix_surrogates
from spa_rl.cli import arg, parse
from spa_rl.validate import is_finite_number, positive, positive_int

MAX_BODY_BYTES = 1 << 20  # a chat request of a few hundred KiB of text at most
TIMEOUT_S = 30.0  # per socket read/write: a stalled client frees its thread after this
DEFAULT_MAX_TOKENS = 128
SEED_MAX = 2**63 - 1
ROLES = ("system", "user", "assistant")
# OpenAI parameters this server does not implement: refused unless null/false/empty, not silently ignored.
UNSUPPORTED = ("stop", "logprobs", "top_logprobs", "logit_bias", "tools", "functions")


class RequestError(Exception):
    """A client error: answered with ``status`` and an OpenAI-style error naming ``param``."""

    def __init__(self, status: int, message: str, param: str | None = None):
        super().__init__(message)
        self.status, self.param = status, param


def _show(v: Any) -> str:
    """A short rendering of a client's value for an error message (never the whole of a big one)."""
    if isinstance(v, (list, dict)):
        return f"a JSON {'array' if isinstance(v, list) else 'object'}"
    return json.dumps(v)[:40]


def _number(req: dict, name: str, default: float) -> float:
    v = req.get(name)
    if v is None:
        return default
    if not is_finite_number(v):
        raise RequestError(400, f"'{name}' must be a finite number, got {_show(v)}", name)
    return float(v)


def _int(req: dict, name: str, default: int, lo: int, hi: int | None = None) -> int:
    v = req.get(name)
    if v is None:
        return default
    if isinstance(v, bool) or not isinstance(v, int):
        raise RequestError(400, f"'{name}' must be an integer, got {_show(v)}", name)
    if v < lo or (hi is not None and v > hi):
        bound = f">= {lo}" if hi is None else f"in {lo}..{hi}"
        raise RequestError(400, f"'{name}' must be {bound}, got {v}", name)
    return v


def parse_chat_request(
    req: Any, model_name: str, adapters: Collection[str] = ()
) -> tuple[list[Message], GenerationConfig]:
    """Check a decoded ``/v1/chat/completions`` body; RequestError names the first bad field. ``model`` may
    name the served model or one of the loaded LoRA ``adapters``."""
    if not isinstance(req, dict):
        raise RequestError(400, "the request body must be a JSON object")
    model = req.get("model")
    if model is not None and model != model_name and model not in adapters:
        names = ", ".join(json.dumps(n) for n in (model_name, *adapters))
        raise RequestError(400, f"unknown model {_show(model)}; this server serves {names}", "model")
    messages = req.get("messages")
    if not isinstance(messages, list) or not messages:
        raise RequestError(400, "'messages' must be a non-empty list of {role, content} objects", "messages")
    for i, m in enumerate(messages):
        if not isinstance(m, dict):
            raise RequestError(400, f"messages[{i}] must be an object", f"messages[{i}]")
        if m.get("role") not in ROLES:
            role = _show(m.get("role"))
            raise RequestError(
                400, f"messages[{i}].role must be one of {'/'.join(ROLES)}, got {role}", f"messages[{i}].role"
            )
        if not isinstance(m.get("content"), str):
            raise RequestError(400, f"messages[{i}].content must be a string", f"messages[{i}].content")
        if fix_surrogates(m["content"])[1]:  # the tokenizer cannot encode it: a client error, not a 500
            raise RequestError(
                400, f"messages[{i}].content holds a lone UTF-16 surrogate", f"messages[{i}].content"
            )
    if req.get("stream"):
        raise RequestError(400, "stream is not supported", "stream")
    if req.get("stream") is not None and not isinstance(req["stream"], bool):
        raise RequestError(400, "'stream' must be a boolean", "stream")
    if req.get("n") not in (None, 1) or isinstance(req.get("n"), bool):
        raise RequestError(400, f"'n' must be 1 (one choice per request), got {_show(req['n'])}", "n")
    for name in UNSUPPORTED:
        if req.get(name) not in (None, False, [], {}):
            raise RequestError(400, f"'{name}' is not supported by this server", name)
    top_p = _number(req, "top_p", 1.0)
    if not 0 < top_p <= 1:
        raise RequestError(400, f"'top_p' must be in (0, 1], got {top_p}", "top_p")
    temperature = _number(req, "temperature", 1.0)
    if temperature < 0:
        raise RequestError(400, f"'temperature' must be >= 0, got {temperature}", "temperature")
    cfg = GenerationConfig(
        max_new_tokens=_int(req, "max_tokens", DEFAULT_MAX_TOKENS, 1),
        temperature=temperature,
        top_p=top_p,
        seed=_int(req, "seed", 0, 0, SEED_MAX),
    )
    return [{"role": m["role"], "content": m["content"]} for m in messages], cfg


def merged_policy(base: HFPolicy, adapter: str) -> HFPolicy:
    """A copy of ``base``'s model with the LoRA adapter at ``adapter`` merged into its weights."""
    import copy

    from peft import PeftModel

    model = PeftModel.from_pretrained(copy.deepcopy(base.model), adapter).merge_and_unload()
    return HFPolicy(base.model_path, device=str(base.device), batch_size=base.batch_size, model=model,
                    tokenizer=base.tokenizer)  # fmt: skip


def make_server(
    policy: HFPolicy,
    model_name: str,
    host: str = "127.0.0.1",
    port: int = 8000,
    max_body_bytes: int = MAX_BODY_BYTES,
    timeout: float = TIMEOUT_S,
    enable_lora: bool = False,
    load_adapter: Callable[[HFPolicy, str], HFPolicy] = merged_policy,
) -> ThreadingHTTPServer:
    lock = threading.Lock()
    adapters: dict[str, HFPolicy] = {}  # --enable-lora: loaded adapters by name

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:  # keep the console quiet
            pass

        def setup(self) -> None:
            self.timeout = timeout  # StreamRequestHandler applies it to the socket
            super().setup()

        def _send(self, code: int, obj: dict) -> None:
            body = json.dumps(obj).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            if code >= 400:  # the body may be unread: the connection cannot carry another request
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            self.wfile.write(body)

        def _error(self, code: int, message: str, param: str | None = None) -> None:
            kind = "invalid_request_error" if code < 500 else "server_error"
            self._send(code, {"error": {"message": message, "type": kind, "param": param, "code": None}})

        def do_GET(self) -> None:
            if self.path.rstrip("/") == "/v1/models":
                names = [model_name, *adapters]
                self._send(200, {"object": "list", "data": [{"id": n, "object": "model"} for n in names]})
            else:
                self._error(404, f"no route {self.path}")

        def _read_body(self) -> bytes:
            if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                raise RequestError(411, "chunked bodies are not supported; send Content-Length")
            values = self.headers.get_all("Content-Length") or []
            if not values:
                raise RequestError(411, "Content-Length is required")
            v = values[0].strip()
            if len(set(values)) != 1 or not (v.isascii() and v.isdigit()):
                raise RequestError(400, f"invalid Content-Length {', '.join(values)[:40]!r}")
            n = int(v[:20])  # more digits than that is absurd either way
            if n > max_body_bytes or len(v) > 20:  # refused before reading a byte of it
                raise RequestError(413, f"body of {n} bytes exceeds the limit of {max_body_bytes}")
            # The whole body within `timeout` (each read also times out): a client dripping a byte now
            # and then cannot hold the thread either.
            parts, got, deadline = [], 0, time.monotonic() + timeout
            while got < n:
                try:
                    part = self.rfile.read1(min(n - got, 1 << 16))
                except TimeoutError:
                    part = None
                if part is None or (got + len(part) < n and time.monotonic() > deadline):
                    raise RequestError(408, f"the body did not arrive within {timeout:g} s")
                if not part:
                    raise RequestError(400, f"body ended after {got} of {n} bytes (Content-Length)")
                parts.append(part)
                got += len(part)
            return b"".join(parts)

        def do_POST(self) -> None:
            try:
                self._chat()
            except (TimeoutError, ConnectionError):  # the client stalled or went away: drop it
                self.close_connection = True
            except Exception as e:  # a bug here is a server fault: say so, keep serving
                try:
                    self._error(500, f"{type(e).__name__}: {e}")
                except OSError:
                    self.close_connection = True

        def _lora(self, route: str) -> None:
            """``load_lora_adapter`` / ``unload_lora_adapter``, vLLM's runtime LoRA routes."""
            try:
                if not enable_lora:
                    raise RequestError(404, f"no route {self.path} (start the server with --enable-lora)")
                try:
                    req = json.loads(self._read_body())
                except ValueError as e:
                    raise RequestError(400, f"the request body is not valid JSON ({e})") from None
                name = req.get("lora_name") if isinstance(req, dict) else None
                if not isinstance(name, str) or not name or name == model_name:
                    raise RequestError(400, "'lora_name' must be a new model name", "lora_name")
                if route == "unload_lora_adapter":
                    if name not in adapters:
                        raise RequestError(404, f"no adapter {_show(name)} is loaded", "lora_name")
                    with lock:
                        del adapters[name]
                    self._send(200, {"status": f"unloaded {name}"})
                    return
                path = req.get("lora_path")
                if name in adapters:
                    raise RequestError(400, f"the adapter {_show(name)} is already loaded", "lora_name")
                if not isinstance(path, str) or not (Path(path) / "adapter_config.json").exists():
                    raise RequestError(
                        400, f"no LoRA adapter (adapter_config.json) at {_show(path)}", "lora_path"
                    )
            except RequestError as e:
                self._error(e.status, str(e), e.param)
                return
            with lock:
                adapters[name] = load_adapter(policy, path)
            self._send(200, {"status": f"loaded {name}"})

        def _chat(self) -> None:
            route = self.path.rstrip("/")
            if route in ("/v1/load_lora_adapter", "/v1/unload_lora_adapter"):
                self._lora(route.rsplit("/", 1)[1])
                return
            if route != "/v1/chat/completions":
                self._error(404, f"no route {self.path}")
                return
            try:
                body = self._read_body()
                try:
                    req = json.loads(body)
                except RecursionError:
                    raise RequestError(400, "the request body is nested too deeply") from None
                except ValueError as e:  # also undecodable UTF-8
                    raise RequestError(400, f"the request body is not valid JSON ({e})") from None
                messages, cfg = parse_chat_request(req, model_name, adapters)
            except RequestError as e:
                self._error(e.status, str(e), e.param)
                return
            try:
                with lock:
                    name = req.get("model")
                    gen = adapters.get(name, policy).generate([messages], cfg)[0]
            except Exception as e:  # a server fault: report, keep serving
                self._error(500, f"{type(e).__name__}: {e}")
                return
            if gen.finish_reason == "context_limit":
                self._send(
                    400,
                    {
                        "error": {
                            "message": "prompt exceeds the model's context length",
                            "type": "invalid_request_error",
                            "param": "messages",
                            "code": "context_length_exceeded",
                        }
                    },
                )
                return
            self._send(
                200,
                {
                    "id": f"chatcmpl-{time.time_ns()}",
                    "object": "chat.completion",
                    "model": req.get("model") or model_name,
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": gen.text},
                            "finish_reason": gen.finish_reason,
                        }
                    ],
                    "usage": {
                        "prompt_tokens": gen.prompt_tokens,
                        "completion_tokens": gen.completion_tokens,
                        "total_tokens": gen.prompt_tokens + gen.completion_tokens,
                    },
                },
            )

    return ThreadingHTTPServer((host, port), Handler)


@dataclass
class ServeConfig:
    model: str = arg(help="local model folder")
    served_name: str | None = arg(None, "model name clients send (default: --model)")
    host: str = arg("127.0.0.1", "address to listen on")
    port: int = arg(8000, "port to listen on (0: any free port)")
    device: str | None = arg(None, "torch device (default: the GPU if there is one, else the CPU)")
    max_body_bytes: int = arg(MAX_BODY_BYTES, "larger request bodies are refused with 413 unread")
    timeout: float = arg(TIMEOUT_S, "seconds a connection may stall on a read or write, and the most a "
                         "request body may take to arrive, before it is closed")  # fmt: skip
    enable_lora: bool = arg(False, "take LoRA adapters at run time (POST /v1/load_lora_adapter and "
                            "/v1/unload_lora_adapter, as vLLM does)")  # fmt: skip

    def __post_init__(self) -> None:
        positive_int("--max-body-bytes", self.max_body_bytes)
        positive("--timeout", self.timeout)


def main(argv: list[str] | None = None) -> None:
    cfg = parse(ServeConfig, argv=argv, doc=__doc__)
    server = make_server(
        HFPolicy(cfg.model, device=cfg.device),
        cfg.served_name or cfg.model,
        cfg.host,
        cfg.port,
        cfg.max_body_bytes,
        cfg.timeout,
        enable_lora=cfg.enable_lora,
    )
    port = server.server_address[1]  # the one chosen with --port 0
    print(
        f"serving {cfg.model} as {cfg.served_name or cfg.model!r} on http://{cfg.host}:{port}/v1", flush=True
    )
    server.serve_forever()


if __name__ == "__main__":
    main()
