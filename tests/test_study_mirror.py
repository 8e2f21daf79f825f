"""The study's committed mirror (tools/study_mirror.py) and scripts/run_study.sh's use of it: small files
mirrored and restored, weights left out, nothing overwritten, and models whose evaluation is complete not
trained again."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))
import study_mirror  # noqa: E402


def _write(path: Path, data: bytes | str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data if isinstance(data, bytes) else data.encode())


def _run_folder(run: Path) -> None:
    _write(run / "timings.tsv", "sft\t806\t2026-12-03T13:00:00Z\toffline\tXeon x 2, no bf16\n")
    _write(run / "sft" / "fingerprint.json", '{"stage": "sft"}')
    _write(run / "sft" / "model" / "model.safetensors", b"\0" * (2 << 20))  # a model: weights over 1 MiB
    _write(run / "sft" / "model" / "tokenizer.json", "{}")
    _write(run / "sft" / "model" / "train_summary.json", '{"command": "sft/train.py"}')
    _write(run / "sft" / "checkpoint-10" / "trainer_state.json", "{}")
    _write(run / "exploration" / "episodes.jsonl", '{"task_id": "a"}\n')
    _write(run / "estimator" / "estimator" / "head.safetensors", b"\1" * 1000)  # the MLP head: kept
    _write(run / "estimator" / "data" / "train.jsonl", "{}\n")
    _write(run / "estimator" / "features" / "features.safetensors", b"\3" * 1000)  # a cache, under the limit
    _write(run / "ppo_data" / "progress.jsonl", "{}\n")
    _write(run / "ppo_data" / "progress.info.json", '{"steps": 3}')
    _write(run / "ppo_offline_sparse_seed1" / "adapter" / "adapter_model.safetensors", b"\2" * (3 << 20))
    _write(run / "ppo_offline_sparse_seed1" / "probe_log.jsonl", '{"updates": 0}\n')
    _write(run / "eval" / "sft_unseen" / "episodes.jsonl", '{"task_id": "u1"}\n')
    _write(run / "eval" / "sft_unseen" / "summary.json", '{"metrics": {"n": 1}}')
    _write(run / "eval" / "sft_unseen" / ".lock", "")
    _write(run / "logs" / "big.log", "x" * 5000)


def test_save_restore_keeps_results_and_leaves_out_weights(tmp_path):
    run, mirror = tmp_path / "run", tmp_path / "mirror"
    _run_folder(run)
    m = study_mirror.save(run, mirror, max_weight_mb=1.0, max_file_mb=0.004)  # big.log: 4.9 KiB, over
    kept = {"timings.tsv", "sft/fingerprint.json", "sft/model/train_summary.json", "exploration/episodes.jsonl",
            "estimator/estimator/head.safetensors", "ppo_data/progress.info.json",
            "ppo_offline_sparse_seed1/probe_log.jsonl", "eval/sft_unseen/episodes.jsonl",
            "eval/sft_unseen/summary.json"}  # fmt: skip
    assert set(m["files"]) == kept
    assert {p.relative_to(mirror).as_posix() for p in mirror.rglob("*") if p.is_file()} == kept | {
        "manifest.json"
    }
    assert m["weights_dirs"] == ["ppo_offline_sparse_seed1/adapter", "sft/model"]
    assert m["skipped"]["logs/big.log"].startswith("over the size limit")
    assert m["skipped"]["ppo_data/progress.jsonl"].startswith("derived")
    assert m["skipped"]["estimator/features/features.safetensors"].startswith("derived")
    assert m["skipped"]["sft/checkpoint-10/trainer_state.json"].startswith("checkpoint")

    # A new machine: everything but the weights folders' summaries comes back, byte for byte.
    new = tmp_path / "new"
    assert study_mirror.restore(mirror, new) == (len(kept) - 1, 0)
    assert not (new / "sft" / "model").exists()  # SFT trains again and writes its own folder
    for rel in kept - {"sft/model/train_summary.json"}:
        assert (new / rel).read_bytes() == (run / rel).read_bytes(), rel
    assert study_mirror.restore(mirror, new) == (0, len(kept) - 1)  # a second restore: all there

    # Work appended since the save (a stage that went on after a save in its middle) is kept as it is.
    grown = new / "exploration" / "episodes.jsonl"
    grown.write_text(grown.read_text() + '{"task_id": "b"}\n')
    assert study_mirror.restore(mirror, new) == (0, len(kept) - 1)
    assert grown.read_text().count("task_id") == 2
    # A shorter file, or one that changed within the mirror's bytes, is other work.
    grown.write_text('{"task_id": "c"}\n{"task_id": "b"}\n')
    with pytest.raises(SystemExit, match="exploration/episodes.jsonl"):
        study_mirror.restore(mirror, new)
    grown.write_text('{"task_id": "a"}\n')

    # A run folder holding other work: nothing is overwritten, and the message names the file.
    _write(new / "eval" / "sft_unseen" / "summary.json", '{"metrics": {"n": 2}}')
    (new / "exploration" / "episodes.jsonl").unlink()
    with pytest.raises(SystemExit, match="eval/sft_unseen/summary.json"):
        study_mirror.restore(mirror, new)
    assert not (new / "exploration" / "episodes.jsonl").exists()
    assert json.loads((new / "eval" / "sft_unseen" / "summary.json").read_text())["metrics"]["n"] == 2

    # A second save after more work updates the mirror and its manifest.
    _write(run / "ppo_offline_sparse_seed1" / "probe_log.jsonl", '{"updates": 0}\n{"updates": 20}\n')
    m2 = study_mirror.save(run, mirror, max_weight_mb=1.0, max_file_mb=0.004)
    assert m2["files"]["ppo_offline_sparse_seed1/probe_log.jsonl"]["size"] > m["files"][
        "ppo_offline_sparse_seed1/probe_log.jsonl"]["size"]  # fmt: skip
    assert (mirror / "ppo_offline_sparse_seed1" / "probe_log.jsonl").read_text().count("updates") == 2


def test_a_save_during_a_stage_records_what_the_mirror_holds(tmp_path, monkeypatch):
    """A running stage appends an episode between the save's hash and its copy: the manifest describes the
    mirror's copy, so a restore from it passes its integrity check."""
    run, mirror = tmp_path / "run", tmp_path / "mirror"
    _write(run / "exploration" / "episodes.jsonl", '{"task_id": "a"}\n')
    copy = study_mirror._copy

    def copy_after_an_append(src: Path, dest: Path) -> None:  # the stage writes one line and half another
        src.write_text(src.read_text() + '{"task_id": "b"}\n{"task_id": ')
        copy(src, dest)

    monkeypatch.setattr(study_mirror, "_copy", copy_after_an_append)
    m = study_mirror.save(run, mirror, max_weight_mb=1.0, max_file_mb=20)
    monkeypatch.undo()
    held = mirror / "exploration" / "episodes.jsonl"
    assert held.read_text() == '{"task_id": "a"}\n{"task_id": "b"}\n'  # complete lines only
    assert m["files"]["exploration/episodes.jsonl"]["size"] == held.stat().st_size
    assert study_mirror.restore(mirror, tmp_path / "new") == (1, 0)
    assert study_mirror.restore(mirror, run) == (0, 1)  # the run's file, torn line and all, extends it


