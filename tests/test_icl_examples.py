"""The in-context-example setting (``--icl-examples`` 1, the paper's prompt, or 0: instruction + task):
the prompt builder, expert data for both settings, the setting recorded in rollouts, model folders and
PPO data, and every stage refusing input made with the other setting."""

import json
import shutil
import subprocess
import sys

import pytest
from conftest import TINY, ExpertReplay, load_recipe

from envs import expert_trajectory, load_tasks
from spa_rl.agent.evaluate import evaluate, parse_args
from spa_rl.agent.experts import expert_messages
from spa_rl.agent.prompts import IclMismatch, get_prompt, read_model_info, write_model_info
from spa_rl.agent.runner import RolloutConfig, run_rollouts
from spa_rl.agent.schema import read_records
from spa_rl.agent.sharegpt import read_sharegpt
from spa_rl.rewards import read_ppo_data

REPO = __import__("envs.paths", fromlist=["REPO_ROOT"]).REPO_ROOT
build_expert_data = load_recipe("sft/build_expert_data.py")


def _example_texts(env):
    p = get_prompt(env)
    return [p.example_task] + [t for turn in p.example_turns for t in (turn[0], turn[2])]


@pytest.mark.parametrize("env", ["alfworld", "webshop", "virtualhome"])
def test_prompt_without_the_example(env):
    p = get_prompt(env)
    zero, one = p.build("THE FIRST OBSERVATION", 0), p.build("THE FIRST OBSERVATION", 1)
    assert zero == [{"role": "user", "content": f"{p.instruction}\n\n{p.task_intro}\nTHE FIRST OBSERVATION"}]
    assert not any(x in zero[0]["content"] for x in _example_texts(env))
    assert len(one) == 2 * len(p.example_turns) + 1 and one[0]["content"].startswith(p.instruction)
    assert one[-1]["content"].endswith("\nTHE FIRST OBSERVATION")
    with pytest.raises(ValueError, match="must be 0 or 1"):
        p.build("x", 2)


@pytest.mark.usefixtures("alfworld_ready")
def test_prompt_for_0_is_the_prefix_of_the_expert_conversation():
    for task in load_tasks("alfworld", "train", limit=3):
        first_obs, pairs = expert_trajectory(task)
        msgs, start = expert_messages(task, 0)
        assert start == 1 and msgs[:start] == get_prompt("alfworld").build(first_obs, 0)
        assert sum(m["role"] == "assistant" for m in msgs) == len(pairs)


@pytest.mark.usefixtures("alfworld_ready")
def test_expert_data_for_0_and_1():
    p = get_prompt("alfworld")
    by = {
        n: build_expert_data.build(build_expert_data.BuildConfig(env="alfworld", num_tasks=5, icl_examples=n))
        for n in (0, 1)
    }
    assert [r["id"] for r in by[0]] == [r["id"] for r in by[1]]
    for r0, r1 in zip(by[0], by[1], strict=True):
        assert (r0["icl_examples"], r1["icl_examples"]) == (0, 1)
        c0, c1 = r0["conversations"], r1["conversations"]
        k0, k1 = r0["context_turns"], r1["context_turns"]
        assert (k0, k1) == (1, 2 * len(p.example_turns) + 1)
        # The same instruction and task, and no example turn.
        first_obs = c1[k1 - 1]["value"].split(p.next_task_intro + "\n", 1)[1]
        assert c0[0] == {"from": "human", "value": f"{p.instruction}\n\n{p.task_intro}\n{first_obs}"}
        assert c1[0]["value"].startswith(p.instruction + "\n\n")
        assert not any(x in c["value"] for c in c0 for x in _example_texts("alfworld"))
        assert c0[k0:] == c1[k1:]  # the expert's turns are identical
    # Distinct default files, so that the two settings never overwrite each other.
    assert build_expert_data.default_output("alfworld", 1).name == "alfworld_sft.json"
    assert build_expert_data.default_output("alfworld", 0).name == "alfworld_sft_icl0.json"


@pytest.fixture(scope="module")
def expert_file_0(tmp_path_factory):
    out = tmp_path_factory.mktemp("sft") / "alfworld_sft_icl0.json"
    cmd = [sys.executable, "sft/build_expert_data.py", "--env", "alfworld", "--num-tasks", "2",
           "--icl-examples", "0", "--output", str(out)]  # fmt: skip
    subprocess.run(cmd, cwd=REPO, check=True, capture_output=True)
    return out


