"""One PPO update of the policy/value model on a batch of rollouts with per-step rewards: scoring (old
log-probs, values, reference log-probs), rewards placed on each step's last token with the per-token KL
penalty, GAE per token or per turn, whitening, and the clipped policy and value losses. ``UpdateConfig``
holds the settings it reads; ppo/train.py builds it from its own config with ``UpdateConfig.of``."""

from __future__ import annotations

import random
from dataclasses import dataclass, fields

import torch

from spa_rl.rewards import resolve_step_weighting
from spa_rl.rl.ppo import (
    KLController,
    Sample,
    advantages,
    collate,
    critic_free_advantages,
    kl_penalised_rewards,
    place_step_rewards,
    policy_loss,
    rows,
    split_rows,
    value_loss,
    whiten,
)


@dataclass(frozen=True)
class UpdateConfig:
    variant: str
    step_weighting: str  # auto | none | public-code
    gae_level: str
    gamma: float
    lam: float
    whiten_advantages: bool
    ppo_epochs: int
    minibatch_size: int
    grad_accum: int
    clip: float
    value_clip: float
    vf_coef: float
    max_grad_norm: float
    seed: int

    @classmethod
    def of(cls, config) -> UpdateConfig:
        """The fields of the same names of any config object (e.g. ppo/train.py's PPOConfig)."""
        return cls(**{f.name: getattr(config, f.name) for f in fields(cls)})


@torch.no_grad()
def score_rollouts(unwrapped, samples: list[Sample], minibatch_size: int, pad_id: int, device):
    """The policy before an update: log-probs and values of every action token, and the reference's
    log-probs (adapters disabled), one tensor per rollout."""
    old_lp, old_v, ref_lp = [], [], []
    for s in range(0, len(samples), minibatch_size):
        mb = samples[s : s + minibatch_size]
        batch = collate(mb, pad_id, device)
        lp, v = unwrapped(**batch)
        old_lp += split_rows(lp.cpu(), mb)
        old_v += split_rows(v.cpu(), mb)
        ref_lp += split_rows(unwrapped.reference_logprobs(**batch).cpu(), mb)
    return old_lp, old_v, ref_lp


def rollout_advantages(samples: list[Sample], old_lp, old_v, ref_lp, cfg: UpdateConfig, kl_coef: float):
    """Per action token: step rewards on each step's last token, the KL penalty, GAE at ``cfg.gae_level``,
    then whitening across the batch. Samples with ``step_advantages`` (a critic-free estimator) take those
    instead of GAE, plus the KL penalty's reward-to-go, unwhitened (the group already normalised them) and
    with no value target (their returns are the old values, so the value loss is 0). Returns advantages,
    returns, and per rollout the summed KL and score."""
    adv, ret, kls, scores = [], [], [], []
    weighting = resolve_step_weighting(cfg.step_weighting, cfg.variant)
    for i, smp in enumerate(samples):
        score = place_step_rewards(len(smp.act_pos), smp.step_last, smp.step_rewards, weighting)
        rew, kl = kl_penalised_rewards(score, old_lp[i], ref_lp[i], kl_coef)
        if smp.step_advantages is not None:
            kl_only = kl_penalised_rewards(torch.zeros_like(score), old_lp[i], ref_lp[i], kl_coef)[0]
            a, r = critic_free_advantages(smp.step_advantages, smp.step_last, kl_only), old_v[i].clone()
            score = torch.zeros(1).new_tensor(smp.step_advantages)  # the log's "score": the step advantages
        else:
            a, r = advantages(cfg.gae_level, rew, old_v[i], smp.step_last, cfg.gamma, cfg.lam)
        adv.append(a)
        ret.append(r)
        kls.append(kl.sum().item())
        scores.append(score.sum().item())
    if cfg.whiten_advantages and all(s.step_advantages is None for s in samples):
        flat = whiten(torch.cat(adv))
        adv = list(torch.split(flat, [len(a) for a in adv]))
    return adv, ret, kls, scores


def ppo_iteration(
    policy,
    unwrapped,
    optimizer,
    accelerator,
    samples: list[Sample],
    cfg: UpdateConfig,
    kl_ctl: KLController,
    pad_id: int,
    iteration: int,
) -> dict:
    """One PPO update on ``samples``: score them with the current policy and the reference, advantages,
    then ``cfg.ppo_epochs`` epochs of clipped policy and value losses over minibatches. Returns the
    iteration's figures for the training log and moves the adaptive KL coefficient."""
    device = accelerator.device
    # Dropout stays off throughout (as TRL does): the update's first forward pass then reproduces the
    # log-probabilities scored here exactly, so the ratio starts at 1.
    policy.eval()
    old_lp, old_v, ref_lp = score_rollouts(unwrapped, samples, cfg.minibatch_size, pad_id, device)
    adv, ret, kls, scores = rollout_advantages(samples, old_lp, old_v, ref_lp, cfg, kl_ctl.value)
    # Critic-free estimators train no value head: the value loss is logged but takes no gradient.
    vf_coef = 0.0 if any(s.step_advantages is not None for s in samples) else cfg.vf_coef
    # 3. Clipped updates: several epochs over minibatches, gradient accumulation.
    stats = {"pg_loss": [], "vf_loss": [], "clipfrac": [], "approx_kl": []}
    rng = random.Random(cfg.seed * 100003 + iteration)
    for _ in range(cfg.ppo_epochs):
        order = list(range(len(samples)))
        rng.shuffle(order)
        mbs = [order[s : s + cfg.minibatch_size] for s in range(0, len(order), cfg.minibatch_size)]
        for k, mb_idx in enumerate(mbs):
            mb = [samples[i] for i in mb_idx]
            lp, v = policy(**collate(mb, pad_id, device))
            pg, st = policy_loss(lp, rows(old_lp, mb_idx, device), rows(adv, mb_idx, device), cfg.clip)
            vf = value_loss(v, rows(old_v, mb_idx, device), rows(ret, mb_idx, device), cfg.value_clip)
            accelerator.backward((pg + vf_coef * vf) / cfg.grad_accum)
            if (k + 1) % cfg.grad_accum == 0 or k == len(mbs) - 1:
                accelerator.clip_grad_norm_(policy.parameters(), cfg.max_grad_norm)
                optimizer.step()
                optimizer.zero_grad()
            stats["pg_loss"].append(pg.item())
            stats["vf_loss"].append(vf.item())
            stats["clipfrac"].append(st["clipfrac"])
            stats["approx_kl"].append(st["approx_kl"])
    mean_kl = sum(kls) / len(kls)
    # A second estimate of the same KL(policy || ref) per rollout, for the log only: sum of
    # exp(d) - 1 - d, d = log ref - log pi (Schulman's k3): >= 0 token by token and of lower variance than
    # the penalty's log-ratio (k1), whose per-token terms are first order in the policy change while its
    # mean is second order, so a batch of a few rollouts of a barely moved policy can log k1 < 0.
    k3 = [(torch.exp(r - o) - 1 - (r - o)).sum().item() for o, r in zip(old_lp, ref_lp, strict=True)]
    out = {k: sum(v) / len(v) for k, v in stats.items()}
    out |= {"kl": mean_kl, "kl_k3": sum(k3) / len(k3), "kl_coef": kl_ctl.value,
            "score": sum(scores) / len(scores)}  # fmt: skip
    kl_ctl.update(mean_kl, len(samples))
    return out
