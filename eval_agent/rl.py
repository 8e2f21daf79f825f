"""Step-level PPO arithmetic on action tokens (the tokens of the agent's turns, observations skipped):
per-token rewards with the KL penalty and each step's reward on the step's last token, GAE, the
clipped losses, and the adaptive KL coefficient. Pure tensor functions, tested against hand-computed
cases."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from eval_agent.chat import render_chat
from eval_agent.training import pad_right


def place_step_rewards(
    n_tokens: int, step_last: list[int], step_rewards: list[float], weighting: str = "none"
) -> torch.Tensor:
    """Score per action token: step t's reward on its last token ``step_last[t]``, 0 elsewhere.

    ``weighting="public-code"`` multiplies step t's reward by (T - t - 1), as the SPA-RL public code
    does (the last step gets 0)."""
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


def to_sample(tokenizer: Any, rec: Any, max_length: int) -> Sample | None:
    """A PPO record (eval_agent.step_rewards.PPORecord) as token ids and action positions."""
    rc = render_chat(tokenizer, rec.messages, train_from=rec.prefix_len, max_length=max_length)
    act_pos = [p for p, m in enumerate(rc.assistant_mask) if m and p > 0]
    where = {p: j for j, p in enumerate(act_pos)}
    n = len(rc.turn_ends)  # steps cut off by max_length are dropped with their rewards
    if n == 0:
        return None
    return Sample(rc.input_ids, act_pos, [where[e] for e in rc.turn_ends], rec.step_rewards[:n])


def collate(samples: list[Sample], pad_id: int, device) -> dict[str, torch.Tensor]:
    index = [(row, p) for row, s in enumerate(samples) for p in s.act_pos]
    return {
        "input_ids": pad_right([s.input_ids for s in samples], pad_id).to(device),
        "attention_mask": pad_right([[1] * len(s.input_ids) for s in samples], 0).to(device),
        "act_index": torch.tensor(index, dtype=torch.long).to(device),
    }


def rows(xs: list[torch.Tensor], idx: list[int], device) -> torch.Tensor:
    return torch.cat([xs[i] for i in idx]).to(device)


def split_rows(x: torch.Tensor, samples: list[Sample]) -> list[torch.Tensor]:
    return list(torch.split(x, [len(s.act_pos) for s in samples]))
