"""Every bad input refused by name: command-line numbers and choices (through each recipe's own parser),
hand-off numbers (rewards, step values, PPO data) on read, non-finite figures in training logs, and
ShareGPT conversations with the roles out of order."""

from __future__ import annotations

import json
import math
import sys

import pytest
from conftest import load_recipe

from spa_rl.agent.evaluate import EvalConfig, parse_args, select_tasks
from spa_rl.agent.schema import RecordError, StepRecord, TrajectoryRecord, read_records
from spa_rl.agent.sharegpt import read_sharegpt
from spa_rl.estimator.data import read_step_values
from spa_rl.rewards import fuse, read_ppo_data
from spa_rl.training import json_safe, write_log_history
from spa_rl.validate import choice, finite, in_range, non_negative, positive, positive_int


def refused(call) -> str:
    """Run a command-line entry point that must stop with a message (SystemExit's); the message."""
    with pytest.raises(SystemExit) as e:
        call()
    assert isinstance(e.value.code, str)  # a message, not a bare status
    return e.value.code


def run_main(monkeypatch, relpath: str, argv: list[str]):
    recipe = load_recipe(relpath)
    monkeypatch.setattr(sys, "argv", [relpath, *argv])
    return recipe.main


# --- A. command-line numbers and choices ------------------------------------------------------------


@pytest.mark.parametrize(
    "check, message",
    [
        (lambda: positive_int("--k", 0), "--k must be an integer >= 1, got 0"),
        (lambda: positive_int("--k", True), "--k must be an integer >= 1, got True"),
        (lambda: positive_int("--k", 2.0), "--k must be an integer >= 1, got 2.0"),
        (lambda: finite("--alpha", math.nan), "--alpha must be a finite number, got nan"),
        (lambda: finite("--alpha", -math.inf), "--alpha must be a finite number, got -inf"),
        (lambda: positive("--clip", 0.0), "--clip must be a finite number > 0, got 0.0"),
        (lambda: non_negative("--lr", math.inf), "--lr must be a finite number >= 0, got inf"),
        (
            lambda: in_range("--top-p", 0.0, 0.0, 1.0, lo_open=True),
            "--top-p must be a number in (0.0, 1.0], got 0.0",
        ),
        (lambda: in_range("--f", 1.0, 0.0, 1.0, hi_open=True), "--f must be a number in [0.0, 1.0), got 1.0"),
        (lambda: choice("--mode", "x", ("a", "b")), "--mode must be one of a, b, got 'x'"),
    ],
)
def test_each_check_names_the_flag(check, message):
    with pytest.raises(ValueError) as e:
        check()
    assert str(e.value) == message


def test_checks_pass_good_values_and_unset_where_allowed():
    assert positive_int("--n", 3) == 3 and positive_int("--n", None, allow_none=True) is None
    assert finite("--a", -2.5) == -2.5 and in_range("--g", 1.0, 0.0, 1.0) == 1.0
    with pytest.raises(ValueError, match="or unset"):
        positive_int("--n", 0, allow_none=True)
    with pytest.raises(ValueError, match="got None"):
        positive_int("--n", None)


EVAL_BAD = [
    (["--num-tasks", "-1"], "--num-tasks must be an integer >= 1 (or unset), got -1"),
    (["--max-steps", "0"], "--max-steps must be an integer >= 1 (or unset), got 0"),
    (["--batch-size", "0"], "--batch-size must be an integer >= 1, got 0"),
    (["--n-rollouts", "0"], "--n-rollouts must be an integer >= 1, got 0"),
    (["--max-new-tokens", "0"], "--max-new-tokens must be an integer >= 1, got 0"),
    (["--max-context", "-5"], "--max-context must be an integer >= 1 (or unset), got -5"),
    (["--temperature", "nan"], "--temperature must be a finite number >= 0, got nan"),
    (["--temperature", "-0.1"], "--temperature must be a finite number >= 0, got -0.1"),
    (["--top-p", "0"], "--top-p must be a number in (0.0, 1.0], got 0.0"),
    (["--top-p", "1.5"], "--top-p must be a number in (0.0, 1.0], got 1.5"),
    (["--task-sample", "last"], "--task-sample must be one of first, random, got 'last'"),
    (["--icl-examples", "2"], "--icl-examples"),
]


@pytest.mark.parametrize("argv, message", EVAL_BAD)
def test_evaluate_cli_refuses_bad_numbers(argv, message):
    err = refused(lambda: parse_args(argv))
    assert message in err


