"""Step-level PPO arithmetic on action tokens (the tokens of the agent's turns, observations skipped):
per-token rewards with the KL penalty and each step's reward on the step's last token, GAE per token or
per turn, the clipped losses, and the adaptive KL coefficient. Pure tensor functions, tested against
hand-computed cases."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from spa_rl.agent.chat import render_chat
from spa_rl.training import pad_right

STEP_WEIGHTINGS = ("none", "public-code")
GAE_LEVELS = ("token", "turn")


def logprob_temperature(sampling_temperature: float) -> float:
    """The temperature that log-probabilities are computed at for rollouts sampled at
    ``sampling_temperature``: the same one (TRL and verl divide the logits by it), so that the PPO ratio
    is that of the distribution the actions were drawn from. Greedy rollouts (0) have no such
    distribution; they are scored at 1."""
    if not math.isfinite(sampling_temperature) or sampling_temperature < 0:
        raise ValueError(f"sampling temperature must be a finite number >= 0, got {sampling_temperature}")
    return sampling_temperature if sampling_temperature > 0 else 1.0


def place_step_rewards(
    n_tokens: int, step_last: list[int], step_rewards: list[float], weighting: str = "none"
) -> torch.Tensor:
    """Score per action token: step t's reward on its last token ``step_last[t]``, 0 elsewhere.

    ``weighting="public-code"`` multiplies step t's reward by (T - t - 1), as the SPA-RL public code
    does (the last step gets 0)."""
    if weighting not in STEP_WEIGHTINGS:
        raise ValueError(f"step weighting must be one of {STEP_WEIGHTINGS}, got {weighting!r}")
    if len(step_last) != len(step_rewards):
        raise ValueError(f"{len(step_last)} step ends for {len(step_rewards)} step rewards")
    scores = torch.zeros(n_tokens)
    T = len(step_rewards)
    for t, (j, r) in enumerate(zip(step_last, step_rewards, strict=True)):
        w = (T - t - 1) if weighting == "public-code" else 1.0
        scores[j] += r * w
    return scores


def kl_penalised_rewards(
    scores: torch.Tensor, logprobs: torch.Tensor, ref_logprobs: torch.Tensor, kl_coef: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token reward = score - kl_coef * (log pi - log pi_ref); also returns the per-token KL estimate."""
    kl = logprobs - ref_logprobs
    return scores - kl_coef * kl, kl


def critic_free_advantages(
    step_advantages: list[float], step_last: list[int], kl_rewards: torch.Tensor
) -> torch.Tensor:
    """Per action token under a critic-free estimator: its step's advantage plus the KL penalty's
    reward-to-go from that token on (undiscounted), so the per-token penalty -kl_coef * (log pi - log pi_ref)
    acts as it does under GAE, with no value head to bootstrap from."""
    per_token = torch.zeros(kl_rewards.shape[0])
    start = 0
    for a, last in zip(step_advantages, step_last, strict=True):
        per_token[start : last + 1] = a
        start = last + 1
    to_go = torch.flip(torch.cumsum(torch.flip(kl_rewards, [0]), 0), [0])
    return per_token + to_go


