"""A minimal OpenAI-compatible chat server over the ``hf`` backend (``POST /v1/chat/completions``).

For trying the ``openai`` backend without vLLM, and for testing it against a real model. It serves one
request at a time; use ``vllm serve`` or SGLang for throughput.

    python -m eval_agent.serve --model models/smollm2-135m-instruct --port 8000
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from eval_agent.backends.base import GenerationConfig
from eval_agent.backends.hf import HFPolicy


def make_server(
    policy: HFPolicy, model_name: str, host: str = "127.0.0.1", port: int = 8000
) -> ThreadingHTTPServer:
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:  # keep the console quiet
            pass

        def _send(self, code: int, obj: dict) -> None:
            body = json.dumps(obj).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            if self.path.rstrip("/") == "/v1/models":
                self._send(200, {"object": "list", "data": [{"id": model_name, "object": "model"}]})
            else:
                self._send(404, {"error": {"message": f"no route {self.path}"}})

        def do_POST(self) -> None:
            if self.path.rstrip("/") != "/v1/chat/completions":
                self._send(404, {"error": {"message": f"no route {self.path}"}})
                return
            try:
                req = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                messages = req["messages"]
                for i, m in enumerate(messages):
                    if m.get("role") not in ("system", "user", "assistant") or not isinstance(
                        m.get("content"), str
                    ):
                        raise ValueError(f"messages[{i}] needs role system/user/assistant and string content")
                cfg = GenerationConfig(
                    max_new_tokens=int(req.get("max_tokens") or 128),
                    temperature=float(req.get("temperature", 1.0)),
                    top_p=float(req.get("top_p", 1.0)),
                    seed=int(req.get("seed") or 0),
                )
            except (KeyError, ValueError, TypeError, AttributeError) as e:
                self._send(400, {"error": {"message": f"bad request: {e}"}})
                return
            try:
                with lock:
                    gen = policy.generate([messages], cfg)[0]
            except Exception as e:  # report, keep serving
                self._send(500, {"error": {"message": f"{type(e).__name__}: {e}"}})
                return
            if gen.finish_reason == "context_limit":
                self._send(400, {"error": {"message": "prompt exceeds the model's context length"}})
                return
            self._send(
                200,
                {
                    "id": f"chatcmpl-{time.time_ns()}",
                    "object": "chat.completion",
                    "model": model_name,
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="local model folder")
    ap.add_argument("--served-name", default=None, help="model name clients send (default: --model)")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8000)
    ap.add_argument("--device", default=None)
    args = ap.parse_args()
    server = make_server(
        HFPolicy(args.model, device=args.device), args.served_name or args.model, args.host, args.port
    )
    print(f"serving {args.model} on http://{args.host}:{args.port}/v1", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
