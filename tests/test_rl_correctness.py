"""RL correctness: the checks that would have caught misplaced credit, an off-policy online run and a
ratio taken at the wrong temperature. Real tiny models and real ALFWorld games, no mocks."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch
from conftest import TINY, load_recipe
from test_ppo import MESSAGES, ppo_record

from spa_rl.agent.schema import RecordError, StepRecord, TrajectoryRecord
from spa_rl.rewards import fuse, grounding, read_ppo_data
from spa_rl.rl.policy_value import PolicyWithValue
from spa_rl.rl.ppo import (
    KLController,
    advantages,
    collate,
    gae,
    gae_turns,
    logprob_temperature,
    place_step_rewards,
    to_sample,
    turn_spans,
)
from spa_rl.rl.update import rollout_advantages

CPU = SimpleNamespace(
    device="cpu",
    backward=lambda loss: loss.backward(),
    clip_grad_norm_=torch.nn.utils.clip_grad_norm_,
    process_index=0,
    num_processes=1,
)


def ppo_cfg(**kw):
    recipe = load_recipe("ppo/train.py")
    base = dict(model=str(TINY), minibatch_size=1, grad_accum=1, kl_coef=0.0, kl_target=None)
    return recipe, recipe.PPOConfig(**(base | kw))


# --- turn-level GAE ---------------------------------------------------------------------------------


def test_turn_level_gae_hand_computed():
    # Two turns of 2 and 3 action tokens; per-token rewards hold a KL-like term and the step rewards.
    rewards = torch.tensor([0.1, 0.2, 0.0, 0.0, 1.0])
    values = torch.tensor([0.5, 9.0, 0.4, 9.0, 9.0])  # only each turn's first token's value counts
    adv, ret = gae_turns(rewards, values, step_last=[1, 4], gamma=0.9, lam=0.8)
    # turn rewards 0.3, 1.0; turn values 0.5, 0.4
    # delta_1 = 1.0 - 0.4 = 0.6;  delta_0 = 0.3 + 0.9 * 0.4 - 0.5 = 0.16
    # A_1 = 0.6;  A_0 = 0.16 + 0.9 * 0.8 * 0.6 = 0.592
    assert adv.tolist() == pytest.approx([0.592, 0.592, 0.6, 0.6, 0.6])
    assert ret.tolist() == pytest.approx([1.092, 1.092, 1.0, 1.0, 1.0])
    # A turn cut by the length limit (tokens after the last complete turn) is one more turn.
    assert turn_spans(5, [1]) == [(0, 2), (2, 5)]
    adv, _ = gae_turns(torch.tensor([0.0, 1.0, 0.5, 0.5, 0.0]), torch.zeros(5), [1], gamma=1.0, lam=1.0)
    assert adv.tolist() == pytest.approx([2.0, 2.0, 1.0, 1.0, 1.0])
    # The horizon is counted in turns: a reward two turns away is discounted by gamma^2 at any length.
    long_turns = torch.zeros(60)
    long_turns[-1] = 1.0
    adv, _ = gae_turns(long_turns, torch.zeros(60), [19, 39, 59], gamma=0.99, lam=0.95)
    assert adv[0].item() == pytest.approx((0.99 * 0.95) ** 2)
    token_adv, _ = gae(long_turns, torch.zeros(60), 0.99, 0.95)
    assert token_adv[0].item() == pytest.approx((0.99 * 0.95) ** 59, rel=1e-5)  # ~0.027
    # "token" is plain per-token GAE; unknown levels are refused.
    assert torch.equal(advantages("token", long_turns, torch.zeros(60), [59], 0.9, 0.9)[0],
                       gae(long_turns, torch.zeros(60), 0.9, 0.9)[0])  # fmt: skip
    with pytest.raises(ValueError, match="GAE level"):
        advantages("step", long_turns, torch.zeros(60), [59], 0.9, 0.9)


# --- credit lands on the rewarded step ------------------------------------------------------------


def _two_step_sample(tokenizer, rewards):
    return to_sample(tokenizer, ppo_record(MESSAGES, 1, rewards), 4096)


@pytest.mark.parametrize("gae_level", ["turn", "token"])
def test_advantages_sit_on_the_rewarded_step_only(smol_tokenizer, gae_level):
    """Two steps, only step 2 rewarded, a myopic setting (gamma 0, zero values, no KL, no whitening):
    every token of step 1 gets advantage 0; step 2's tokens get 1 (turn level) or its last token does
    (token level). Rewards placed on the wrong step, or an off-by-one turn boundary, fail here."""
    recipe, cfg = ppo_cfg(gamma=0.0, lam=0.0, whiten_advantages=False, gae_level=gae_level)
    s = _two_step_sample(smol_tokenizer, [0.0, 1.0])
    n, (a1, b1), (a2, b2) = len(s.act_pos), *turn_spans(len(s.act_pos), s.step_last)
    zeros = [torch.zeros(n)]
    adv, ret, kls, scores = rollout_advantages([s], zeros, zeros, zeros, cfg, kl_coef=0.3)
    adv = adv[0]
    assert (a1, b2) == (0, n) and b1 == a2 and kls == [0.0] and scores == [1.0]
    assert torch.equal(adv[a1:b1], torch.zeros(b1 - a1))
    if gae_level == "turn":
        assert torch.equal(adv[a2:b2], torch.ones(b2 - a2))
    else:
        assert adv[b2 - 1].item() == 1.0 and torch.equal(adv[a2 : b2 - 1], torch.zeros(b2 - 1 - a2))
    # With a discount, step 1 gets gamma^k of step 2's credit: k = 1 turn, or k = its distance in tokens.
    _, cfg = ppo_cfg(gamma=0.9, lam=1.0, whiten_advantages=False, gae_level=gae_level)
    adv = rollout_advantages([s], zeros, zeros, zeros, cfg, kl_coef=0.0)[0][0]
    expected = 0.9 if gae_level == "turn" else 0.9 ** (b2 - b1)
    assert adv[b1 - 1].item() == pytest.approx(expected, rel=1e-5)


@pytest.mark.slow
def test_ppo_raises_the_rewarded_step_more_than_the_unrewarded_one(smol_tokenizer):
    """SmolLM2, two steps, only step 2 rewarded (turn-level GAE, gamma 0): after one PPO iteration step
    2's tokens gain probability and step 1's move by less than half as much. (Step 1 moves at all only
    through the tokens the two turns share, "Thought:", "Action:", "table 1": the same weights emit
    them.) Swapping the rewards swaps the roles."""
    from conftest import SMOL

    moved = {}
    for rewards in ([0.0, 1.0], [1.0, 0.0]):
        recipe, cfg = ppo_cfg(model=str(SMOL), lr=1e-4, ppo_epochs=2, gamma=0.0, lam=0.0, vf_coef=0.0,
                              whiten_advantages=False, gae_level="turn")  # fmt: skip
        torch.manual_seed(0)
        policy = PolicyWithValue.create(str(SMOL))
        opt = torch.optim.AdamW([p for p in policy.parameters() if p.requires_grad], lr=cfg.lr)
        s = _two_step_sample(smol_tokenizer, rewards)
        pad = smol_tokenizer.pad_token_id
        with torch.no_grad():
            before = policy.eval()(**collate([s], pad, "cpu"))[0]
        recipe.ppo_iteration(policy, policy, opt, CPU, [s], cfg, KLController(0.0), pad, 0)
        with torch.no_grad():
            delta = policy.eval()(**collate([s], pad, "cpu"))[0] - before
        moved[tuple(rewards)] = [delta[a:b].mean().item() for a, b in turn_spans(len(s.act_pos), s.step_last)]
    step1, step2 = moved[(0.0, 1.0)]
    assert step2 > 0.05 and abs(step1) < 0.5 * step2, moved
    step1, step2 = moved[(1.0, 0.0)]
    assert step1 > 0.05 and abs(step2) < 0.5 * step1, moved


# --- log-probabilities at the sampling temperature ------------------------------------------------


def test_logprobs_are_those_of_the_distribution_sampled_from():
    """Tokens sampled at T = 0.7: the policy's log-probs at the recorded temperature equal the sampler's
    (the log-softmax of the logits it drew from); at T = 1 they do not."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(TINY)
    policy = PolicyWithValue.create(str(TINY)).eval()
    prompt = tok("You are in the middle of a room. Your task is to: put a cup in cabinet 1.")["input_ids"]
    torch.manual_seed(0)
    with torch.no_grad():
        out = policy.lm.generate(
            input_ids=torch.tensor([prompt]), do_sample=True, temperature=0.7, top_k=None, top_p=1.0,
            max_new_tokens=12, min_new_tokens=12, output_scores=True, return_dict_in_generate=True,
            pad_token_id=tok.eos_token_id,
        )  # fmt: skip
    new = out.sequences[0, len(prompt) :]
    sampler_lp = torch.stack(
        [torch.log_softmax(s[0].float(), -1)[t] for s, t in zip(out.scores, new, strict=True)]
    )
    act = list(range(len(prompt), len(prompt) + len(new)))
    for temp, same in ((0.7, True), (1.0, False)):
        from spa_rl.rl.ppo import Sample

        s = Sample(out.sequences[0].tolist(), act, [len(act) - 1], [1.0], temp)
        lp, _ = policy(**collate([s], tok.eos_token_id, "cpu"))
        assert torch.allclose(lp, sampler_lp, atol=1e-4) is same, (temp, lp, sampler_lp)
    # Greedy rollouts have no sampling distribution: scored at 1. Nonsense temperatures are refused.
    assert logprob_temperature(0.0) == 1.0 and logprob_temperature(0.7) == 0.7
    with pytest.raises(ValueError):
        logprob_temperature(float("nan"))