def test_exploration_defaults_go_through_the_same_checks():
    # exploration/explore.py passes its defaults to evaluate.parse_args
    cfg = parse_args([], split="train", temperature=0.7, n_rollouts=4, task_sample="random")
    assert (cfg.n_rollouts, cfg.max_steps, cfg.num_tasks) == (4, None, None)
    err = refused(lambda: parse_args(["--n-rollouts", "0"], n_rollouts=4))
    assert "--n-rollouts must be an integer >= 1, got 0" in err


def test_eval_config_built_in_code_is_checked_too():
    with pytest.raises(ValueError, match="--max-steps must be an integer >= 1"):
        EvalConfig(max_steps=0)
    with pytest.raises(ValueError, match="the number of tasks must be >= 1"):
        select_tasks("alfworld", "unseen", -1)  # refused before the split is read


PPO_BAD = [
    (["--rollouts-per-iteration", "0"], "--rollouts-per-iteration must be an integer >= 1, got 0"),
    (["--save-every", "0"], "--save-every must be an integer >= 1, got 0"),
    (
        ["--step-weighting", "public_code"],
        "--step-weighting must be one of auto, none, public-code, got 'public_code'",
    ),
    (["--gae-level", "step"], "--gae-level must be one of token, turn, got 'step'"),
    (["--mode", "onine"], "--mode must be one of offline, online, got 'onine'"),
    (["--dtype", "fp16"], "--dtype must be one of auto, bf16, fp32, got 'fp16'"),
    (["--alpha", "nan"], "--alpha must be a finite number, got nan"),
    (["--beta", "nan"], "--beta must be a finite number (or unset), got nan"),
    (["--beta", "inf"], "--beta must be a finite number (or unset), got inf"),
    (["--iterations", "0"], "--iterations must be an integer >= 1, got 0"),
    (["--ppo-epochs", "0"], "--ppo-epochs must be an integer >= 1, got 0"),
    (["--minibatch-size", "-1"], "--minibatch-size must be an integer >= 1, got -1"),
    (["--grad-accum", "0"], "--grad-accum must be an integer >= 1, got 0"),
    (["--lora-r", "0"], "--lora-r must be an integer >= 1, got 0"),
    (["--num-tasks", "-1"], "--num-tasks must be an integer >= 1 (or unset), got -1"),
    (["--max-steps", "0"], "--max-steps must be an integer >= 1 (or unset), got 0"),
    (["--lr", "nan"], "--lr must be a finite number >= 0, got nan"),
    (["--gamma", "1.5"], "--gamma must be a number in [0.0, 1.0], got 1.5"),
    (["--lam", "-0.1"], "--lam must be a number in [0.0, 1.0], got -0.1"),
    (["--clip", "0"], "--clip must be a finite number > 0, got 0.0"),
    (["--value-clip", "-0.2"], "--value-clip must be a finite number > 0, got -0.2"),
    (["--max-grad-norm", "0"], "--max-grad-norm must be a finite number > 0, got 0.0"),
    (["--vf-coef", "-1"], "--vf-coef must be a finite number >= 0, got -1.0"),
    (["--kl-coef", "inf"], "--kl-coef must be a finite number >= 0, got inf"),
    (["--kl-target", "0"], "--kl-target must be a finite number > 0 (or unset), got 0.0"),
    (["--mode", "online", "--temperature", "nan"], "--temperature must be a finite number >= 0 (or unset)"),
]


@pytest.mark.parametrize("argv, message", PPO_BAD)
def test_ppo_cli_refuses_bad_numbers_and_choices(argv, message):
    ppo = load_recipe("ppo/train.py")
    err = refused(lambda: ppo.parse_args(["--data", "d.jsonl", *argv]))
    assert message in err


def test_ppo_cli_keeps_its_defaults_and_none():
    ppo = load_recipe("ppo/train.py")
    cfg = ppo.parse_args(["--data", "d.jsonl", "--kl-target", "none", "--beta", "none"])
    assert cfg.kl_target is None and cfg.beta is None
    assert (cfg.rollouts_per_iteration, cfg.save_every, cfg.step_weighting) == (8, 5, "auto")


