"""spa_rl/agent/serve.py against bad clients, over raw HTTP to the real server with the tiny model: every
client error is a 4xx with a JSON body naming the field, oversized or unsized bodies are refused unread,
a stalled connection is closed after --timeout, and 500 is kept for real server faults."""

import json
import socket
import threading
import time

import pytest

from spa_rl.agent.backends import GenerationConfig
from spa_rl.agent.serve import DEFAULT_MAX_TOKENS, make_server

TIMEOUT = 1.0  # the server's per-connection timeout in these tests
LIMIT = 4096  # the server's body limit in these tests
MSGS = [{"role": "user", "content": "Say hi."}]


@pytest.fixture(scope="module")
def server(tiny_policy):  # one server for the module: a request leaves nothing behind
    srv = make_server(tiny_policy, "tiny", port=0, max_body_bytes=LIMIT, timeout=TIMEOUT)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv.server_address[1]
    srv.shutdown()
    srv.server_close()


def exchange(port: int, data: bytes, wait: float = 10.0) -> tuple[int | None, dict | None, float]:
    """Send raw bytes, read until the server closes: (status, JSON body, seconds). None: no answer."""
    t0 = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=wait) as s:
        s.sendall(data)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
    took = time.monotonic() - t0
    if not out:
        return None, None, took
    head, _, body = out.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body), took


def post(port: int, body: bytes, headers: dict | None = None, path: str = "/v1/chat/completions"):
    headers = {"Content-Length": str(len(body))} if headers is None else headers
    head = f"POST {path} HTTP/1.1\r\nHost: test\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    return exchange(port, (head + "\r\n").encode() + body)


def chat(port: int, **fields):
    return post(port, json.dumps({"model": "tiny", "messages": MSGS, **fields}).encode())


def test_valid_request_unchanged(server, tiny_policy):
    status, body, _ = chat(server, max_tokens=6, temperature=0, top_p=1, seed=2**63 - 1, n=1, stream=False)
    assert status == 200
    want = tiny_policy.generate([MSGS], GenerationConfig(max_new_tokens=6, temperature=0.0))[0]
    assert body["choices"][0]["message"] == {"role": "assistant", "content": want.text}
    assert body["usage"]["completion_tokens"] == want.completion_tokens and body["model"] == "tiny"
    # Optional fields absent or null take their defaults (max_tokens: 128).
    status, body, _ = chat(server, temperature=0, max_tokens=None, seed=None)
    assert status == 200 and body["usage"]["completion_tokens"] <= DEFAULT_MAX_TOKENS


@pytest.mark.parametrize(
    "fields, param, message",
    [
        ({"messages": []}, "messages", "'messages' must be a non-empty list"),
        ({"messages": None}, "messages", "'messages' must be a non-empty list"),
        ({"messages": {"role": "user", "content": "hi"}}, "messages", "'messages' must be a non-empty list"),
        ({"messages": ["hi"]}, "messages[0]", "messages[0] must be an object"),
        ({"messages": [{"role": "robot", "content": "x"}]}, "messages[0].role", 'got "robot"'),
        ({"messages": MSGS + [{"role": "user"}]}, "messages[1].content", "must be a string"),
        ({"messages": [{"role": "user", "content": 3}]}, "messages[0].content", "must be a string"),
        ({"messages": [{"role": "user", "content": "\ud800"}]}, "messages[0].content", "lone UTF-16"),
        ({"max_tokens": 0}, "max_tokens", "'max_tokens' must be >= 1, got 0"),
        ({"max_tokens": -5}, "max_tokens", "'max_tokens' must be >= 1, got -5"),
        ({"max_tokens": 2.5}, "max_tokens", "'max_tokens' must be an integer"),
        ({"max_tokens": "8"}, "max_tokens", "'max_tokens' must be an integer"),
        ({"top_p": 0}, "top_p", "'top_p' must be in (0, 1]"),
        ({"top_p": 1.5}, "top_p", "'top_p' must be in (0, 1]"),
        ({"top_p": "high"}, "top_p", "'top_p' must be a finite number"),
        ({"temperature": -0.1}, "temperature", "'temperature' must be >= 0"),
        ({"temperature": 10**400}, "temperature", "'temperature' must be a finite number"),
        ({"temperature": True}, "temperature", "'temperature' must be a finite number"),
        ({"seed": -1}, "seed", "'seed' must be in 0..9223372036854775807, got -1"),
        ({"seed": 2**63}, "seed", "'seed' must be in 0..9223372036854775807"),
        ({"seed": 1.5}, "seed", "'seed' must be an integer"),
        ({"seed": [1]}, "seed", "'seed' must be an integer, got a JSON array"),
        ({"n": 2}, "n", "'n' must be 1"),
        ({"stream": True}, "stream", "stream is not supported"),
        ({"stream": "yes"}, "stream", "stream is not supported"),
        ({"stop": ["\n"]}, "stop", "'stop' is not supported"),
        ({"model": "gpt-4"}, "model", 'unknown model "gpt-4"; this server serves "tiny"'),
    ],
)
def test_client_errors_name_the_field(server, fields, param, message):
    status, body, _ = chat(server, **fields)
    assert status == 400, body
    assert body["error"]["param"] == param and body["error"]["type"] == "invalid_request_error"
    assert message in body["error"]["message"]