def test_ratio_is_exactly_one_before_an_update(smol_tokenizer):
    """Rollouts sampled at T = 0.7, a policy away from the reference: with the learning rate at 0 nothing
    changes, so every ratio of the update must be exactly 1 (no dropout, old and new log-probs at the
    same temperature)."""
    recipe, cfg = ppo_cfg(lr=0.0, ppo_epochs=2)
    torch.manual_seed(0)
    policy = PolicyWithValue.create(str(TINY))
    with torch.no_grad():  # a policy that has moved from the reference, as at every iteration but the first
        for n, p in policy.lm.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.05)
    opt = torch.optim.AdamW([p for p in policy.parameters() if p.requires_grad], lr=0.0)
    samples = [to_sample(smol_tokenizer, ppo_record(MESSAGES, 1, [0.5, 1.0], 0.7), 4096) for _ in range(2)]
    assert all(s.temperature == 0.7 for s in samples)
    stats = recipe.ppo_iteration(
        policy, policy, opt, CPU, samples, cfg, KLController(0.0), smol_tokenizer.pad_token_id, 0
    )
    assert stats["approx_kl"] == 0.0 and stats["clipfrac"] == 0.0, stats
    assert stats["kl"] != 0.0  # and it is not the reference
    assert stats["kl_k3"] > 0.0  # the k3 estimate of KL(policy || ref) is positive term by term


