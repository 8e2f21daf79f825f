"""Step-level PPO: reward placement and GAE against hand-computed cases, KL with the adapters
disabled, learning on a tiny case, LoRA merge, and a two-process CPU run."""

import json
import os
import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch

from spa_rl.rewards import PPORecord
from spa_rl.rl.policy_value import PolicyWithValue
from spa_rl.rl.ppo import (
    KLController,
    collate,
    gae,
    kl_penalised_rewards,
    place_step_rewards,
    policy_loss,
    to_sample,
    value_loss,
)

REPO = __import__("envs.paths", fromlist=["REPO_ROOT"]).REPO_ROOT
TINY = str(REPO / "models" / "tiny-llama")


def test_step_rewards_sit_on_each_steps_last_token():
    assert place_step_rewards(6, [2, 5], [0.3, 1.0]).tolist() == pytest.approx([0, 0, 0.3, 0, 0, 1.0])
    # The public code's (T - t - 1) weighting: step 0 of 2 keeps x1, the last step gets 0.
    assert place_step_rewards(6, [2, 5], [0.3, 1.0], "public-code").tolist() == pytest.approx(
        [0, 0, 0.3, 0, 0, 0]
    )
    with pytest.raises(ValueError):
        place_step_rewards(6, [2], [0.3, 1.0])


def test_gae_hand_computed():
    adv, ret = gae(torch.tensor([0.0, 0.0, 1.0]), torch.tensor([0.5, 0.5, 0.5]), gamma=0.9, lam=0.8)
    # delta_2 = 1 - 0.5 = 0.5;  delta_1 = 0.9*0.5 - 0.5 = -0.05;  delta_0 = -0.05
    # A_2 = 0.5;  A_1 = -0.05 + 0.72*0.5 = 0.31;  A_0 = -0.05 + 0.72*0.31 = 0.1732
    assert adv.tolist() == pytest.approx([0.1732, 0.31, 0.5])
    assert ret.tolist() == pytest.approx([0.6732, 0.81, 1.0])
    # lambda = 1, gamma = 1: the advantage is the return-to-go minus the value.
    adv, _ = gae(torch.tensor([0.1, 0.2, 0.3]), torch.zeros(3), gamma=1.0, lam=1.0)
    assert adv.tolist() == pytest.approx([0.6, 0.5, 0.3])


def test_clipped_losses_and_kl_controller():
    lp, old = torch.log(torch.tensor([0.5, 0.5])), torch.log(torch.tensor([0.25, 0.5]))
    loss, st = policy_loss(lp, old, torch.tensor([1.0, 1.0]), clip=0.2)
    # ratio 2 is clipped to 1.2 for a positive advantage: mean(-1.2, -1.0)
    assert loss.item() == pytest.approx(-1.1) and st["clipfrac"] == 0.5
    vl = value_loss(torch.tensor([2.0]), torch.tensor([0.0]), torch.tensor([1.0]), clip=0.5)
    assert vl.item() == pytest.approx(0.5 * max(1.0, 0.25))
    rew, kl = kl_penalised_rewards(
        torch.tensor([0.0, 1.0]), torch.tensor([-1.0, -2.0]), torch.tensor([-1.5, -2.0]), 0.1
    )
    assert rew.tolist() == pytest.approx([-0.05, 1.0]) and kl.tolist() == pytest.approx([0.5, 0.0])
    fixed = KLController(0.3)
    assert fixed.update(100.0, 10) == 0.3
    adaptive = KLController(0.3, target=6.0, horizon=100)
    assert adaptive.update(12.0, 10) == pytest.approx(0.3 * (1 + 0.2 * 10 / 100))


def ppo_record(messages, prefix_len, rewards, temperature=1.0):
    n = len(rewards)
    return PPORecord(
        "alfworld",
        "t",
        0,
        messages,
        prefix_len,
        n,
        1.0,
        True,
        [0.0] * n,
        [1.0] * n,
        rewards,
        "x",
        1,
        0.5,
        temperature,
    )


MESSAGES = [
    {"role": "user", "content": "Find the cup."},
    {"role": "assistant", "content": "Thought: check the table.\nAction: go to table 1"},
    {"role": "user", "content": "On the table 1, you see a cup 1."},
    {"role": "assistant", "content": "Thought: take it.\nAction: take cup 1 from table 1"},
]