def test_ppo_config_built_in_code_is_checked_too():
    ppo = load_recipe("ppo/train.py")
    with pytest.raises(ValueError, match="--step-weighting must be one of auto, none, public-code"):
        ppo.PPOConfig(step_weighting="public_code")
    with pytest.raises(ValueError, match="--save-every must be an integer >= 1, got 0"):
        ppo.PPOConfig(save_every=0)
    ppo.PPOConfig(lr=0.0, kl_coef=0.0, kl_target=None)  # a frozen-weights run stays allowed


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--alpha", "nan"], "--alpha must be a finite number, got nan"),
        (["--beta", "nan"], "--beta must be a finite number (or unset), got nan"),
        (["--max-steps", "0"], "--max-steps must be an integer >= 1 (or unset), got 0"),
        (["--max-rollouts", "0"], "--max-rollouts must be an integer >= 1 (or unset), got 0"),
    ],
)
def test_fuse_rewards_refuses_bad_numbers_before_writing(monkeypatch, tmp_path, argv, message):
    out = tmp_path / "ppo_data" / "progress.jsonl"
    main = run_main(
        monkeypatch,
        "prm/fuse_rewards.py",
        ["--rollouts", str(tmp_path / "ep.jsonl"), "--output", str(out), *argv],
    )
    assert message in refused(main)
    assert list(tmp_path.iterdir()) == []  # nothing written, no fingerprint or lock left


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--k", "0"], "--k must be an integer >= 1, got 0"),
        (["--num-rollouts", "0"], "--num-rollouts must be an integer >= 1 (or unset), got 0"),
        (["--temperature", "nan"], "--temperature must be a finite number >= 0, got nan"),
        (["--batch-size", "0"], "--batch-size must be an integer >= 1, got 0"),
        (["--max-steps", "0"], "--max-steps must be an integer >= 1 (or unset), got 0"),
        (["--max-new-tokens", "0"], "--max-new-tokens must be an integer >= 1, got 0"),
    ],
)
def test_mc_values_refuses_bad_numbers(monkeypatch, tmp_path, argv, message):
    main = run_main(
        monkeypatch,
        "prm/mc_values.py",
        [
            "--rollouts",
            str(tmp_path / "ep.jsonl"),
            "--model",
            "m",
            "--output",
            str(tmp_path / "mc.jsonl"),
            *argv,
        ],
    )
    assert message in refused(main)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--batch-size", "0"], "--batch-size must be an integer >= 1, got 0"),
        (["--max-length", "-1"], "--max-length must be an integer >= 1, got -1"),
    ],
)
def test_step_value_inference_refuses_bad_numbers(monkeypatch, tmp_path, argv, message):
    main = run_main(
        monkeypatch,
        "prm/infer.py",
        ["--estimator", str(tmp_path / "est"), "--rollouts", str(tmp_path / "ep.jsonl"), "--output",
         str(tmp_path / "values.jsonl"), *argv],
    )  # fmt: skip
    assert message in refused(main)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("value", ["1.0", "-0.1", "nan"])
def test_data_org_refuses_a_val_fraction_outside_0_1(monkeypatch, tmp_path, value):
    main = run_main(
        monkeypatch,
        "prm/data_org.py",
        [
            "--rollouts",
            str(tmp_path / "ep.jsonl"),
            "--output-dir",
            str(tmp_path / "prm"),
            "--val-fraction",
            value,
        ],
    )
    assert "--val-fraction must be a number in [0.0, 1.0)" in refused(main)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--num-tasks", "0"], "--num-tasks must be an integer >= 1 (or unset), got 0"),
        (["--max-expert-steps", "-3"], "--max-expert-steps must be an integer >= 1 (or unset), got -3"),
        (["--games", "some"], "--games must be one of eto, all, got 'some'"),
    ],
)
def test_build_expert_data_refuses_bad_numbers(monkeypatch, tmp_path, argv, message):
    out = tmp_path / "sft.json"
    main = run_main(monkeypatch, "sft/build_expert_data.py", ["--output", str(out), *argv])
    assert message in refused(main)
    assert not out.exists()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--max_length", "0"], "--max_length must be an integer >= 1, got 0"),
        (["--num_trajectories", "0"], "--num_trajectories must be an integer >= 1 (or unset), got 0"),
    ],
)
def test_sft_refuses_bad_numbers_at_parse_time(monkeypatch, tmp_path, argv, message):
    out = tmp_path / "sft"
    main = run_main(
        monkeypatch, "sft/train.py", ["--data", "d.json", "--model", "m", "--output_dir", str(out), *argv]
    )
    with pytest.raises(SystemExit) as e:  # one line, not the usage of every TrainingArguments flag
        main()
    assert str(e.value) == message
    assert not out.exists()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--cross_fit_folds", "1"], "--cross_fit_folds 1: give 0"),
        (["--cross_fit_folds", "-2"], "--cross_fit_folds -2: give 0"),
        (["--head", "linear"], "--head must be one of mlp, vocab-linear, got 'linear'"),
        (["--backbone", "partial"], "--backbone must be one of frozen, lora, full, got 'partial'"),
        (["--lora_r", "0"], "--lora_r must be an integer >= 1, got 0"),
        (["--mlp_hidden", "0"], "--mlp_hidden must be an integer >= 1, got 0"),
        (["--max_length", "-1"], "--max_length must be an integer >= 1, got -1"),
    ],
)
def test_estimator_training_refuses_bad_numbers_at_parse_time(monkeypatch, tmp_path, argv, message):
    out = tmp_path / "est"
    main = run_main(
        monkeypatch, "prm/train.py", ["--data_dir", "d", "--model", "m", "--output_dir", str(out), *argv]
    )
    with pytest.raises(SystemExit) as e:
        main()
    assert str(e.value).startswith(message)
    assert not out.exists()