def test_the_sampling_temperature_travels_from_rollout_to_ppo_data(tmp_path):
    steps = [StepRecord("Thought: a.\nAction: go to desk 1", "go to desk 1", "You see a lamp.", True, 0.0)]
    msgs = [{"role": "user", "content": "task"}, {"role": "assistant", "content": steps[0].reply}]
    rec = TrajectoryRecord("alfworld", "train", "t", "pick", 0, msgs, 1, steps, 0.0, False, 1, "done",
                           meta={"temperature": 0.7})  # fmt: skip
    fused = fuse(rec, "sparse", [0.0], 1.0, 0.0)
    assert fused.temperature == 0.7
    path = tmp_path / "ppo.jsonl"
    path.write_text(fused.to_json() + "\n")
    assert read_ppo_data(path)[0].temperature == 0.7
    d = json.loads(fused.to_json())
    del d["temperature"]
    path.write_text(json.dumps(d) + "\n")
    with pytest.raises(RecordError, match=r"ppo.jsonl:1: field 'temperature'.*prm/fuse_rewards.py"):
        read_ppo_data(path)
    rec.meta = {}
    with pytest.raises(RecordError, match="meta.temperature"):
        fuse(rec, "sparse", [0.0], 1.0, 0.0)


def test_offline_ppo_refuses_a_temperature_flag_and_a_disagreeing_variant(tmp_path, monkeypatch):
    recipe = load_recipe("ppo/train.py")
    base = ["train.py", "--model", str(TINY), "--data", "x.jsonl"]
    monkeypatch.setattr("sys.argv", [*base, "--temperature", "0.7"])
    with pytest.raises(SystemExit, match="offline PPO scores each rollout at the sampling temperature"):
        recipe.parse_args()
    monkeypatch.setattr("sys.argv", [*base, "--gae-level", "turns"])
    with pytest.raises(SystemExit, match="--gae-level must be one of token, turn"):
        recipe.parse_args()
    monkeypatch.setattr("sys.argv", [*base, "--step-weighting", "public_code"])
    with pytest.raises(SystemExit, match="--step-weighting must be one of auto, none, public-code"):
        recipe.parse_args()
    with pytest.raises(ValueError, match="step weighting"):
        place_step_rewards(4, [3], [1.0], "public_code")