@pytest.mark.usefixtures("alfworld_ready")
def test_builder_records_the_setting(expert_file_0):
    assert all(r["icl_examples"] == 0 and r["context_turns"] == 1 for r in read_sharegpt(expert_file_0))
    stats = json.loads(expert_file_0.with_suffix(".stats.json").read_text())
    assert stats["config"]["icl_examples"] == 0


def _run_main(recipe, monkeypatch, *argv):
    monkeypatch.setattr(sys, "argv", [recipe, *map(str, argv)])
    load_recipe(recipe).main()


def _sft(monkeypatch, data, out, *flags):
    _run_main("sft/train.py", monkeypatch, "--data", data, "--model", TINY, "--output_dir", out, "--max_steps", 1,
              "--per_device_train_batch_size", 1, "--max_length", 1024, "--num_trajectories", 1,
              "--save_strategy", "no", "--report_to", "none", *flags)  # fmt: skip


@pytest.mark.usefixtures("alfworld_ready")
def test_sft_refuses_the_other_file_and_evaluation_the_other_model(tmp_path, expert_file_0, monkeypatch):
    # SFT with the paper's prompt on the file built without the example: refused before training.
    with pytest.raises(IclMismatch, match="icl_examples=0.*icl_examples=1") as e:
        _sft(monkeypatch, expert_file_0, tmp_path / "sft1", "--icl-examples", 1)
    assert str(expert_file_0) in str(e.value)
    assert not (tmp_path / "sft1" / "model").exists()
    # The matching setting trains and records it beside the weights (both spellings of the flag work).
    _sft(monkeypatch, expert_file_0, tmp_path / "sft0", "--icl_examples", 0)
    model = tmp_path / "sft0" / "model"
    assert read_model_info(model)["icl_examples"] == 0

    def cfg(n, out):
        return parse_args(
            ["--env", "alfworld", "--split", "unseen", "--model", str(model), "--num-tasks", "1",
             "--max-steps", "1", "--max-new-tokens", "4", "--device", "cpu", "--output-dir", str(out),
             "--no-progress", "--icl-examples", str(n)]
        )  # fmt: skip

    with pytest.raises(IclMismatch, match="icl_examples=0.*icl_examples=1") as e:
        evaluate(cfg(1, tmp_path / "eval1"))
    assert str(model / "spa_rl.json") in str(e.value)
    assert not (tmp_path / "eval1" / "episodes.jsonl").exists()
    summary = evaluate(cfg(0, tmp_path / "eval0"))
    assert summary["config"]["icl_examples"] == 0 and summary["icl_examples"] == 0
    (rec,) = read_records(tmp_path / "eval0" / "episodes.jsonl")
    assert rec.meta["icl_examples"] == 0 and rec.prefix_len == 1


@pytest.mark.usefixtures("alfworld_ready")
def test_a_model_without_a_record_is_accepted_with_either_setting(tmp_path):
    for n in (0, 1):
        cfg = parse_args(
            ["--env", "alfworld", "--split", "unseen", "--model", str(TINY), "--num-tasks", "1",
             "--max-steps", "1", "--max-new-tokens", "4", "--device", "cpu", "--output-dir",
             str(tmp_path / f"eval{n}"), "--no-progress", "--icl-examples", str(n)]
        )  # fmt: skip
        assert evaluate(cfg)["metrics"]["n"] == 1


@pytest.fixture(scope="module")
def rollouts_0(tmp_path_factory):
    """Expert replays of two train games played with the prompt without the example."""
    tasks = load_tasks("alfworld", "train", limit=2)
    out = tmp_path_factory.mktemp("explore") / "episodes.jsonl"
    policy = ExpertReplay("alfworld", {t.task_id: list(t.expert_actions) for t in tasks}, icl_examples=0)
    run_rollouts(tasks, policy, out, RolloutConfig(batch_size=2), meta={"temperature": 0.7}, progress=False,
                 icl_examples=0)  # fmt: skip
    return out


@pytest.mark.usefixtures("alfworld_ready")
def test_runner_records_the_setting_and_refuses_to_mix(rollouts_0):
    recs = read_records(rollouts_0)
    assert len(recs) == 2 and all(r.success and r.meta["icl_examples"] == 0 for r in recs)
    for r in recs:
        first_obs = r.messages[0]["content"].split(get_prompt("alfworld").task_intro + "\n", 1)[1]
        assert r.prefix_len == 1 and r.messages[:1] == get_prompt("alfworld").build(first_obs, 0)
    # More episodes into the same file with the other setting: refused.
    task = load_tasks("alfworld", "train", limit=3)[2]
    with pytest.raises(IclMismatch, match=str(rollouts_0)):
        run_rollouts([task], ExpertReplay("alfworld", {}), rollouts_0, RolloutConfig(), progress=False)


