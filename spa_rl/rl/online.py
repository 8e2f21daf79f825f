"""Online PPO's rollout source: each iteration the current policy (LoRA model, in memory) plays fresh
training tasks; the frozen progress estimator and the recorded grounding turn them into per-step
rewards. Rollouts are appended to ``<output_dir>/online_rollouts.jsonl``; a run resumed at iteration i
keeps the episodes of iterations up to i (iteration i's came from the checkpoint's weights) and drops the
later ones, which later weights played; their prompts hold ``cfg.icl_examples`` in-context examples. The
generator's key/value caches are dropped before every iteration: they hold keys/values of the weights
before the last update."""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from pathlib import Path

from envs import select_tasks
from spa_rl.agent.backends import GenerationConfig
from spa_rl.agent.backends.hf import HFPolicy
from spa_rl.agent.metrics import summarize
from spa_rl.agent.runner import EpisodeSpec, RolloutConfig, run_rollouts
from spa_rl.agent.schema import read_records, write_jsonl_atomic
from spa_rl.rewards import DEFAULT_BETA, NEEDS_ESTIMATOR, ONLINE_VARIANTS, fuse, step_values
from spa_rl.rl.ppo import to_sample
from spa_rl.rl.sampler import PassSampler


@dataclass(frozen=True)
class SourceConfig:
    """What online rollouts and the training probe need from a PPO run's configuration (the recipe builds
    it with ``SourceConfig.of(config)``; this module depends on nothing else of the recipe)."""

    model: str
    output_dir: str
    env: str
    variant: str | None
    estimator: str
    num_tasks: int | None
    task_types: str | None
    task_ids: str | None
    exclude_task_ids: str | None
    temperature: float | None
    max_steps: int | None
    max_new_tokens: int
    gen_batch_size: int
    max_length: int
    alpha: float
    beta: float | None
    icl_examples: int
    seed: int
    probe_every: int = 0
    probe_tasks: int = 16
    probe_seed: int = 0

    @classmethod
    def of(cls, config) -> SourceConfig:
        """The fields of the same names of any config object (e.g. ppo/train.py's PPOConfig)."""
        return cls(**{f.name: getattr(config, f.name) for f in fields(cls)})


class OnlineSource:
    def __init__(self, cfg: SourceConfig, tokenizer, policy, accelerator, start_iteration: int = 0):
        if cfg.variant not in ONLINE_VARIANTS:
            raise SystemExit(
                f"online PPO supports --variant {'/'.join(ONLINE_VARIANTS)}, got {cfg.variant!r}"
            )
        self.cfg, self.tokenizer, self.policy = cfg, tokenizer, policy
        tasks = select_tasks(
            cfg.env,
            "train",
            cfg.num_tasks,
            "random",
            cfg.seed,
            cfg.task_types,
            cfg.task_ids,
            cfg.exclude_task_ids,
        )
        self.tasks = tasks[accelerator.process_index :: accelerator.num_processes]
        self.rank = accelerator.process_index
        self.sampler = PassSampler(len(self.tasks), cfg.seed + self.rank)
        self.estimator = None
        if cfg.variant in NEEDS_ESTIMATOR:
            if not cfg.estimator:
                raise SystemExit(f"--variant {cfg.variant} needs --estimator")
            from spa_rl.estimator.model import ProgressEstimator

            self.estimator = ProgressEstimator.load(cfg.estimator).to(accelerator.device)
        self.gen = HFPolicy(
            cfg.model,
            device=str(accelerator.device),
            batch_size=cfg.gen_batch_size,
            model=policy.lm,
            tokenizer=tokenizer,
        )
        suffix = f".rank{self.rank}" if accelerator.num_processes > 1 else ""
        self.out = Path(cfg.output_dir) / f"online_rollouts{suffix}.jsonl"
        kept = [
            r
            for r in read_records(self.out, repair_torn_tail=True)
            if r.meta.get("iteration", 0) <= start_iteration
        ]
        write_jsonl_atomic(self.out, [r.to_json() for r in kept])

    def next(self, n: int, iteration: int):
        picked = [self.tasks[i] for i in self.sampler.take(iteration * n, n)]
        specs = [
            EpisodeSpec(t, iteration * n + i, meta={"iteration": iteration}) for i, t in enumerate(picked)
        ]
        cfg = self.cfg
        self.gen.weights_changed()
        rcfg = RolloutConfig(
            batch_size=cfg.gen_batch_size,
            max_steps=cfg.max_steps,
            generation=GenerationConfig(cfg.max_new_tokens, cfg.temperature, 1.0, cfg.seed + iteration),
        )
        self.policy.eval()
        meta = {"model": f"{cfg.model} + LoRA (online PPO)", "temperature": cfg.temperature, "seed": cfg.seed}
        icl = cfg.icl_examples
        records, _ = run_rollouts(
            [], self.gen, self.out, rcfg, specs=specs, progress=False, meta=meta, icl_examples=icl
        )
        if self.estimator is not None:
            from spa_rl.estimator.model import estimate_step_values

            est = [
                c
                for c, _ in estimate_step_values(
                    self.estimator, self.tokenizer, records, max_length=cfg.max_length
                )
            ]
        else:
            est = [None] * len(records)
        samples = []
        for r, e in zip(records, est, strict=True):
            if r.n_steps == 0:
                continue
            c = step_values(cfg.variant, r, estimator_values=e, seed=cfg.seed + iteration)
            beta = cfg.beta if cfg.beta is not None else DEFAULT_BETA[cfg.variant]
            s = to_sample(self.tokenizer, fuse(r, cfg.variant, c, cfg.alpha, beta), cfg.max_length)
            if s is not None:
                samples.append(s)
        m = summarize(records)
        return samples, {"rollout_success": m["success_rate"], "rollout_grounding": m["grounding"],
                         "rollout_steps": m["avg_steps"]}  # fmt: skip