def test_samples_mark_action_tokens_and_step_ends(smol_tokenizer):
    s = to_sample(smol_tokenizer, ppo_record(MESSAGES, 1, [0.2, 1.0]), max_length=4096)
    assert len(s.step_last) == 2 and s.step_rewards == [0.2, 1.0]
    ends = [s.input_ids[s.act_pos[j]] for j in s.step_last]
    assert ends == [smol_tokenizer.convert_tokens_to_ids("<|im_end|>")] * 2
    first_turn = smol_tokenizer.decode([s.input_ids[p] for p in s.act_pos[: s.step_last[0] + 1]])
    assert first_turn == MESSAGES[1]["content"] + "<|im_end|>"


def test_kl_is_zero_when_policy_is_reference(smol_tokenizer):
    torch.manual_seed(0)
    policy = PolicyWithValue.create(TINY).eval()
    s = to_sample(smol_tokenizer, ppo_record(MESSAGES, 1, [0.2, 1.0]), max_length=4096)
    batch = collate([s], smol_tokenizer.pad_token_id, "cpu")
    lp, _ = policy(**batch)
    assert torch.equal(lp, policy.reference_logprobs(**batch))  # LoRA B starts at 0
    with torch.no_grad():
        for n, p in policy.lm.named_parameters():
            if "lora_B" in n:
                p.add_(0.05)
    assert not torch.allclose(policy(**batch)[0], policy.reference_logprobs(**batch))


def test_ppo_learns_a_rewarded_action_on_a_tiny_case(smol_tokenizer):
    """Rewarding both steps: the log-probability of the rewarded actions rises and the value loss falls."""
    from conftest import load_recipe

    recipe = load_recipe("ppo/train.py")
    torch.manual_seed(0)
    cfg = recipe.PPOConfig(model=TINY, lr=5e-3, ppo_epochs=4, minibatch_size=1, grad_accum=1, kl_coef=0.0,
                           kl_target=None, vf_coef=1.0, whiten_advantages=False)  # fmt: skip
    policy = PolicyWithValue.create(TINY)
    optimizer = torch.optim.AdamW([p for p in policy.parameters() if p.requires_grad], lr=cfg.lr)
    accelerator = SimpleNamespace(
        device="cpu", backward=lambda loss: loss.backward(), clip_grad_norm_=torch.nn.utils.clip_grad_norm_
    )
    samples = [to_sample(smol_tokenizer, ppo_record(MESSAGES, 1, [0.5, 1.0]), 4096)]
    batch = collate(samples, smol_tokenizer.pad_token_id, "cpu")
    with torch.no_grad():
        before = policy.eval()(**batch)[0].mean().item()
    logs = [
        recipe.ppo_iteration(policy, policy, optimizer, accelerator, samples, cfg, KLController(0.0), 2, it)
        for it in range(4)
    ]
    with torch.no_grad():
        after = policy.eval()(**batch)[0].mean().item()
    assert after > before + 0.1, (before, after)
    assert logs[-1]["vf_loss"] < logs[0]["vf_loss"]


def test_lora_merge_gives_the_adapter_models_logits(tmp_path, smol_tokenizer):
    from conftest import load_recipe
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    policy = PolicyWithValue.create(TINY)
    with torch.no_grad():
        for n, p in policy.lm.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.05)
    policy.eval().save(tmp_path / "adapter")
    merged_dir = load_recipe("ppo/merge.py").merge(TINY, str(tmp_path / "adapter"), str(tmp_path / "merged"))
    merged = AutoModelForCausalLM.from_pretrained(merged_dir).eval()
    ids = torch.tensor([smol_tokenizer("Thought: go.\nAction: go to desk 1")["input_ids"]])
    with torch.no_grad():
        a = policy.lm(input_ids=ids).logits
        b = merged(input_ids=ids).logits
        base = AutoModelForCausalLM.from_pretrained(TINY).eval()(input_ids=ids).logits
    assert torch.allclose(a, b, atol=1e-4)
    assert not torch.allclose(a, base, atol=1e-3)
    assert (merged_dir / "model.safetensors").exists()