@pytest.mark.usefixtures("alfworld_ready")
def test_estimator_data_fusion_and_offline_ppo_refuse_the_other_setting(
    tmp_path, rollouts_0, monkeypatch, smol_tokenizer
):
    with pytest.raises(IclMismatch, match="icl_examples=0.*icl_examples=1"):
        _run_main("prm/data_org.py", monkeypatch, "--rollouts", rollouts_0, "--output-dir", tmp_path / "d")
    _run_main("prm/data_org.py", monkeypatch, "--rollouts", rollouts_0, "--output-dir", tmp_path / "d",
              "--icl-examples", 0)  # fmt: skip
    assert json.loads((tmp_path / "d" / "data_info.json").read_text())["icl_examples"] == 0

    fuse = ["--rollouts", rollouts_0, "--variant", "sparse"]
    with pytest.raises(IclMismatch, match=str(rollouts_0)):
        _run_main("prm/fuse_rewards.py", monkeypatch, *fuse, "--output", tmp_path / "p1.jsonl")
    data0 = tmp_path / "p0.jsonl"
    _run_main("prm/fuse_rewards.py", monkeypatch, *fuse, "--output", data0, "--icl-examples", 0)
    assert all(p.meta["icl_examples"] == 0 for p in read_ppo_data(data0))

    # Rollouts written before the setting was recorded count as 1.
    old = tmp_path / "old.jsonl"
    lines = [json.loads(ln) for ln in rollouts_0.read_text().splitlines()]
    for d in lines:
        del d["meta"]["icl_examples"]
    old.write_text("".join(json.dumps(d) + "\n" for d in lines))
    with pytest.raises(IclMismatch):
        _run_main("prm/fuse_rewards.py", monkeypatch, "--rollouts", old, "--variant", "sparse", "--output",
                  tmp_path / "x.jsonl", "--icl-examples", 0)  # fmt: skip
    _run_main("prm/fuse_rewards.py", monkeypatch, "--rollouts", old, "--variant", "sparse", "--output",
              tmp_path / "x.jsonl")  # fmt: skip

    # Offline PPO on the PPO data of the other setting.
    ppo = load_recipe("ppo/train.py")
    with pytest.raises(IclMismatch, match=str(data0)):
        ppo.OfflineSource(ppo.PPOConfig(data=str(data0)), smol_tokenizer, 0, 1)
    src = ppo.OfflineSource(ppo.PPOConfig(data=str(data0), icl_examples=0), smol_tokenizer, 0, 1)
    assert len(src.samples) == 2


def test_ppo_refuses_a_model_of_the_other_setting_and_merge_keeps_the_record(tmp_path):
    sft = tmp_path / "sft"
    shutil.copytree(TINY, sft)
    write_model_info(sft, 0, stage="sft")
    cmd = [sys.executable, "ppo/train.py", "--mode", "online", "--model", str(sft), "--env", "alfworld",
           "--variant", "sparse", "--output-dir", str(tmp_path / "ppo")]  # fmt: skip
    res = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert res.returncode != 0 and "icl_examples=0" in res.stderr and str(sft / "spa_rl.json") in res.stderr

    # merge.py copies the SFT model's record (with the adapter's PPO record) into the merged folder.
    from spa_rl.rl.policy_value import PolicyWithValue

    merge = load_recipe("ppo/merge.py")
    trained = tmp_path / "trained_adapter"
    PolicyWithValue.create(str(sft)).eval().save(trained)
    write_model_info(trained, 0, stage="ppo", mode="offline", variant="sparse")
    merged = merge.merge(str(sft), str(trained), str(tmp_path / "merged"))
    assert read_model_info(merged)["icl_examples"] == 0 and (merged / "model.safetensors").exists()

    adapter = tmp_path / "adapter"
    adapter.mkdir()
    write_model_info(adapter, 0, stage="ppo", variant="progress")
    info = merge.merged_info(str(sft), str(adapter))
    assert info["icl_examples"] == 0 and info["stage"] == "sft" and info["ppo"]["variant"] == "progress"
    assert merge.merged_info(str(TINY), str(tmp_path / "none")) is None  # an untrained base: nothing
    write_model_info(adapter, 1)
    with pytest.raises(IclMismatch, match="adapter"):
        merge.merged_info(str(sft), str(adapter))
