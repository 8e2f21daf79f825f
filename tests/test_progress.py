"""Progress estimator, step-value variants and reward fusion, on real expert conversations and the
tiny model."""

import copy
import json
from types import SimpleNamespace

import pytest
import torch
from conftest import load_recipe
from test_chat import LLAMA3_TEMPLATE

from envs import load_tasks
from eval_agent.experts import expert_messages
from eval_agent.progress import EstimatorConfig, ProgressEstimator
from eval_agent.progress_data import StepCollator, encode_rollout, read_step_values
from eval_agent.react import parse_reply
from eval_agent.schema import RecordError, StepRecord, TrajectoryRecord
from eval_agent.step_rewards import VARIANTS, fuse, read_ppo_data, step_values
from eval_agent.training import ListDataset

REPO = __import__("envs.paths", fromlist=["REPO_ROOT"]).REPO_ROOT
TINY = str(REPO / "models" / "tiny-llama")


def record_from_expert(task, n_steps=None, success=True, rollout=0, grounded=None):
    """A trajectory record built from the expert's conversation (optionally cut to ``n_steps``)."""
    msgs, prefix = expert_messages(task)
    agent = msgs[prefix:]
    turns = [agent[k]["content"] for k in range(0, len(agent), 2)]
    obs = [agent[k]["content"] for k in range(1, len(agent), 2)] + ["done"]
    n = n_steps or len(turns)
    msgs = msgs[: prefix + 2 * n - 1]
    g = grounded or [True] * n
    steps = [StepRecord(turns[i], parse_reply(turns[i]).action, obs[i], g[i], 0.0) for i in range(n)]
    return TrajectoryRecord(
        env="alfworld", split="train", task_id=task.task_id, task_type=task.task_type, rollout=rollout,
        messages=msgs, prefix_len=prefix, steps=steps, reward=float(success), success=success,
        n_steps=n, finish_reason="success" if success else "max_steps",
    )  # fmt: skip


@pytest.fixture(scope="module")
def records(alfworld_ready):
    tasks = load_tasks("alfworld", "train", limit=3)
    out = []
    for i, t in enumerate(tasks):
        out.append(record_from_expert(t, success=True))
        out.append(record_from_expert(t, n_steps=2 + i, success=False, rollout=1))
    return out


@pytest.mark.parametrize("template", ["chatml", "llama3"])
def test_step_positions_are_the_ends_of_the_agent_turns(smol_tokenizer, records, template):
    tok = copy.deepcopy(smol_tokenizer)
    if template == "llama3":
        tok.chat_template = LLAMA3_TEMPLATE
    end = "<|im_end|>" if template == "chatml" else "<|eot_id|>"
    for rec in records[:2]:
        enc = encode_rollout(tok, rec, max_length=None)
        assert len(enc["step_pos"]) == rec.n_steps
        prev = 0
        for pos, step in zip(enc["step_pos"], rec.steps, strict=True):
            text = tok.decode(enc["input_ids"][prev : pos + 1])
            assert text.endswith(step.reply + end), text[-200:]
            prev = pos + 1


@pytest.mark.parametrize("head", ["mlp", "vocab-linear"])
def test_step_values_sum_to_the_prediction(smol_tokenizer, records, head):
    model = ProgressEstimator.create(EstimatorConfig(TINY, head=head, backbone="frozen"))
    with torch.no_grad():
        for p in model.head.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    collate = StepCollator(smol_tokenizer.pad_token_id)
    feats = [encode_rollout(smol_tokenizer, r, None) for r in records[:3]]
    batch = collate(feats)
    out = model(**batch)
    assert out["values"].shape == (sum(r.n_steps for r in records[:3]),)
    k = 0
    for row, r in enumerate(records[:3]):
        assert out["prediction"][row].item() == pytest.approx(
            out["values"][k : k + r.n_steps].sum().item(), abs=1e-5
        )
        k += r.n_steps
    # Padding does not change a rollout's values.
    alone = model(**collate(feats[1:2]))["values"]
    assert torch.allclose(
        alone, out["values"][records[0].n_steps : records[0].n_steps + records[1].n_steps], atol=1e-4
    )
    assert torch.allclose(out["loss"], torch.mean((out["prediction"] - batch["target"]) ** 2))


@pytest.mark.parametrize("backbone", ["lora", "full"])
def test_estimator_saves_and_loads_back(tmp_path, smol_tokenizer, records, backbone):
    model = ProgressEstimator.create(EstimatorConfig(TINY, head="mlp", backbone=backbone)).eval()
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p) * 0.05)
    batch = StepCollator(smol_tokenizer.pad_token_id)([encode_rollout(smol_tokenizer, records[0], None)])
    before = model(**batch)["values"]
    model.save(tmp_path / "est")
    assert not list((tmp_path / "est").rglob("*.bin")) and not list((tmp_path / "est").rglob("*.pt"))
    after = ProgressEstimator.load(tmp_path / "est")(**batch)["values"]
    assert torch.allclose(before, after, atol=1e-5)