# --- B. hand-off numbers ----------------------------------------------------------------------------


def trajectory(rewards=(0.0, 1.0), final=1.0) -> TrajectoryRecord:
    msgs = [{"role": "user", "content": "task"}]
    steps = []
    for i, r in enumerate(rewards):
        if i:
            msgs.append({"role": "user", "content": "o"})
        msgs.append({"role": "assistant", "content": f"Action: a{i}"})
        steps.append(
            StepRecord(reply=f"Action: a{i}", action=f"a{i}", observation="o", grounded=True, reward=r)
        )
    return TrajectoryRecord(
        env="webshop", split="test", task_id="t", task_type=None, rollout=0, messages=msgs, prefix_len=1,
        steps=steps, reward=final, success=final == 1.0, n_steps=len(steps), finish_reason="done",
        meta={"temperature": 0.7},
    )  # fmt: skip


def write_lines(path, dicts) -> None:
    # json.dumps writes NaN / Infinity by default, as a careless writer would.
    path.write_text("".join(json.dumps(d) + "\n" for d in dicts))


@pytest.mark.parametrize(
    "mutate, field",
    [
        (lambda d: d["steps"][1].update(reward=math.nan), "steps[1]: field 'reward'"),
        (lambda d: d["steps"][0].update(reward=math.inf), "steps[0]: field 'reward'"),
        (lambda d: d["steps"][1].update(reward=1e30), "steps[1]: field 'reward'"),
        (lambda d: d["steps"][0].update(reward=-0.5), "steps[0]: field 'reward'"),
        (lambda d: d.update(reward=1e30), "field 'reward'"),
        (lambda d: d.update(reward=10**400), "field 'reward'"),
        (lambda d: d.update(reward=-math.inf), "field 'reward'"),
    ],
)
def test_episode_rewards_out_of_range_are_refused_with_file_line_and_field(tmp_path, mutate, field):
    good = json.loads(trajectory().to_json())
    bad = json.loads(trajectory().to_json()) | {"rollout": 1}
    mutate(bad)
    path = tmp_path / "episodes.jsonl"
    write_lines(path, [good, bad])
    with pytest.raises(RecordError, match=r"must be a finite number in \[0.0, 1.0\]") as e:
        read_records(path)
    assert f"{path}:2" in str(e.value) and field in str(e.value)


def test_episode_rewards_in_range_read_back():
    for final in (0.0, 0.25, 1.0):
        assert trajectory((0.0, final), final).reward == final


def ppo_line(**changes) -> dict:
    return json.loads(fuse(trajectory(), "mean", [0.5, 0.5], 1.0, 0.5).to_json()) | changes


@pytest.mark.parametrize(
    "changes, message",
    [
        (
            {"step_rewards": [0.5, math.nan]},
            "field 'step_rewards'[1] must be a finite number with |x| <= 1e+06, got nan",
        ),
        (
            {"step_rewards": [1e30, 0.0]},
            "field 'step_rewards'[0] must be a finite number with |x| <= 1e+06, got 1e+30",
        ),
        ({"values": [math.inf, 0.0]}, "field 'values'[0] must be a finite number, got inf"),
        ({"reward": 1e30}, "field 'reward' must be a finite number in [0.0, 1.0], got 1e+30"),
        ({"reward": math.nan}, "field 'reward' must be a finite number in [0.0, 1.0], got nan"),
        ({"alpha": math.nan}, "field 'alpha' must be a finite number, got nan"),
        ({"beta": "0.5"}, "field 'beta' must be a finite number, got '0.5'"),
    ],
)
def test_ppo_data_numbers_are_checked_on_read(tmp_path, changes, message):
    path = tmp_path / "progress.jsonl"
    write_lines(path, [ppo_line(), ppo_line(rollout=1, **changes)])
    with pytest.raises(RecordError) as e:
        read_ppo_data(path)
    assert f"{path}:2: {message}" == str(e.value)


