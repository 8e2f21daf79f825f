"""The Trainer recipes (SFT, estimator) in two CPU processes under torchrun: one process group (gloo),
one publisher. Without ``--use-cpu`` each process had trained alone, thinking it was process 0, and the
second stopped at the first's output lock. (PPO's two-process test is in test_ppo.py.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import TINY, load_recipe
from test_progress import record_from_expert

from envs import load_tasks

REPO = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("alfworld_ready")]


def torchrun(port: int, *argv: str) -> subprocess.CompletedProcess:
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_port",
        str(port),
        *argv,
    ]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)


def test_two_process_cpu_sft(tmp_path):
    build = load_recipe("sft/build_expert_data.py")
    data = tmp_path / "sft.json"
    data.write_text(json.dumps(build.build(build.BuildConfig(env="alfworld", num_tasks=4))))
    out = tmp_path / "sft"
    res = torchrun(29561, "sft/train.py", "--data", str(data), "--model", TINY, "--output-dir", str(out),
                   "--num-train-epochs", "1", "--per-device-train-batch-size", "1", "--max-length", "4096",
                   "--report-to", "none", "--dtype", "fp32")  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    summary = json.loads((out / "train_summary.json").read_text())
    # 4 conversations over 2 processes x batch 1: two optimizer steps, each on one per process.
    assert summary["world_size"] == 2 and summary["trajectories"] == 4 and summary["optimizer_steps"] == 2
    assert (out / "model" / "model.safetensors").exists()


@pytest.mark.parametrize("backbone", ["lora", "frozen"])
def test_two_process_cpu_estimator(tmp_path, backbone):
    tasks = load_tasks("alfworld", "train", limit=4)
    recs = [record_from_expert(t, success=True) for t in tasks]
    recs += [record_from_expert(t, n_steps=2, success=False, rollout=1) for t in tasks]
    data = tmp_path / "data"
    data.mkdir()
    (data / "train.jsonl").write_text("".join(r.to_json() + "\n" for r in recs[:6]))
    (data / "val.jsonl").write_text("".join(r.to_json() + "\n" for r in recs[6:]))
    out = tmp_path / "est"
    res = torchrun(29562 + (backbone == "frozen"), "prm/train.py", "--data-dir", str(data), "--model", TINY,
                   "--output-dir", str(out), "--head", "mlp", "--backbone", backbone, "--num-train-epochs", "2",
                   "--per-device-train-batch-size", "1", "--max-length", "2048", "--save-strategy", "no",
                   "--report-to", "none", "--dtype", "fp32")  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stdout.count("saved ") == 1  # the main process alone publishes the estimator
    assert (out / "estimator" / "head.safetensors").exists()
    assert json.loads((out / "eval.json").read_text())["val"]["n"] == 2
