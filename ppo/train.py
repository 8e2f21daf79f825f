"""Step-level PPO with fused per-step rewards (stage 4): the SFT model with LoRA, a value head,
reference = adapters disabled, per-token KL penalty, each step's reward on the last token of its turn,
GAE over action tokens, clipped policy and value losses.

    # offline (the public code): PPO on the fixed exploration rollouts and their fused rewards
    python ppo/train.py --mode offline --model runs/demo/alfworld/sft/model \\
        --data runs/demo/alfworld/ppo_data/progress.jsonl --output-dir runs/demo/alfworld/ppo_progress
    # online: fresh rollouts from the current policy each iteration, rewarded by the frozen estimator
    python ppo/train.py --mode online --model runs/demo/alfworld/sft/model --env alfworld \\
        --estimator runs/demo/alfworld/estimator/estimator --output-dir runs/demo/alfworld/ppo_online

Several processes: ``accelerate launch [--cpu] --num_processes N ppo/train.py ...`` (DDP; DeepSpeed
through an accelerate config). Writes ``<output-dir>/adapter`` (LoRA + value head, safetensors),
``train_log.jsonl`` and ``summary.json``; ``<output-dir>/checkpoint`` is rewritten every
``--save-every`` iterations and a rerun resumes from it.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from tqdm import tqdm

from eval_agent.backends.hf import load_tokenizer
from eval_agent.policy_value import PolicyWithValue
from eval_agent.rl import (
    KLController,
    Sample,
    collate,
    gae,
    kl_penalised_rewards,
    place_step_rewards,
    policy_loss,
    rows,
    split_rows,
    to_sample,
    value_loss,
    whiten,
)
from eval_agent.schema import command_line, write_json_atomic
from eval_agent.step_rewards import read_ppo_data
from eval_agent.training import publish_dir, write_log_history


@dataclass
class PPOConfig:
    model: str = ""  # the SFT model folder
    output_dir: str = "runs/ppo"
    mode: str = "offline"  # offline | online
    data: str = ""  # offline: PPO data file (prm/fuse_rewards.py)
    # online
    env: str = "alfworld"
    estimator: str = ""  # frozen progress estimator folder (variants that need it)
    variant: str = "progress"  # step-value variant for online rewards
    num_tasks: int | None = None  # training tasks to draw from (None: all)
    task_types: str | None = None  # comma-separated task types to draw from (None: all)
    temperature: float = 0.7
    max_steps: int | None = None
    max_new_tokens: int = 128
    gen_batch_size: int = 8
    alpha: float = 1.0
    beta: float | None = None  # None: 0.5, or 0 for sparse / no-grounding
    # PPO
    iterations: int = 10
    rollouts_per_iteration: int = 8
    ppo_epochs: int = 2
    minibatch_size: int = 2  # rollouts per forward pass
    grad_accum: int = 2  # minibatches per optimizer step
    lr: float = 1e-5
    gamma: float = 0.99
    lam: float = 0.95
    clip: float = 0.2
    value_clip: float = 0.2
    vf_coef: float = 0.1
    kl_coef: float = 0.3
    kl_target: float | None = 6.0  # None: fixed coefficient
    kl_horizon: int = 10000
    whiten_advantages: bool = True
    max_grad_norm: float = 1.0
    step_weighting: str = "none"  # none | public-code (step t's reward x (T - t - 1))
    max_length: int = 4096
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    seed: int = 0
    save_every: int = 5


HELP = {
    "mode": "offline: fixed exploration rollouts; online: fresh rollouts each iteration",
    "variant": "online: progress | sparse | mean | random | no-progress | no-grounding",
    "rollouts_per_iteration": "rollouts per PPO iteration (offline: taken in turn from the data file)",
    "step_weighting": "none (paper) | public-code: multiply step t's reward by (T - t - 1)",
    "kl_target": "adaptive KL target; 'none' keeps kl_coef fixed",
}


def parse_args() -> PPOConfig:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for f in fields(PPOConfig):
        flag = "--" + f.name.replace("_", "-")
        if f.type == "bool":
            ap.add_argument(flag, type=lambda s: s.lower() in ("1", "true", "yes"), default=f.default)
            continue
        base = str(f.type).split(" |")[0]
        kind = {"int": int, "float": float}.get(base, str)
        conv = (
            (lambda k: lambda s: None if s.lower() == "none" else k(s))(kind)
            if "None" in str(f.type)
            else kind
        )
        ap.add_argument(
            flag, type=conv, default=f.default, help=f"{HELP.get(f.name, '')} (default: {f.default})"
        )
    cfg = PPOConfig(**vars(ap.parse_args()))
    if cfg.mode not in ("offline", "online"):
        raise SystemExit(f"--mode must be offline or online, got {cfg.mode!r}")
    if cfg.mode == "offline" and not cfg.data:
        raise SystemExit("--mode offline needs --data (a PPO data file from prm/fuse_rewards.py)")
    return cfg


class OfflineSource:
    """Rollouts from the PPO data file, shuffled once per pass, taken in turn."""

    def __init__(self, cfg: PPOConfig, tokenizer, rank: int, world: int):
        recs = read_ppo_data(cfg.data)
        self.samples = [s for r in recs if (s := to_sample(tokenizer, r, cfg.max_length))]
        self.samples = self.samples[rank::world]
        self.rng = random.Random(cfg.seed)
        self.order: list[int] = []

    def next(self, n: int, iteration: int) -> tuple[list[Sample], dict]:
        out = []
        while len(out) < n:
            if not self.order:
                self.order = list(range(len(self.samples)))
                self.rng.shuffle(self.order)
            out.append(self.samples[self.order.pop()])
        return out, {}


def ppo_iteration(policy, unwrapped, optimizer, accelerator, samples, cfg, kl_ctl, pad_id, iteration) -> dict:
    device = accelerator.device
    # 1. The policy before this update: log-probs, values, and the reference's log-probs.
    old_lp, old_v, ref_lp = [], [], []
    policy.eval()
    with torch.no_grad():
        for s in range(0, len(samples), cfg.minibatch_size):
            mb = samples[s : s + cfg.minibatch_size]
            batch = collate(mb, pad_id, device)
            lp, v = unwrapped(**batch)
            old_lp += split_rows(lp.cpu(), mb)
            old_v += split_rows(v.cpu(), mb)
            ref_lp += split_rows(unwrapped.reference_logprobs(**batch).cpu(), mb)
    # 2. Rewards per action token and GAE.
    adv, ret, kls, scores = [], [], [], []
    for i, smp in enumerate(samples):
        score = place_step_rewards(len(smp.act_pos), smp.step_last, smp.step_rewards, cfg.step_weighting)
        rew, kl = kl_penalised_rewards(score, old_lp[i], ref_lp[i], kl_ctl.value)
        a, r = gae(rew, old_v[i], cfg.gamma, cfg.lam)
        adv.append(a)
        ret.append(r)
        kls.append(kl.sum().item())
        scores.append(score.sum().item())
    if cfg.whiten_advantages:
        flat = whiten(torch.cat(adv))
        adv = list(torch.split(flat, [len(a) for a in adv]))
    # 3. Clipped updates: several epochs over minibatches, gradient accumulation.
    policy.train()
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
            accelerator.backward((pg + cfg.vf_coef * vf) / cfg.grad_accum)
            if (k + 1) % cfg.grad_accum == 0 or k == len(mbs) - 1:
                accelerator.clip_grad_norm_(policy.parameters(), cfg.max_grad_norm)
                optimizer.step()
                optimizer.zero_grad()
            stats["pg_loss"].append(pg.item())
            stats["vf_loss"].append(vf.item())
            stats["clipfrac"].append(st["clipfrac"])
            stats["approx_kl"].append(st["approx_kl"])
    mean_kl = sum(kls) / len(kls)
    out = {k: sum(v) / len(v) for k, v in stats.items()}
    out |= {"kl": mean_kl, "kl_coef": kl_ctl.value, "score": sum(scores) / len(scores)}
    kl_ctl.update(mean_kl, len(samples))
    return out


def main() -> None:
    cfg = parse_args()
    # cpu=True lets a multi-process CPU launch (torchrun, gloo) form its process group.
    accelerator = Accelerator(cpu=not torch.cuda.is_available())
    set_seed(cfg.seed)
    out = Path(cfg.output_dir)
    if (out / "adapter" / "adapter_config.json").exists():
        print(f"{out / 'adapter'} exists; remove it to train again")
        return
    ckpt = out / "checkpoint"
    resume = (ckpt / "state.json").exists()
    tokenizer = load_tokenizer(cfg.model)
    policy = PolicyWithValue.create(
        cfg.model,
        cfg.lora_r,
        cfg.lora_alpha,
        cfg.lora_dropout,
        adapter=str(ckpt / "adapter") if resume else None,
    )
    optimizer = torch.optim.AdamW([p for p in policy.parameters() if p.requires_grad], lr=cfg.lr)
    start, kl_value, log = 0, cfg.kl_coef, []
    if resume:
        state = json.loads((ckpt / "state.json").read_text())
        start, kl_value = state["iteration"], state["kl_coef"]
        optimizer.load_state_dict(torch.load(ckpt / "optimizer.pt", weights_only=True))
        log = [json.loads(ln) for ln in (out / "train_log.jsonl").read_text().splitlines() if ln.strip()]
        log = log[:start]
        accelerator.print(f"resuming at iteration {start}")
    policy, optimizer = accelerator.prepare(policy, optimizer)
    unwrapped = accelerator.unwrap_model(policy)
    kl_ctl = KLController(kl_value, cfg.kl_target, cfg.kl_horizon)
    if cfg.mode == "offline":
        source = OfflineSource(cfg, tokenizer, accelerator.process_index, accelerator.num_processes)
    else:
        from eval_agent.online import OnlineSource

        source = OnlineSource(cfg, tokenizer, unwrapped, accelerator)
    per_process = max(1, math.ceil(cfg.rollouts_per_iteration / accelerator.num_processes))
    t0 = time.time()
    bar = tqdm(range(start, cfg.iterations), desc="ppo", unit="it", disable=not accelerator.is_main_process)
    for it in bar:
        samples, extra = source.next(per_process, it)
        stats = ppo_iteration(
            policy, unwrapped, optimizer, accelerator, samples, cfg, kl_ctl, tokenizer.pad_token_id, it
        )
        stats = {"iteration": it + 1, **extra, **stats, "seconds": round(time.time() - t0, 1)}
        log.append(stats)
        bar.set_postfix(score=f"{stats['score']:.3f}", kl=f"{stats['kl']:.3f}", pg=f"{stats['pg_loss']:.3f}")
        if accelerator.is_main_process:
            write_log_history(out / "train_log.jsonl", log)
            if (it + 1) % cfg.save_every == 0 and it + 1 < cfg.iterations:
                tmp = out / "checkpoint.partial"
                unwrapped.save(tmp / "adapter")
                torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
                (tmp / "state.json").write_text(json.dumps({"iteration": it + 1, "kl_coef": kl_ctl.value}))
                publish_dir(tmp, ckpt)
        accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        tmp = out / "adapter.partial"
        unwrapped.save(tmp)
        publish_dir(tmp, out / "adapter")
        write_json_atomic(
            out / "summary.json",
            {
                "command": command_line(),
                "config": asdict(cfg),
                "processes": accelerator.num_processes,
                "iterations": len(log),
                "seconds_this_run": round(time.time() - t0, 1),
                "first": log[0] if log else None,
                "last": log[-1] if log else None,
            },
        )
        accelerator.print(f"saved {out / 'adapter'}")


if __name__ == "__main__":
    main()