# --- the public-code variant as a whole -----------------------------------------------------------


def test_public_code_variant_brings_its_step_weighting_and_string_grounding():
    recipe = load_recipe("ppo/train.py")
    assert recipe.resolve_step_weighting("auto", "public-code") == "public-code"
    assert recipe.resolve_step_weighting("auto", "progress") == "none"
    assert recipe.resolve_step_weighting("none", "public-code") == "none"  # an explicit choice stands
    from spa_rl.agent.react import INVALID_FORMAT_OBSERVATION

    # grounded action, "Nothing happens.", a reply without an action, a refused last action
    steps = [
        StepRecord("Action: go to desk 1", "go to desk 1", "You arrive at desk 1.", True, 0.0),
        StepRecord("Action: take moon", "take moon", "Nothing happens.", False, 0.0),
        StepRecord("I am not sure.", None, INVALID_FORMAT_OBSERVATION, False, 0.0),
        StepRecord("Action: fly", "fly", "Nothing happens.", False, 0.0),
    ]
    rec = TrajectoryRecord("alfworld", "train", "t", "pick", 0, [], 0, steps, 0.0, False, 4, "max_steps")
    assert grounding("progress", rec) == [1.0, 0.0, 0.0, 0.0]  # the environment's flag
    # The public code's test: 0 only where the next observation in the conversation says "Nothing
    # happens"; a reply without an action counts as grounded, and the last step always does.
    assert grounding("public-code", rec) == [1.0, 0.0, 1.0, 1.0]


# --- online rollouts come from the current weights ------------------------------------------------


@pytest.mark.usefixtures("alfworld_ready")
def test_online_rollouts_after_an_update_equal_a_fresh_generators(tmp_path, smol_tokenizer):
    """After an optimizer step, greedy online rollouts are token for token those of a generator built
    fresh on the updated weights (the shared prompt prefix is re-encoded, not reused)."""
    from spa_rl.agent.backends import GenerationConfig
    from spa_rl.agent.backends.hf import HFPolicy
    from spa_rl.agent.runner import EpisodeSpec, RolloutConfig, run_rollouts
    from spa_rl.rl.sources import OnlineSource

    recipe, cfg = ppo_cfg(mode="online", env="alfworld", variant="sparse", num_tasks=2, task_types="pick",
                          temperature=0.0, max_steps=2, max_new_tokens=12, gen_batch_size=2, lr=0.5,
                          ppo_epochs=2, output_dir=str(tmp_path / "online"))  # fmt: skip
    torch.manual_seed(0)
    policy = PolicyWithValue.create(str(TINY))
    opt = torch.optim.AdamW([p for p in policy.parameters() if p.requires_grad], lr=cfg.lr)
    source = OnlineSource(cfg, smol_tokenizer, policy, CPU)
    pad = smol_tokenizer.pad_token_id
    samples, _ = source.next(2, 0)
    for s in samples:  # a large update (lr 0.5) that surely moves the policy: reward every step
        s.step_rewards = [1.0] * len(s.step_rewards)
    recipe.ppo_iteration(policy, policy, opt, CPU, samples, cfg, KLController(0.0), pad, 0)
    source.next(2, 1)
    online = [r for r in _records(tmp_path / "online" / "online_rollouts.jsonl") if r.meta["iteration"] == 1]
    assert len(online) == 2 and all(r.meta["temperature"] == 0.0 for r in online)

    fresh = HFPolicy(TINY, device="cpu", batch_size=2, model=policy.lm, tokenizer=smol_tokenizer)
    task_of = {t.task_id: t for t in source.tasks}
    specs = [EpisodeSpec(task_of[r.task_id], r.rollout) for r in online]
    rcfg = RolloutConfig(batch_size=2, max_steps=2, generation=GenerationConfig(12, 0.0, 1.0, cfg.seed + 1))
    policy.eval()
    again, _ = run_rollouts([], fresh, tmp_path / "fresh.jsonl", rcfg, specs=specs, progress=False)
    by_key = {r.key: r for r in again}
    for r in online:
        assert [s.reply for s in r.steps] == [s.reply for s in by_key[r.key].steps]


def _records(path):
    from spa_rl.agent.schema import read_records

    return read_records(path)