@pytest.mark.slow
def test_two_process_cpu_ppo_step(tmp_path, smol_tokenizer):
    data = tmp_path / "ppo.jsonl"
    rec = ppo_record(MESSAGES, 1, [0.5, 1.0])
    data.write_text("".join(json.dumps({**rec.__dict__, "rollout": k}) + "\n" for k in range(4)))
    # torchrun on CPU: accelerate picks up the process group (gloo) from the environment.
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29533",
           "ppo/train.py", "--mode", "offline", "--model", TINY, "--data", str(data), "--output-dir",
           str(tmp_path / "out"), "--iterations", "1", "--rollouts-per-iteration", "4", "--minibatch-size", "1"]  # fmt: skip
    env = dict(os.environ, OMP_NUM_THREADS="1")
    res = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["processes"] == 2 and summary["iterations"] == 1
    assert (tmp_path / "out" / "adapter" / "adapter_model.safetensors").exists()


@pytest.mark.slow
@pytest.mark.usefixtures("alfworld_ready")
def test_online_ppo_samples_fresh_rollouts_and_rewards_them(tmp_path):
    from spa_rl.agent.schema import read_records
    from spa_rl.estimator.model import EstimatorConfig, ProgressEstimator

    est = tmp_path / "estimator"
    ProgressEstimator.create(EstimatorConfig(TINY, head="mlp", backbone="frozen", mlp_hidden=16)).save(est)
    out = tmp_path / "online"
    cmd = [sys.executable, "ppo/train.py", "--mode", "online", "--model", TINY, "--env", "alfworld",
           "--estimator", str(est), "--variant", "progress", "--num-tasks", "2", "--task-types", "pick",
           "--iterations", "2", "--rollouts-per-iteration", "2", "--max-steps", "2", "--max-new-tokens", "8",
           "--gen-batch-size", "2", "--output-dir", str(out)]  # fmt: skip
    res = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    log = [json.loads(ln) for ln in (out / "train_log.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in log] == [1, 2]
    assert all("rollout_success" in r and "rollout_grounding" in r for r in log)
    # Each iteration played two fresh episodes of pick tasks from the training split.
    recs = read_records(out / "online_rollouts.jsonl")
    assert len(recs) == 4 and {r.meta["iteration"] for r in recs} == {0, 1}
    assert all(r.split == "train" and r.task_type == "pick" and 1 <= r.n_steps <= 2 for r in recs)
    assert (out / "adapter" / "adapter_model.safetensors").exists()
    # bf16 runs record that the frozen base weights are held in bf16 (older bf16 runs held them in fp32).
    from spa_rl.models.precision import resolve_dtype

    settings = json.loads((out / "fingerprint.json").read_text())["settings"]
    bf16 = resolve_dtype("auto", "cpu") == torch.bfloat16
    assert settings.get("frozen_weights") == ("bf16" if bf16 else None)


@pytest.mark.slow
@pytest.mark.usefixtures("alfworld_ready")
def test_probe_plays_the_same_training_games_before_and_after_updates(tmp_path):
    """The learning-curve probe: a fixed set of training games played greedily every N updates. With a
    learning rate of 0 the weights never change, so every probe must replay each game exactly."""
    from spa_rl.agent.schema import read_records

    data = tmp_path / "ppo.jsonl"
    rec = ppo_record(MESSAGES, 1, [0.5, 1.0])
    data.write_text("".join(json.dumps({**rec.__dict__, "rollout": k}) + "\n" for k in range(2)))
    out = tmp_path / "out"
    cmd = [sys.executable, "ppo/train.py", "--mode", "offline", "--model", TINY, "--data", str(data), "--output-dir",
           str(out), "--iterations", "2", "--rollouts-per-iteration", "1", "--lr", "0", "--probe-every", "1",
           "--probe-tasks", "2", "--env", "alfworld", "--task-types", "pick", "--max-steps", "2",
           "--max-new-tokens", "8", "--gen-batch-size", "2"]  # fmt: skip
    res = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    log = [json.loads(ln) for ln in (out / "probe_log.jsonl").read_text().splitlines()]
    assert [e["updates"] for e in log] == [0, 1, 2] and all(e["n"] == 2 for e in log)
    recs = read_records(out / "probe_rollouts.jsonl")
    assert len(recs) == 6 and all(r.split == "train" and r.task_type == "pick" for r in recs)
    by_task = {}
    for r in recs:
        by_task.setdefault(r.task_id, []).append([s.reply for s in r.steps])
    assert len(by_task) == 2 and all(len(v) == 3 and v[0] == v[1] == v[2] for v in by_task.values())
    assert json.loads((out / "summary.json").read_text())["probe"] == log