@pytest.mark.parametrize(
    "body, message",
    [
        (b"{not json", "the request body is not valid JSON"),
        (b"\xff\xfe{}", "the request body is not valid JSON"),
        (b"[" * 2000 + b"]" * 2000, "the request body is nested too deeply"),
        (b'{"messages": ' + b"[" * 1500 + b"]" * 1500 + b"}", "the request body is nested too deeply"),
        (b'["a list"]', "the request body must be a JSON object"),
    ],
)
def test_malformed_or_deep_json_is_400(server, body, message):
    status, answer, _ = post(server, body)
    assert status == 400 and message in answer["error"]["message"]


def test_body_limit_refused_unread(server):
    # Only the headers are sent: a 413 that comes back at once shows the body was never waited for.
    status, body, took = post(server, b"", {"Content-Length": str(LIMIT + 1)})
    assert status == 413 and took < TIMEOUT / 2
    assert body["error"]["message"] == f"body of {LIMIT + 1} bytes exceeds the limit of {LIMIT}"
    assert post(server, b"", {"Content-Length": "9" * 40})[0] == 413  # absurd
    assert chat(server, max_tokens=2, temperature=0, padding="x" * LIMIT)[0] == 413


@pytest.mark.parametrize(
    "headers, status, message",
    [
        ({}, 411, "Content-Length is required"),
        ({"Transfer-Encoding": "chunked"}, 411, "chunked bodies are not supported"),
        ({"Content-Length": "abc"}, 400, "invalid Content-Length 'abc'"),
        ({"Content-Length": "-1"}, 400, "invalid Content-Length '-1'"),
        ({"Content-Length": "1e3"}, 400, "invalid Content-Length"),
    ],
)
def test_missing_or_invalid_content_length(server, headers, status, message):
    got, body, _ = post(server, b"", headers)
    assert got == status and message in body["error"]["message"]


def test_conflicting_content_lengths(server):
    data = b"POST /v1/chat/completions HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"
    status, body, _ = exchange(server, data)
    assert status == 400 and "invalid Content-Length" in body["error"]["message"]


def test_stalled_connections_are_closed_by_the_timeout(server):
    # A client that connects and sends nothing: the server hangs up after --timeout, no answer owed.
    with socket.create_connection(("127.0.0.1", server), timeout=10) as s:
        t0 = time.monotonic()
        assert s.recv(1) == b""  # EOF: closed by the server, not by this client
        assert TIMEOUT * 0.8 < time.monotonic() - t0 < TIMEOUT + 3
    # A body that stops short of its Content-Length: 408 after the timeout.
    t0 = time.monotonic()
    status, body, _ = post(server, b'{"messages": [', {"Content-Length": "100"})
    assert status == 408 and "did not arrive within 1 s" in body["error"]["message"]
    assert TIMEOUT * 0.8 < time.monotonic() - t0 < TIMEOUT + 3
    # The server still serves.
    assert chat(server, max_tokens=2, temperature=0)[0] == 200


def test_a_dripping_client_cannot_hold_a_thread(server):
    """One byte every TIMEOUT/2: no single read times out, the whole-body deadline does."""
    with socket.create_connection(("127.0.0.1", server), timeout=10) as s:
        s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: t\r\nContent-Length: 50\r\n\r\n")
        t0 = time.monotonic()
        out = b""
        for _ in range(20):
            try:
                s.sendall(b" ")
            except OSError:
                break
            s.settimeout(TIMEOUT / 2)
            try:
                out += s.recv(65536)
                if out:
                    break
            except TimeoutError:
                pass
        assert out.startswith(b"HTTP/1.0 408") and time.monotonic() - t0 < TIMEOUT + 3


def test_server_faults_are_500():
    class Broken:
        def generate(self, conversations, cfg, keys=None):
            raise RuntimeError("out of memory")

    srv = make_server(Broken(), "tiny", port=0, timeout=TIMEOUT)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        status, body, _ = chat(srv.server_address[1], max_tokens=2)
        assert status == 500 and body["error"]["type"] == "server_error"
        assert body["error"]["message"] == "RuntimeError: out of memory"
    finally:
        srv.shutdown()
        srv.server_close()