class TrainingProbe:
    """PPO's learning curve: every ``probe_every`` updates the current policy plays a fixed set of
    ``probe_tasks`` training tasks greedily (drawn with ``probe_seed``, the same for every run and seed, from
    the tasks PPO may use: ``--task-types`` / ``--task-ids``). Offline PPO's own rollouts are fixed, so this
    is the only sign there of whether the policy gets better. Episodes go to ``probe_rollouts.jsonl``
    (rollout index = updates done), figures to ``probe_log.jsonl``; a resumed run drops probes past its
    checkpoint."""

    def __init__(self, cfg: SourceConfig, tokenizer, policy, start_iteration: int = 0):
        self.cfg, self.policy = cfg, policy
        self.tasks = select_tasks(cfg.env, "train", cfg.probe_tasks, "random", cfg.probe_seed, cfg.task_types,
                                  cfg.task_ids, cfg.exclude_task_ids)  # fmt: skip
        device = str(next(policy.parameters()).device)
        self.gen = HFPolicy(
            cfg.model, device, batch_size=cfg.gen_batch_size, model=policy.lm, tokenizer=tokenizer
        )
        out = Path(cfg.output_dir)
        self.records, self.log = out / "probe_rollouts.jsonl", out / "probe_log.jsonl"
        kept = [r for r in read_records(self.records, repair_torn_tail=True) if r.rollout <= start_iteration]
        write_jsonl_atomic(self.records, [r.to_json() for r in kept])
        lines = self.log.read_text().splitlines() if self.log.exists() else []
        self.entries = [
            e for e in map(json.loads, filter(str.strip, lines)) if e["updates"] <= start_iteration
        ]
        write_jsonl_atomic(self.log, [json.dumps(e) for e in self.entries])

    def due(self, updates: int) -> bool:
        every = self.cfg.probe_every
        return every > 0 and updates % every == 0 and all(e["updates"] != updates for e in self.entries)

    def run(self, updates: int) -> dict:
        """Play the probe tasks with the weights after ``updates`` PPO updates; returns the logged figures."""
        cfg = self.cfg
        self.gen.weights_changed()
        self.policy.eval()
        rcfg = RolloutConfig(batch_size=cfg.gen_batch_size, max_steps=cfg.max_steps,
                             generation=GenerationConfig(cfg.max_new_tokens, 0.0, 1.0, 0))  # fmt: skip
        specs = [EpisodeSpec(t, updates, meta={"updates": updates}) for t in self.tasks]
        meta = {"model": f"{cfg.model} + LoRA after {updates} PPO updates (probe)", "temperature": 0.0}
        records, _ = run_rollouts([], self.gen, self.records, rcfg, specs=specs, progress=False, meta=meta,
                                  icl_examples=cfg.icl_examples)  # fmt: skip
        m = summarize(records)
        entry = {"updates": updates, "train_success": m["success_rate"], "train_grounding": m["grounding"],
                 "n": m["n"]}  # fmt: skip
        self.entries.append(entry)
        write_jsonl_atomic(self.log, [json.dumps(e) for e in self.entries])
        return entry