def test_tiny_estimator_overfits_a_few_rollouts(smol_tokenizer, records):
    recipe = load_recipe("prm/train.py")

    torch.manual_seed(0)
    model = ProgressEstimator.create(EstimatorConfig(TINY, head="mlp", backbone="frozen", mlp_hidden=64))
    items = [encode_rollout(smol_tokenizer, r, None) for r in records]
    dataset = ListDataset(items)
    collate = StepCollator(smol_tokenizer.pad_token_id)
    args = SimpleNamespace(learning_rate=3e-3, weight_decay=0.0, seed=0, per_device_train_batch_size=6,
                           num_train_epochs=300, logging_steps=100)  # fmt: skip
    hist = recipe.train_head_on_cached_features(model, dataset, collate, args)
    preds = recipe.predict(model, dataset, collate)
    targets = [x["target"] for x in items]
    mse = sum((p - t) ** 2 for p, t in zip(preds, targets, strict=True)) / len(targets)
    assert hist[-1]["loss"] < hist[0]["loss"] and mse < 0.02, (hist, preds)


def test_variants_sum_as_defined(records):
    rec = records[0]  # a success, R = 1
    fail = records[1]  # a failure, R = 0
    T = rec.n_steps
    est = [0.1 * i for i in range(T)]
    assert step_values("progress", rec, estimator_values=est) == est
    assert step_values("sparse", rec) == [0.0] * (T - 1) + [1.0]
    assert sum(step_values("mean", rec)) == pytest.approx(1.0)
    rnd = step_values("random", rec, seed=3)
    assert sum(rnd) == pytest.approx(1.0) and all(x > 0 for x in rnd) and len(set(rnd)) == T
    assert rnd == step_values("random", rec, seed=3) != step_values("random", rec, seed=4)
    v = [0.2 + 0.01 * t for t in range(T)]
    assert sum(step_values("mc", rec, mc_values=v)) == pytest.approx(1.0 - v[0])
    assert step_values("no-progress", rec) == [0.0] * T
    assert step_values("no-grounding", rec, estimator_values=est) == est
    assert step_values("public-code", fail, others_mean=0.75) == [-0.75] * fail.n_steps
    assert sum(step_values("sparse", fail)) == 0.0
    with pytest.raises(ValueError, match="estimator values"):
        step_values("progress", rec)
    assert set(VARIANTS) == {
        "progress",
        "sparse",
        "mean",
        "random",
        "mc",
        "no-progress",
        "no-grounding",
        "public-code",
    }


def test_fusion_uses_the_recorded_grounding(alfworld_ready):
    task = load_tasks("alfworld", "train", limit=1)[0]
    rec = record_from_expert(task, n_steps=3, success=False, grounded=[True, False, True])
    # The invalid step's observation is not ALFWorld's "Nothing happens.": only the flag says so.
    rec.steps[1].observation = "Invalid format: no action found."
    p = fuse(rec, "progress", [0.1, 0.2, 0.3], alpha=1.0, beta=0.5)
    assert p.grounding == [1.0, 0.0, 1.0]
    assert p.step_rewards == pytest.approx([0.6, 0.2, 0.8])
    # The public code's string test reads the observation after each step in the conversation; the
    # last step's observation is not in it, so the last step always counts as grounded.
    rec.steps[0].observation = "Nothing happens."
    rec.steps[2].observation = "Nothing happens."
    pc = fuse(rec, "public-code", [0.0] * 3, alpha=1.0, beta=0.5)
    assert pc.grounding == [0.0, 1.0, 1.0]


def test_malformed_ppo_and_step_value_files_name_file_and_line(tmp_path, records):
    good = fuse(records[0], "mean", step_values("mean", records[0]), 1.0, 0.5)
    path = tmp_path / "ppo.jsonl"
    bad = json.loads(good.to_json())
    bad["step_rewards"] = bad["step_rewards"][:-1]
    path.write_text(good.to_json() + "\n" + json.dumps(bad) + "\n")
    with pytest.raises(RecordError, match=rf"{path}:2: field 'step_rewards'"):
        read_ppo_data(path)
    sv = tmp_path / "values.jsonl"
    sv.write_text(
        '{"task_id": "a", "rollout": 0, "values": [0.1]}\n{"task_id": "a", "rollout": 1, "values": ["x"]}\n'
    )
    with pytest.raises(RecordError, match=rf"{sv}:2: field 'values'"):
        read_step_values(sv)
