"""Run fingerprints, output locks and resumable sampling: a stage resumes, skips or reports a folder only
when it was written with the same settings and inputs; a second writer is refused; a resumed PPO run draws
what the uninterrupted run drew."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import TINY
from test_ppo import MESSAGES, ppo_record

from spa_rl.fingerprint import (
    OutputConflict,
    claim_file,
    claim_output,
    locked,
    make_fingerprint,
    mark_file,
)
from spa_rl.rl.sampler import PassSampler
from spa_rl.training import publish_dir, recover_published

REPO = Path(__file__).resolve().parents[1]
ENV1 = dict(os.environ, OMP_NUM_THREADS="1")


def test_pass_sampler_draw_depends_only_on_its_position():
    whole = PassSampler(5, seed=3).take(0, 12)
    pieces = [PassSampler(5, seed=3).take(s, 4) for s in (0, 4, 8)]  # fresh samplers: a resumed run
    assert sum(pieces, []) == whole
    assert sorted(whole[:5]) == sorted(whole[5:10]) == list(range(5))  # each pass is a permutation
    assert whole[:5] != whole[5:10] or whole[5:10] != PassSampler(5, seed=3).take(10, 5)
    assert PassSampler(5, seed=4).take(0, 5) != whole[:5] or PassSampler(5, seed=5).take(0, 5) != whole[:5]


def test_claim_output_refuses_other_settings_names_them_and_overwrite_starts_over(tmp_path):
    out = tmp_path / "stage"
    model = tmp_path / "model.bin"
    model.write_bytes(b"weights A")
    with claim_output(out, "demo", {"lr": 1e-4, "seed": 1}, {"model": model}):
        (out / "result.txt").write_text("A")
    with claim_output(out, "demo", {"lr": 1e-4, "seed": 1}, {"model": model}):  # same: resume
        assert (out / "result.txt").read_text() == "A"
    with pytest.raises(OutputConflict) as e:
        with claim_output(out, "demo", {"lr": 3e-4, "seed": 1}, {"model": model}):
            pass
    assert "lr: 0.0001 -> 0.0003" in str(e.value) and "--overwrite" in str(e.value)
    model.write_bytes(b"weights B")  # same path, other content
    with pytest.raises(OutputConflict, match="input model: its content differs"):
        with claim_output(out, "demo", {"lr": 1e-4, "seed": 1}, {"model": model}):
            pass
    with claim_output(out, "demo", {"lr": 1e-4, "seed": 1}, {"model": model}, overwrite=True):
        assert not (out / "result.txt").exists()  # --overwrite really starts over
    # A folder with output but no fingerprint (by hand, or an older version) is not adopted.
    legacy = tmp_path / "legacy"
    legacy.mkdir()
    (legacy / "episodes.jsonl").write_text("{}\n")
    with pytest.raises(OutputConflict, match="no fingerprint.json"):
        with claim_output(legacy, "demo", {}, {}):
            pass


def test_a_second_writer_is_refused_while_the_first_holds_the_folder(tmp_path):
    out = tmp_path / "stage"
    with locked(out):
        with pytest.raises(OutputConflict, match=rf"being written by another run \(pid {os.getpid()}\)"):
            with claim_output(out, "demo", {}, {}):
                pass
    with claim_output(out, "demo", {}, {}):  # released
        pass


def test_file_outputs_skip_when_current_redo_or_refuse_when_changed(tmp_path):
    out = tmp_path / "values.jsonl"
    fp1, fp2 = make_fingerprint("x", {"alpha": 1.0}, {}), make_fingerprint("x", {"alpha": 0.5}, {})
    with claim_file(out, fp1) as current:
        assert not current
        mark_file(out, fp1)
        out.write_text("1\n")
    with claim_file(out, fp1) as current:
        assert current
    with pytest.raises(OutputConflict, match="alpha: 1.0 -> 0.5"):
        with claim_file(out, fp2):
            pass
    with claim_file(out, fp2, redo_when_changed=True) as current:  # a deterministic derived file
        assert not current
    work = tmp_path / "values.episodes.jsonl"
    work.write_text("partial\n")
    with claim_file(out, fp2, overwrite=True, work_files=(work,)) as current:
        assert not current and not work.exists()


def test_a_failed_redo_leaves_no_output_under_the_new_fingerprint(tmp_path):
    """A derived file whose redo fails half-way must be written again by the next run, not skipped."""
    out, folder = tmp_path / "fused.jsonl", tmp_path / "merged"
    fp1, fp2 = make_fingerprint("x", {"icl": 1}, {}), make_fingerprint("x", {"icl": 0}, {})
    for path, write in ((out, lambda: out.write_text("old\n")), (folder, lambda: folder.mkdir())):
        with claim_file(path, fp1):
            mark_file(path, fp1)
            write()
        with pytest.raises(RuntimeError, match="the redo failed"):
            with claim_file(path, fp2, redo_when_changed=True) as current:
                assert not current and not path.exists()  # the old output is gone before the work
                mark_file(path, fp2)
                raise RuntimeError("the redo failed")
        with claim_file(path, fp2, redo_when_changed=True) as current:
            assert not current


def test_a_kill_between_the_two_renames_of_a_checkpoint_publish_loses_nothing(tmp_path):
    final, tmp = tmp_path / "checkpoint", tmp_path / "checkpoint.partial"
    final.mkdir()
    (final / "state.json").write_text('{"iteration": 5}')
    tmp.mkdir()
    (tmp / "state.json").write_text('{"iteration": 10}')
    os.replace(final, final.with_name("checkpoint.old"))  # publish_dir's first rename, then the kill
    recover_published(final)
    assert json.loads((final / "state.json").read_text())["iteration"] == 5
    publish_dir(tmp, final)
    assert json.loads((final / "state.json").read_text())["iteration"] == 10
    assert not final.with_name("checkpoint.old").exists()


def _ppo_data(path: Path, n: int = 6) -> Path:
    lines = []
    for k in range(n):
        rec = ppo_record(MESSAGES, 1, [0.1 * k, 1.0 - 0.1 * k])
        lines.append(json.dumps({**rec.__dict__, "rollout": k}))
    path.write_text("".join(ln + "\n" for ln in lines))
    return path


def _ppo(data: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "ppo/train.py", "--mode", "offline", "--model", str(TINY), "--data", str(data),
            "--output-dir", str(out), "--iterations", "6", "--rollouts-per-iteration", "2", "--minibatch-size",
            "1", "--save-every", "1", "--lr", "1e-3", "--dtype", "fp32", *extra]  # fmt: skip


@pytest.mark.slow
def test_ppo_resumed_after_a_kill_ends_where_the_uninterrupted_run_ends(tmp_path):
    from safetensors.torch import load_file

    data = _ppo_data(tmp_path / "ppo.jsonl")
    whole = tmp_path / "whole"
    res = subprocess.run(_ppo(data, whole), cwd=REPO, env=ENV1, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    assert not (whole / "checkpoint").exists()  # a finished run keeps no checkpoint to resume from

    cut = tmp_path / "cut"
    proc = subprocess.Popen(
        _ppo(data, cut), cwd=REPO, env=ENV1, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    state = cut / "checkpoint" / "state.json"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if state.exists() and json.loads(state.read_text())["iteration"] >= 2:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    stopped_at = json.loads(state.read_text())["iteration"]
    assert 2 <= stopped_at < 6

    # Another learning rate into the same folder: refused, naming the setting.
    other = subprocess.run(
        _ppo(data, cut, "--lr", "1e-4"), cwd=REPO, env=ENV1, capture_output=True, text=True
    )
    assert other.returncode != 0 and "lr: 0.001 -> 0.0001" in other.stderr

    res = subprocess.run(_ppo(data, cut), cwd=REPO, env=ENV1, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    assert f"resuming at iteration {stopped_at}" in res.stdout + res.stderr
    a = load_file(whole / "adapter" / "adapter_model.safetensors")
    b = load_file(cut / "adapter" / "adapter_model.safetensors")
    assert a.keys() == b.keys()
    # Same rollouts in the same order and the same optimizer state: the same weights.
    assert all((a[k] - b[k]).abs().max().item() < 1e-6 for k in a)

    # The finished run is skipped; --overwrite trains again from iteration 0.
    again = subprocess.run(_ppo(data, cut), cwd=REPO, env=ENV1, capture_output=True, text=True)
    assert again.returncode == 0 and "exists with these settings" in again.stdout
    shutil.rmtree(cut / "adapter")
    redo = subprocess.run(
        _ppo(data, cut, "--iterations", "1"), cwd=REPO, env=ENV1, capture_output=True, text=True
    )
    assert redo.returncode != 0 and "iterations: 6 -> 1" in redo.stderr
    redo = subprocess.run(
        _ppo(data, cut, "--iterations", "1", "--overwrite", "true"),
        cwd=REPO,
        env=ENV1,
        capture_output=True,
        text=True,
    )
    assert redo.returncode == 0, redo.stderr[-2000:]
    log = (cut / "train_log.jsonl").read_text().splitlines()
    assert len(log) == 1 and "resuming" not in redo.stdout + redo.stderr


def _sharegpt(path: Path) -> Path:
    from conftest import load_recipe

    build = load_recipe("sft/build_expert_data.py")
    path.write_text(json.dumps(build.build(build.BuildConfig(env="alfworld", num_tasks=2))))
    return path


def _sft(data: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "sft/train.py", "--data", str(data), "--model", str(TINY), "--output_dir", str(out),
            "--max_steps", "2", "--per_device_train_batch_size", "1", "--learning_rate", "1e-3",
            "--save_strategy", "steps", "--save_steps", "1", "--report_to", "none", "--max_length", "4096",
            "--dtype", "fp32", *extra]  # fmt: skip


@pytest.mark.slow
@pytest.mark.usefixtures("alfworld_ready")
def test_sft_overwrite_and_retraining_after_deleting_the_model_really_train(tmp_path):
    data = _sharegpt(tmp_path / "sft.json")
    out = tmp_path / "sft"
    run = lambda *a: subprocess.run(_sft(data, out, *a), cwd=REPO, env=ENV1, capture_output=True, text=True)  # noqa: E731
    first = run()
    assert first.returncode == 0, first.stderr[-2000:]
    assert not (out / "checkpoints").exists()  # checkpoints serve an interrupted run only
    other = run("--learning_rate", "1e-4")
    assert other.returncode != 0 and "learning_rate: 0.001 -> 0.0001" in other.stderr
    for how in (("--overwrite", "true"), ()):
        if not how:
            shutil.rmtree(out / "model")  # retraining after deleting the model
        res = run(*how)
        assert res.returncode == 0, res.stderr[-2000:]
        summary = json.loads((out / "train_summary.json").read_text())
        assert (
            summary["optimizer_steps"] == 2 and summary["tokens_per_second"] is not None
        )  # trained, no resume
        assert "resuming from" not in res.stdout + res.stderr


@pytest.mark.usefixtures("alfworld_ready")
def test_evaluation_into_another_models_folder_is_refused(tmp_path):
    from spa_rl.agent.evaluate import EvalConfig, evaluate

    cfg = EvalConfig(env="alfworld", split="unseen", model=str(TINY), num_tasks=1, max_steps=1, max_new_tokens=4,
                     batch_size=1, output_dir=str(tmp_path / "eval"), no_progress=True)  # fmt: skip
    assert evaluate(cfg)["metrics"]["n"] == 1
    other = tmp_path / "other-model"
    shutil.copytree(TINY, other)
    cfg_json = json.loads((other / "config.json").read_text())
    (other / "config.json").write_text(json.dumps({**cfg_json, "rms_norm_eps": 1e-5}))
    with pytest.raises(OutputConflict, match="input model: its content differs"):
        evaluate(EvalConfig(**{**cfg.__dict__, "model": str(other)}))
    with pytest.raises(OutputConflict, match="temperature: 0.0 -> 0.7"):
        evaluate(EvalConfig(**{**cfg.__dict__, "temperature": 0.7}))
    again = evaluate(EvalConfig(**{**cfg.__dict__, "batch_size": 4}))  # speed settings may change
    assert again["this_run"]["episodes"] == 0 and again["metrics"]["n"] == 1