def test_restore_refuses_a_folder_that_is_not_a_mirror(tmp_path):
    with pytest.raises(SystemExit, match="not a study mirror"):
        study_mirror.restore(tmp_path, tmp_path / "run")


def _study(run: Path, mirror: str, stages: str, **env_vars: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PROFILE="study", RUN_DIR=str(run), STUDY_MIRROR=mirror, STUDY_SEEDS="1",
               PPO_VARIANTS="sparse", HELDOUT_TASKS="1") | env_vars  # fmt: skip
    return subprocess.run(["bash", "scripts/run_study.sh", "alfworld", stages], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)  # fmt: skip


def test_run_study_restores_the_mirror_and_skips_models_evaluated_elsewhere(tmp_path):
    """A PPO model whose every evaluation split is in the (restored) run folder is not trained again; one
    with a split missing is (here it fails at once: there is no PPO data), and the failure stops the study."""
    src, mirror = tmp_path / "old", tmp_path / "mirror"
    for split in ("unseen", "seen", "heldout"):
        _write(src / "eval" / f"ppo_offline_sparse_seed1_{split}" / "summary.json", '{"metrics": {"n": 1}}')
    study_mirror.save(src, mirror, max_weight_mb=1.0, max_file_mb=20)
    run = tmp_path / "run"
    res = _study(run, str(mirror), "ppo eval_ppo")
    assert res.returncode == 0, res.stderr[-2000:]
    assert "ppo_offline_sparse_seed1: evaluated on every split" in res.stdout
    assert (run / "eval" / "ppo_offline_sparse_seed1_heldout" / "summary.json").exists()  # restored

    (run / "eval" / "ppo_offline_sparse_seed1_heldout" / "summary.json").unlink()
    res = _study(run, "", "ppo eval_ppo")
    assert res.returncode != 0 and "=== [ppo_sparse_seed1]" in res.stdout
    assert "=== [eval_sparse_seed1]" not in res.stdout  # the failed stage stopped the study


def test_run_study_trains_models_side_by_side(tmp_path):
    """STUDY_JOBS=2: the models are shared out between two jobs with one thread each (when there are 2 cores)
    and their own logs; the job whose model was evaluated elsewhere skips it, the other's failure (no PPO
    data) does not stop the first, and the study then fails naming the logs."""
    src, mirror = tmp_path / "old", tmp_path / "mirror"
    for split in ("unseen", "seen", "heldout"):
        _write(src / "eval" / f"ppo_offline_sparse_seed1_{split}" / "summary.json", '{"metrics": {"n": 1}}')
    study_mirror.save(src, mirror, max_weight_mb=1.0, max_file_mb=20)
    run = tmp_path / "run"
    res = _study(run, str(mirror), "ppo eval_ppo", STUDY_JOBS="2", PPO_VARIANTS="sparse progress")
    assert res.returncode != 0
    assert "[study] job 0" in res.stdout and "sparse 1;" in res.stdout
    assert "[study] job 1" in res.stdout and "progress 1;" in res.stdout
    assert "1 of 2 jobs failed" in res.stderr
    job0, job1 = (run / "study_job0.log").read_text(), (run / "study_job1.log").read_text()
    assert "ppo_offline_sparse_seed1: evaluated on every split" in job0
    assert "=== [ppo_progress_seed1]" in job1 and "=== [eval_progress_seed1]" not in job1