def gae(
    rewards: torch.Tensor, values: torch.Tensor, gamma: float, lam: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Advantages and returns over one sequence of action tokens (the value after the last is 0)."""
    n = rewards.shape[0]
    adv = torch.zeros(n)
    last = 0.0
    for j in reversed(range(n)):
        next_v = values[j + 1] if j + 1 < n else 0.0
        delta = rewards[j] + gamma * next_v - values[j]
        last = delta + gamma * lam * last
        adv[j] = last
    return adv, adv + values


def turn_spans(n_tokens: int, step_last: list[int]) -> list[tuple[int, int]]:
    """[start, end) of each agent turn among the action tokens; tokens after the last complete turn
    (a turn cut by the length limit) form one more span."""
    spans, start = [], 0
    for j in step_last:
        spans.append((start, j + 1))
        start = j + 1
    if start < n_tokens:
        spans.append((start, n_tokens))
    return spans


def gae_turns(
    rewards: torch.Tensor, values: torch.Tensor, step_last: list[int], gamma: float, lam: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Turn-level GAE: discount and lambda apply once per agent turn, not once per token.

    A turn's reward is the sum of its tokens' rewards (the step reward on its last token plus the
    per-token KL penalties); its value is the value at its first token (the state after the observation,
    before the agent writes); every token of the turn gets the turn's advantage, and the turn's return
    (advantage + value) is the value target of each of its tokens."""
    spans = turn_spans(rewards.shape[0], step_last)
    r = torch.stack([rewards[a:b].sum() for a, b in spans])
    v = torch.stack([values[a] for a, _ in spans]).to(r.dtype)
    adv_turn, ret_turn = gae(r, v, gamma, lam)
    adv, ret = torch.zeros_like(rewards), torch.zeros_like(rewards)
    for k, (a, b) in enumerate(spans):
        adv[a:b] = adv_turn[k]
        ret[a:b] = ret_turn[k]
    return adv, ret


def advantages(
    level: str, rewards: torch.Tensor, values: torch.Tensor, step_last: list[int], gamma: float, lam: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """GAE advantages and returns per action token, at ``level`` "token" (the public code's, TRL's) or
    "turn" (see ``gae_turns``)."""
    if level == "token":
        return gae(rewards, values, gamma, lam)
    if level == "turn":
        return gae_turns(rewards, values, step_last, gamma, lam)
    raise ValueError(f"GAE level must be one of {GAE_LEVELS}, got {level!r}")


def whiten(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    if x.numel() < 2:
        return x - x.mean()
    return (x - x.mean()) / (x.std() + eps)


def policy_loss(
    logprobs: torch.Tensor, old_logprobs: torch.Tensor, advantages: torch.Tensor, clip: float
) -> tuple[torch.Tensor, dict[str, float]]:
    ratio = torch.exp(logprobs - old_logprobs)
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1.0 - clip, 1.0 + clip)
    loss = torch.max(unclipped, clipped).mean()
    stats = {
        "clipfrac": (clipped > unclipped).float().mean().item(),
        "approx_kl": (0.5 * (logprobs - old_logprobs) ** 2).mean().item(),
    }
    return loss, stats


def value_loss(
    values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor, clip: float
) -> torch.Tensor:
    clipped = old_values + torch.clamp(values - old_values, -clip, clip)
    return 0.5 * torch.max((values - returns) ** 2, (clipped - returns) ** 2).mean()


class KLController:
    """Fixed coefficient, or the adaptive rule of Ziegler et al. (2019): move the coefficient so the
    measured KL approaches ``target`` (error clipped to +-20%, scaled by n_steps / horizon)."""

    def __init__(self, init: float, target: float | None = None, horizon: int = 10000):
        self.value, self.target, self.horizon = init, target, horizon

    def update(self, current_kl: float, n_steps: int) -> float:
        if self.target:
            err = max(-0.2, min(0.2, current_kl / self.target - 1.0))
            self.value *= 1.0 + err * n_steps / self.horizon
        return self.value


@dataclass
class Sample:
    """One rollout as PPO sees it: token ids, action-token positions, and where each step ends."""

    input_ids: list[int]
    act_pos: list[int]
    step_last: list[int]  # index into act_pos of each step's last token
    step_rewards: list[float]
    temperature: float = 1.0  # log-probs are computed at this temperature (see logprob_temperature)
    # Critic-free estimators (spa_rl.rl.advantages): each step's advantage, computed from the rollout's group;
    # None: GAE on step_rewards with the value head.
    step_advantages: list[float] | None = None


def to_sample(
    tokenizer: Any, rec: Any, max_length: int, step_advantages: list[float] | None = None
) -> Sample | None:
    """A PPO record (spa_rl.rewards.PPORecord) as token ids and action positions (with its steps'
    advantages under a critic-free estimator)."""
    rc = render_chat(tokenizer, rec.messages, train_from=rec.prefix_len, max_length=max_length)
    act_pos = [p for p, m in enumerate(rc.assistant_mask) if m and p > 0]
    where = {p: j for j, p in enumerate(act_pos)}
    n = len(rc.turn_ends)  # steps cut off by max_length are dropped with their rewards
    if n == 0:
        return None
    return Sample(
        rc.input_ids,
        act_pos,
        [where[e] for e in rc.turn_ends],
        rec.step_rewards[:n],
        logprob_temperature(rec.temperature),
        None if step_advantages is None else step_advantages[:n],
    )


def collate(samples: list[Sample], pad_id: int, device) -> dict[str, torch.Tensor]:
    index = [(row, p) for row, s in enumerate(samples) for p in s.act_pos]
    return {
        "input_ids": pad_right([s.input_ids for s in samples], pad_id).to(device),
        "attention_mask": pad_right([[1] * len(s.input_ids) for s in samples], 0).to(device),
        "act_index": torch.tensor(index, dtype=torch.long).to(device),
        "temperature": torch.tensor([s.temperature for s in samples for _ in s.act_pos]).to(device),
    }


def rows(xs: list[torch.Tensor], idx: list[int], device) -> torch.Tensor:
    return torch.cat([xs[i] for i in idx]).to(device)


def split_rows(x: torch.Tensor, samples: list[Sample]) -> list[torch.Tensor]:
    return list(torch.split(x, [len(s.act_pos) for s in samples]))


def token_micro_batches(samples: list[Sample], idx: list[int], max_tokens: int | None) -> list[list[int]]:
    """The rollouts ``idx`` (one minibatch) as micro-batches whose padded size, rows x longest rollout, stays
    within ``max_tokens``: longest first, each micro-batch filled while the bound holds; a rollout longer
    than the bound goes alone. ``max_tokens`` None (or 0): one micro-batch, ``idx`` as given."""
    if not max_tokens:
        return [list(idx)] if idx else []
    out: list[list[int]] = []
    for i in sorted(idx, key=lambda j: len(samples[j].input_ids), reverse=True):
        # Longest first: a micro-batch's first rollout is its widest.
        if out and (len(out[-1]) + 1) * len(samples[out[-1][0]].input_ids) <= max_tokens:
            out[-1].append(i)
        else:
            out.append([i])
    return out
