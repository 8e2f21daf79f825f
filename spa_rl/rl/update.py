"""One PPO update of the policy/value model on a batch of rollouts with per-step rewards: scoring (old
log-probs, values, reference log-probs), rewards placed on each step's last token with the per-token KL
penalty, GAE per token or per turn, whitening, and the clipped policy and value losses. ``UpdateConfig``
holds the settings it reads; ppo/train.py builds it from its own config with ``UpdateConfig.of``."""

from __future__ import annotations

import contextlib
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
    token_micro_batches,
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
    # Memory: each minibatch's forward and backward passes (and the scoring passes) run in micro-batches of at
    # most this many padded tokens (rows x longest rollout; a longer rollout goes alone), their losses weighted
    # by their share of the minibatch's action tokens: the same loss and gradients. None: one pass.
    max_tokens_per_micro_batch: int | None = None

    @classmethod
    def of(cls, config) -> UpdateConfig:
        """The fields of the same names of any config object (e.g. ppo/train.py's PPOConfig); a field with a
        default may be missing there."""
        return cls(**{f.name: getattr(config, f.name) for f in fields(cls) if hasattr(config, f.name)})


@torch.no_grad()
def score_rollouts(
    unwrapped, samples: list[Sample], minibatch_size: int, pad_id: int, device, max_tokens: int | None = None
):
    """The policy before an update: log-probs and values of every action token, and the reference's
    log-probs (adapters disabled), one tensor per rollout. Passes of ``minibatch_size`` rollouts, each
    split into micro-batches of at most ``max_tokens`` padded tokens (None: not split)."""
    old_lp, old_v, ref_lp = [None] * len(samples), [None] * len(samples), [None] * len(samples)
    for s in range(0, len(samples), minibatch_size):
        idx = list(range(s, min(s + minibatch_size, len(samples))))
        for part in token_micro_batches(samples, idx, max_tokens):
            mb = [samples[i] for i in part]
            batch = collate(mb, pad_id, device)
            lp, v = unwrapped(**batch)
            ref = unwrapped.reference_logprobs(**batch)
            for i, a, b, c in zip(part, split_rows(lp.cpu(), mb), split_rows(v.cpu(), mb),
                                  split_rows(ref.cpu(), mb), strict=True):  # fmt: skip
                old_lp[i], old_v[i], ref_lp[i] = a, b, c
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


def _deferred_sync(accelerator, model, defer: bool):
    """Around a backward pass: with ``defer``, keep its gradients local (DDP's no_sync) until the next synced
    pass. Accelerator stand-ins without ``no_sync`` (one process) need nothing."""
    if not defer or not hasattr(accelerator, "no_sync"):
        return contextlib.nullcontext()
    return accelerator.no_sync(model)


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
    max_tokens = cfg.max_tokens_per_micro_batch
    old_lp, old_v, ref_lp = score_rollouts(unwrapped, samples, cfg.minibatch_size, pad_id, device, max_tokens)
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
            step = (k + 1) % cfg.grad_accum == 0 or k == len(mbs) - 1  # an optimizer step follows
            # The minibatch's losses are means over its action tokens: each micro-batch's mean, weighted
            # by its share of them, adds up to the same loss and gradients.
            n_act = max(1, sum(len(samples[i].act_pos) for i in mb_idx))
            parts = token_micro_batches(samples, mb_idx, max_tokens)
            mb_stats = dict.fromkeys(stats, 0.0)
            for j, part in enumerate(parts):
                w = sum(len(samples[i].act_pos) for i in part) / n_act
                lp, v = policy(**collate([samples[i] for i in part], pad_id, device))
                pg, st = policy_loss(lp, rows(old_lp, part, device), rows(adv, part, device), cfg.clip)
                vf = value_loss(v, rows(old_v, part, device), rows(ret, part, device), cfg.value_clip)
                # Several processes: gradients are averaged once per optimizer step, in its last backward
                # pass (each process makes one, however many micro-batches its rollouts need).
                with _deferred_sync(accelerator, policy, defer=not (step and j == len(parts) - 1)):
                    accelerator.backward(w * (pg + vf_coef * vf) / cfg.grad_accum)
                for key, x in (("pg_loss", pg.item()), ("vf_loss", vf.item()), ("clipfrac", st["clipfrac"]),
                               ("approx_kl", st["approx_kl"])):  # fmt: skip
                    mb_stats[key] += w * x
            if step:
                accelerator.clip_grad_norm_(policy.parameters(), cfg.max_grad_norm)
                optimizer.step()
                optimizer.zero_grad()
            for key, x in mb_stats.items():
                stats[key].append(x)
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
