"""Where PPO's rollouts come from, behind one small protocol (``RolloutSource.next``): the k-th rollout or
task drawn is a function of the seed and k alone (``PassSampler``), so a resumed run trains on what the
uninterrupted run would have.

- ``OfflineSource`` (the public code): the fixed exploration rollouts of a PPO data file with their fused
  rewards (prm/fuse_rewards.py), shuffled once per pass and taken in turn.
- ``OnlineSource``: each iteration the current policy (LoRA model, in memory; or served by vLLM with the
  current adapter loaded before each iteration, ``--rollout-backend vllm``) plays fresh training tasks;
  the frozen progress estimator and the recorded grounding turn them into per-step rewards. Rollouts are
  appended to ``<output_dir>/online_rollouts.jsonl``; a run resumed at iteration i keeps the episodes of
  iterations up to i (iteration i's came from the checkpoint's weights) and drops the later ones, which
  later weights played. The generator's key/value caches are dropped before every iteration: they hold
  keys/values of the weights before the last update.

Both read a typed ``SourceConfig`` that the recipe builds with ``SourceConfig.of(its_config)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Protocol

from envs import parse_env_options, select_tasks
from spa_rl.agent.backends import GenerationConfig
from spa_rl.agent.metrics import summarize
from spa_rl.agent.prompts import check_records_icl
from spa_rl.agent.runner import EpisodeSpec, RolloutConfig, run_rollouts
from spa_rl.agent.schema import read_records, write_jsonl_atomic
from spa_rl.rewards import DEFAULT_BETA, NEEDS_ESTIMATOR, ONLINE_VARIANTS, fuse, read_ppo_data, step_values
from spa_rl.rl.advantages import AdvantageSettings, advantages_by_task, get_estimator, member_of
from spa_rl.rl.ppo import Sample, to_sample
from spa_rl.rl.sampler import PassSampler


@dataclass(frozen=True)
class SourceConfig:
    """What the rollout sources and the training probe need from a PPO run's configuration (the recipe
    builds it with ``SourceConfig.of(config)``; this module depends on nothing else of the recipe)."""

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
    env_option: Sequence[str] = ()  # --env-option NAME=VALUE items (online rollouts and the probe)
    probe_every: int = 0
    probe_tasks: int = 16
    probe_seed: int = 0
    data: str = ""  # offline: the PPO data file
    # critic-free advantages (spa_rl.rl.advantages): the estimator, its settings, and online the group size
    advantage: str = "gae"
    grpo_std: bool = True
    adv_eps: float = 1e-6
    gigpo_gamma: float = 0.95
    invalid_penalty: float = 0.1
    gigpo_step_weight: float = 1.0
    group_size: int = 1
    # online rollouts from a server (spa_rl/rl/served_policy.py): hf (in process) | vllm | serve
    rollout_backend: str = "hf"
    vllm_python: str | None = None
    vllm_args: str = ""
    vllm_mem_fraction: float | None = None
    vllm_start_timeout: float = 900.0
    lora_r: int = 8

    @property
    def critic_free(self) -> bool:
        return not get_estimator(self.advantage).critic

    @property
    def env_options(self) -> dict[str, str]:
        return parse_env_options(self.env, self.env_option)

    def advantage_settings(self) -> AdvantageSettings:
        return AdvantageSettings(self.grpo_std, self.adv_eps, self.gigpo_gamma, self.invalid_penalty,
                                 self.gigpo_step_weight)  # fmt: skip

    @classmethod
    def of(cls, config) -> SourceConfig:
        """The fields of the same names of any config object (e.g. ppo/train.py's PPOConfig); fields it
        lacks keep their defaults."""
        if isinstance(config, cls):
            return config
        return cls(**{f.name: getattr(config, f.name) for f in fields(cls) if hasattr(config, f.name)})


class RolloutSource(Protocol):
    variant: str

    def next(self, n: int, iteration: int) -> tuple[list[Sample], dict]:
        """This process's ``n`` rollouts of PPO iteration ``iteration`` and figures for the training log."""
        ...


class OfflineSource:
    """Rollouts of the PPO data file, shuffled once per pass, taken in turn; ``variant`` is the data's."""

    def __init__(self, cfg: SourceConfig, tokenizer, rank: int = 0, world: int = 1):
        cfg = SourceConfig.of(cfg)
        recs = read_ppo_data(cfg.data)
        check_records_icl(recs, cfg.icl_examples, cfg.data, "the PPO data")
        variants = sorted({r.variant for r in recs})
        if len(variants) != 1:
            raise SystemExit(f"{cfg.data}: records of several variants {variants}; one file per variant")
        if cfg.variant is not None and cfg.variant != variants[0]:
            raise SystemExit(f"--variant {cfg.variant} but {cfg.data} holds variant {variants[0]!r} rewards")
        self.variant = variants[0]
        # Critic-free estimators: the group of a rollout is every rollout of its task in the file.
        advs = attach_advantages(cfg, recs)
        self.samples = [
            s for r, a in zip(recs, advs, strict=True) if (s := to_sample(tokenizer, r, cfg.max_length, a))
        ]
        self.samples = self.samples[rank::world]
        if not self.samples:
            raise SystemExit(f"{cfg.data}: no rollout fits --max-length {cfg.max_length} on process {rank}")
        self.sampler = PassSampler(len(self.samples), cfg.seed)

    def next(self, n: int, iteration: int) -> tuple[list[Sample], dict]:
        return [self.samples[i] for i in self.sampler.take(iteration * n, n)], {}


class OnlineSource:
    """Fresh rollouts of the current policy each iteration, rewarded by ``cfg.variant`` (see the module)."""

    def __init__(self, cfg: SourceConfig, tokenizer, policy, accelerator, start_iteration: int = 0):
        cfg = SourceConfig.of(cfg)
        if cfg.variant not in ONLINE_VARIANTS:
            raise SystemExit(
                f"online PPO supports --variant {'/'.join(ONLINE_VARIANTS)}, got {cfg.variant!r}"
            )
        self.cfg, self.tokenizer, self.policy = cfg, tokenizer, policy
        self.variant = cfg.variant
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
        if cfg.rollout_backend == "hf":
            from spa_rl.rl.merged_policy import lora_generator

            self.gen = lora_generator(
                policy.lm, tokenizer, cfg.model, str(accelerator.device), cfg.gen_batch_size
            )
        else:  # a server with the base model, given the current adapter before each iteration
            from spa_rl.rl.served_policy import ServedLoRAPolicy

            self.gen = ServedLoRAPolicy(cfg, policy.lm, str(accelerator.device), self.rank)
        suffix = f".rank{self.rank}" if accelerator.num_processes > 1 else ""
        self.out = Path(cfg.output_dir) / f"online_rollouts{suffix}.jsonl"
        kept = [
            r
            for r in read_records(self.out, repair_torn_tail=True)
            if r.meta.get("iteration", 0) <= start_iteration
        ]
        write_jsonl_atomic(self.out, [r.to_json() for r in kept])

    def close(self) -> None:
        """Stop the rollout server, if there is one."""
        if hasattr(self.gen, "close"):
            self.gen.close()

    def next(self, n: int, iteration: int) -> tuple[list[Sample], dict]:
        # Critic-free estimators play each drawn task group_size times (ceil(n / G) tasks): their groups.
        g = self.cfg.group_size if self.cfg.critic_free else 1
        n_tasks = -(-n // g)
        drawn = [self.tasks[i] for i in self.sampler.take(iteration * n_tasks, n_tasks)]
        picked = [t for t in drawn for _ in range(g)]
        specs = [
            EpisodeSpec(t, iteration * len(picked) + i, meta={"iteration": iteration})
            for i, t in enumerate(picked)
        ]
        cfg = self.cfg
        self.gen.weights_changed()
        rcfg = RolloutConfig(
            batch_size=cfg.gen_batch_size,
            max_steps=cfg.max_steps,
            generation=GenerationConfig(cfg.max_new_tokens, cfg.temperature, 1.0, cfg.seed + iteration),
            env_options=cfg.env_options,
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
        advs = attach_advantages(cfg, records)
        for r, e, a in zip(records, est, advs, strict=True):
            if r.n_steps == 0:
                continue
            c = step_values(cfg.variant, r, estimator_values=e, seed=cfg.seed + iteration)
            beta = cfg.beta if cfg.beta is not None else DEFAULT_BETA[cfg.variant]
            s = to_sample(self.tokenizer, fuse(r, cfg.variant, c, cfg.alpha, beta), cfg.max_length, a)
            if s is not None:
                samples.append(s)
        m = summarize(records)
        return samples, {"rollout_success": m["success_rate"], "rollout_grounding": m["grounding"],
                         "rollout_steps": m["avg_steps"]}  # fmt: skip


def attach_advantages(cfg: SourceConfig, recs: list) -> list[list[float] | None]:
    """Per record, its step advantages under a critic-free estimator (grouped by task over ``recs``), or
    None for GAE."""
    if not cfg.critic_free:
        return [None] * len(recs)
    return advantages_by_task([member_of(r) for r in recs], cfg.advantage, cfg.advantage_settings())