def test_fusion_refuses_non_finite_or_huge_step_rewards():
    rec = trajectory()
    assert fuse(rec, "progress", [0.25, 0.75], 1.0, 0.5).step_rewards == [0.75, 1.25]
    with pytest.raises(ValueError, match=r"t#0 step 1: fused reward nan \(alpha 1.0 x c_t nan"):
        fuse(rec, "progress", [0.25, math.nan], 1.0, 0.5)
    with pytest.raises(ValueError, match=r"t#0 step 0: fused reward 2e\+30"):
        fuse(rec, "progress", [1.0, 0.0], 2e30, 0.5)


def test_step_values_with_nan_are_refused_on_read(tmp_path):
    path = tmp_path / "step_values.jsonl"
    write_lines(path, [{"task_id": "t", "rollout": 0, "values": [0.1, math.nan]}])
    with pytest.raises(RecordError, match=f"{path}:1: field 'values'"):
        read_step_values(path)


def strict_json(line: str):
    def refuse(name):
        raise ValueError(f"non-JSON constant {name}")

    return json.loads(line, parse_constant=refuse)


def test_training_logs_write_null_for_non_finite_figures_and_say_which(tmp_path):
    path = tmp_path / "train_log.jsonl"
    history = [
        {"iteration": 1, "vf_loss": 0.5},
        {"iteration": 2, "vf_loss": math.inf, "extra": {"kl": [math.nan]}},
    ]
    with pytest.warns(RuntimeWarning) as w:
        write_log_history(path, history)
    said = " | ".join(str(x.message) for x in w)
    assert f"{path} entry 1: 'vf_loss' is inf; written as null" in said and "'extra.kl[0]' is nan" in said
    rows = [strict_json(ln) for ln in path.read_text().splitlines()]
    assert rows == [
        {"iteration": 1, "vf_loss": 0.5},
        {"iteration": 2, "vf_loss": None, "extra": {"kl": [None]}},
    ]
    assert history[1]["vf_loss"] == math.inf  # the caller's figures are left as they are


def test_json_safe_keeps_finite_values_untouched():
    stats = {"iteration": 3, "score": 0.25, "ok": True, "name": "x"}
    assert json_safe(stats, "log") == stats


# --- C. ShareGPT turn order -------------------------------------------------------------------------


def convo(*roles: str) -> list[dict]:
    return [{"from": r, "value": f"{r} text"} for r in roles]


@pytest.mark.parametrize(
    "roles, message",
    [
        (("gpt", "human", "gpt", "human"), "conversations[0] is from 'gpt' where 'human' is expected"),
        (("human", "human", "gpt"), "conversations[1] is from 'human' where 'gpt' is expected"),
        (("human", "gpt", "gpt"), "conversations[2] is from 'gpt' where 'human' is expected"),
        (("system", "gpt", "human", "gpt"), "conversations[1] is from 'gpt' where 'human' is expected"),
        (("human", "gpt", "human"), "conversations[2] is the last entry and is from 'human'"),
    ],
)
def test_sharegpt_turns_out_of_order_are_refused_with_record_id_and_turn(tmp_path, roles, message):
    path = tmp_path / "sft.json"
    path.write_text(json.dumps([{"id": "ok", "conversations": convo("human", "gpt")},
                                {"id": "swapped", "conversations": convo(*roles)}]))  # fmt: skip
    with pytest.raises(RecordError) as e:
        read_sharegpt(path)
    assert f"{path}: record 1 (id 'swapped'): {message}" in str(e.value)


def test_sharegpt_jsonl_names_the_line(tmp_path):
    path = tmp_path / "sft.jsonl"
    path.write_text(json.dumps({"id": 7, "conversations": convo("gpt", "human")}) + "\n")
    with pytest.raises(RecordError, match=rf"{path}:1 \(id 7\): conversations\[0\]"):
        read_sharegpt(path)


def test_sharegpt_in_order_passes_with_or_without_a_system_entry(tmp_path):
    path = tmp_path / "sft.json"
    recs = [{"id": "a", "conversations": convo("human", "gpt", "human", "gpt")},
            {"id": "b", "conversations": convo("system", "human", "gpt")}]  # fmt: skip
    path.write_text(json.dumps(recs))
    assert [r["id"] for r in read_sharegpt(path)] == ["a", "b"]
