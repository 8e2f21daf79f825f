"""Launching the training stages (issue 21): the check that names what a launch is missing (GPUs,
DeepSpeed, a config), the stage scripts that stop at once on it, the committed accelerate configs, and
the recipes' refusals (PPO under DeepSpeed, the estimator under ZeRO-3)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from spa_rl.launch import deepspeed_installed, deepspeed_stage, launch_notes, launch_problems, refuse_zero3

REPO = Path(__file__).resolve().parents[1]
DS = {"SFT_DEEPSPEED": "sft/configs/ds_zero3.json", "PRM_DEEPSPEED": "prm/configs/ds_zero2.json"}


def problems(num_gpus, visible, deepspeed=DS, have_ds=True, cuda=True):
    cwd = os.getcwd()
    os.chdir(REPO)  # the configs are named relative to the repository, as the stage scripts run
    try:
        return launch_problems(num_gpus, deepspeed, visible, "2.13.0", cuda, have_ds)
    finally:
        os.chdir(cwd)


def test_launch_check_names_what_is_missing():
    assert problems(4, 4) == [] and problems(1, 0) == [] and problems(1, 0, have_ds=False) == []
    (msg,) = problems(4, 0, cuda=False)
    assert "NUM_GPUS=4 but torch sees no GPU" in msg and "CPU-only build" in msg and "NUM_GPUS=1" in msg
    (msg,) = problems(4, 2)
    assert "torch sees 2 GPU(s)" in msg and "NUM_GPUS=2" in msg
    missing = problems(2, 2, have_ds=False)
    assert len(missing) == 2 and all("DeepSpeed, which is not installed" in m for m in missing)
    assert (
        "pip install deepspeed==0.19.8" in missing[0]
        and "SFT_DEEPSPEED= to train with plain DDP" in missing[0]
    )
    assert problems(2, 2, deepspeed={"SFT_DEEPSPEED": ""}, have_ds=False) == []  # plain DDP needs nothing
    assert problems(2, 2, deepspeed={"PRM_DEEPSPEED": "nope.json"}) == [
        "PRM_DEEPSPEED=nope.json: no such DeepSpeed config"
    ]
    assert "NUM_GPUS=0" in problems(0, 0)[0]
    assert launch_notes(1, DS)[0].startswith(
        "note: SFT_DEEPSPEED=sft/configs/ds_zero3.json applies with NUM_GPUS > 1"
    )
    assert launch_notes(4, DS) == []


def test_deepspeed_configs_and_refusals():
    assert deepspeed_stage(REPO / "sft/configs/ds_zero3.json") == 3
    assert deepspeed_stage(REPO / "prm/configs/ds_zero2.json") == 2 and deepspeed_stage(None) is None
    refuse_zero3(str(REPO / "prm/configs/ds_zero2.json"), "the estimator", "why")  # ZeRO-2: fine
    with pytest.raises(SystemExit, match="the estimator does not run under DeepSpeed ZeRO-3"):
        refuse_zero3({"zero_optimization": {"stage": 3}}, "the estimator", "it saves its weights itself")


def test_committed_accelerate_configs():
    ddp = yaml.safe_load((REPO / "scripts/accelerate/ddp.yaml").read_text())
    assert ddp["distributed_type"] == "MULTI_GPU" and ddp["mixed_precision"] == "no"
    for name, stage in (("zero2", 2), ("zero3", 3)):
        cfg = yaml.safe_load((REPO / f"scripts/accelerate/{name}.yaml").read_text())
        assert cfg["distributed_type"] == "DEEPSPEED"
        assert deepspeed_stage(REPO / cfg["deepspeed_config"]["deepspeed_config_file"]) == stage


def _stage(script: str, *args: str, **env: str) -> subprocess.CompletedProcess:
    full = dict(os.environ, OMP_NUM_THREADS="1", **env)
    return subprocess.run(
        ["bash", script, *args], cwd=REPO, env=full, capture_output=True, text=True, timeout=300
    )


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks a machine without a GPU")
@pytest.mark.parametrize("script", ["sft/run_sft.sh", "prm/run_prm.sh", "scripts/run_pipeline.sh"])
def test_paper_profile_without_gpus_stops_at_once_naming_them(tmp_path, script):
    """PROFILE=paper asks for 4 GPUs: on a CPU machine each training stage (and the pipeline) stops before
    any work, with the way to run it on the CPU instead; it used to start accelerate and fail in SFT with
    PackageNotFoundError: deepspeed."""
    run_dir = tmp_path / "run"
    res = _stage(
        script, "alfworld", PROFILE="paper", BASE_MODEL=str(REPO / "models/tiny-llama"), RUN_DIR=str(run_dir)
    )
    assert res.returncode == 2, res.stderr[-2000:]
    assert "error: NUM_GPUS=4 but torch sees no GPU" in res.stderr and "NUM_GPUS=1" in res.stderr
    assert "Traceback" not in res.stderr
    assert not (run_dir / "sft").exists() and not (run_dir / "estimator").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks a machine without a GPU")
def test_ppo_stage_checks_the_gpus_too(tmp_path):
    res = _stage("ppo/run_ppo.sh", "alfworld", "progress", PROFILE="gpu", NUM_GPUS="2", RUN_DIR=str(tmp_path))
    assert res.returncode == 2 and "NUM_GPUS=2 but torch sees no GPU" in res.stderr, res.stderr[-2000:]


@pytest.mark.slow
@pytest.mark.usefixtures("alfworld_ready")
@pytest.mark.skipif(
    not deepspeed_installed(), reason="DeepSpeed is not installed (scripts/setup.sh: GPU machines)"
)
def test_the_committed_deepspeed_configs_train_in_one_process(tmp_path):
    """The paper profile's configs through the Trainer, one process (DeepSpeed's CPU accelerator here):
    SFT under ZeRO-3, the full-backbone estimator under ZeRO-2 with optimizer offload. Their "auto"
    entries are filled from the final settings (bf16 by hardware is chosen after TrainingArguments)."""
    import json

    from conftest import TINY, load_recipe
    from test_progress import record_from_expert

    from envs import load_tasks

    build = load_recipe("sft/build_expert_data.py")
    data = tmp_path / "sft.json"
    data.write_text(json.dumps(build.build(build.BuildConfig(env="alfworld", num_tasks=2))))
    tasks = load_tasks("alfworld", "train", limit=3)
    recs = [record_from_expert(t, success=True) for t in tasks] + [record_from_expert(tasks[0], 2, False, 1)]
    est_data = tmp_path / "est_data"
    est_data.mkdir()
    (est_data / "train.jsonl").write_text("".join(r.to_json() + "\n" for r in recs[:3]))
    (est_data / "val.jsonl").write_text(recs[3].to_json() + "\n")
    runs = [
        ("sft/train.py", "--data", str(data), "--output-dir", str(tmp_path / "sft"), "--deepspeed",
         "sft/configs/ds_zero3.json", "--num-train-epochs", "1", "--max-length", "2048"),
        ("prm/train.py", "--data-dir", str(est_data), "--output-dir", str(tmp_path / "est"), "--backbone", "full",
         "--deepspeed", "prm/configs/ds_zero2.json", "--num-train-epochs", "1", "--max-length", "2048"),
    ]  # fmt: skip
    for port, (script, *args) in enumerate(runs, start=29571):
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "1", "--master_port", str(port), script,
               "--model", str(TINY), "--per-device-train-batch-size", "1", "--save-strategy", "no", "--report-to",
               "none", *args]  # fmt: skip
        res = subprocess.run(cmd, cwd=REPO, env=dict(os.environ, OMP_NUM_THREADS="1"), capture_output=True,
                             text=True, timeout=900)  # fmt: skip
        assert res.returncode == 0, res.stderr[-3000:]
        assert "saved " in res.stdout
    assert (tmp_path / "sft" / "model" / "config.json").exists()
    assert (tmp_path / "est" / "estimator" / "head.safetensors").exists()


def test_a_training_process_killed_by_the_kernel_is_named(tmp_path):
    """A recipe killed by SIGKILL (the out-of-memory killer: PROFILE=gpu's SFT on a 24 GB CPU machine that
    held another job was) stops the stage with its exit status and a line saying what to lower."""
    recipe = tmp_path / "recipe.sh"
    recipe.write_text("kill -KILL $$\n")
    cmd = f'source scripts/common.sh; PY=bash; NUM_GPUS=1; train_launch - "{recipe}"'
    res = subprocess.run(["bash", "-c", cmd], cwd=REPO, capture_output=True, text=True)
    assert res.returncode == 137, res.stderr
    assert "was killed (SIGKILL, exit 137), most likely out of memory" in res.stderr
    assert "SFT_BATCH" in res.stderr and str(recipe) in res.stderr
    ok = subprocess.run(
        ["bash", "-c", f'source scripts/common.sh; PY=bash; NUM_GPUS=1; train_launch - "{tmp_path / "ok.sh"}"'],
        cwd=REPO, capture_output=True, text=True,
    )  # fmt: skip
    assert ok.returncode == 127 and "SIGKILL" not in ok.stderr  # bash: no such file, passed through as is
