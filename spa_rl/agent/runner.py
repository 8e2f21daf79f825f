"""Batched rollout runner: up to ``batch_size`` episodes advance in lockstep, one batched generation per
step for all unfinished episodes. A finished episode is appended to the JSONL file at once; a restarted
run skips the (task, rollout) pairs already on disk."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from tqdm import tqdm

from envs import Env, Task, make_env, resolve_env_options
from spa_rl.agent.backends.base import GenerationConfig, Policy
from spa_rl.agent.prompts import DEFAULT_ICL_EXAMPLES, PromptSpec, check_records_icl, get_prompt
from spa_rl.agent.react import INVALID_FORMAT_OBSERVATION, parse_reply, truncate_reply
from spa_rl.agent.schema import (
    SURROGATES_FIELD,
    RecordWriter,
    StepRecord,
    TrajectoryRecord,
    fix_surrogates,
    read_records,
    warn_surrogates,
)


@dataclass
class RolloutConfig:
    n_rollouts: int = 1  # rollouts per task
    batch_size: int = 8  # episodes advanced together
    max_steps: int | None = None  # None: the environment's own limit
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    env_options: dict[str, str] = field(default_factory=dict)  # the environment's options (make_env)


@dataclass(frozen=True)
class EpisodeSpec:
    """One episode to play. ``forced_replies`` are replayed as the agent's first turns (no generation);
    the policy continues from there (Monte-Carlo step values sample continuations this way)."""

    task: Task
    rollout: int
    forced_replies: tuple[str, ...] = ()
    meta: dict = field(default_factory=dict, compare=False, hash=False)


@dataclass
class _Episode:
    task: Task
    rollout: int
    env: Env
    messages: list[dict[str, str]]
    prefix_len: int
    meta: dict = field(default_factory=dict)
    steps: list[StepRecord] = field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    started: float = field(default_factory=time.time)
    repaired: dict[str, int] = field(default_factory=dict)  # reply field -> lone surrogates replaced

    @property
    def key(self) -> tuple[str, int]:
        return (self.task.task_id, self.rollout)


@dataclass
class RolloutStats:
    episodes: int = 0  # finished in this run (not counting those found on disk)
    steps: int = 0
    generate_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0

    @property
    def tokens_per_second(self) -> float:
        return self.completion_tokens / self.seconds if self.seconds else 0.0


def run_rollouts(
    tasks: list[Task],
    policy: Policy,
    out_path: str | Path,
    cfg: RolloutConfig,
    prompt: PromptSpec | None = None,
    env_factory: Callable[[], Env] | None = None,
    meta: dict | None = None,
    progress: bool = True,
    specs: list[EpisodeSpec] | None = None,
    icl_examples: int = DEFAULT_ICL_EXAMPLES,
) -> tuple[list[TrajectoryRecord], RolloutStats]:
    """Play every (task, rollout) pair not yet in ``out_path``; return all records of these tasks.

    ``specs`` replaces the tasks x ``cfg.n_rollouts`` grid with an explicit list of episodes. Prompts
    hold ``icl_examples`` in-context examples (recorded in every record's ``meta``); an ``out_path``
    that holds records of the other setting is refused. ``cfg.env_options`` go to ``make_env`` and, with
    the environment's defaults filled, into every record's ``meta`` (environments that take options)."""
    if specs is None:
        specs = [EpisodeSpec(t, r) for t in tasks for r in range(cfg.n_rollouts)]
    if not specs:
        return [], RolloutStats()
    env_name = specs[0].task.env
    prompt = prompt or get_prompt(env_name)
    env_kwargs = {"max_steps": cfg.max_steps} if cfg.max_steps else {}
    env_options = resolve_env_options(env_name, cfg.env_options)
    env_factory = env_factory or (lambda: make_env(env_name, options=env_options, **env_kwargs))
    existing = read_records(out_path, repair_torn_tail=True)
    check_records_icl(existing, icl_examples, out_path, "an episode already in the file")
    meta = {**(meta or {}), "icl_examples": icl_examples}
    if env_options:
        meta["env_options"] = env_options
    done = {r.key for r in existing}
    wanted = {(s.task.task_id, s.rollout) for s in specs}
    if len(wanted) != len(specs):
        raise ValueError("two episode specs share a (task_id, rollout) key")
    queue = [s for s in specs if (s.task.task_id, s.rollout) not in done]
    queue.reverse()  # pop() from the end keeps task order
    total = len(specs)
    stats = RolloutStats()
    t_start = time.time()
    idle_envs: list[Env] = []
    active: list[_Episode] = []
    n_success = sum(r.success for r in existing if r.key in wanted)
    bar = tqdm(
        total=total, initial=total - len(queue), desc=f"{env_name} rollouts", unit="ep", disable=not progress
    )
    with RecordWriter(out_path) as writer:
        while queue or active:
            while queue and len(active) < cfg.batch_size:
                spec = queue.pop()
                env = idle_envs.pop() if idle_envs else env_factory()
                msgs = prompt.build(env.reset(spec.task), icl_examples)
                ep = _Episode(spec.task, spec.rollout, env, msgs, prefix_len=len(msgs), meta=dict(spec.meta))
                for reply in spec.forced_replies:
                    if _advance(ep, reply, "stop", cfg.max_steps or env.max_steps) is not None:
                        raise ValueError(
                            f"forced replies of {ep.key} end the episode before the policy plays"
                        )
                active.append(ep)
            if not active:
                break
            gen_cfg = replace(cfg.generation, seed=cfg.generation.seed + stats.generate_calls)
            gens = policy.generate([ep.messages for ep in active], gen_cfg, keys=[ep.key for ep in active])
            stats.generate_calls += 1
            still = []
            for ep, gen in zip(active, gens, strict=True):
                ep.prompt_tokens += gen.prompt_tokens
                ep.completion_tokens += gen.completion_tokens
                # A lone surrogate (an OpenAI-compatible server can send one) would break the next request
                # and the record file (UTF-8 both): replace it here, and say so in the record.
                text, n = fix_surrogates(gen.text)
                if n:
                    ep.repaired[f"steps[{len(ep.steps)}].reply"] = n
                    ep.meta[SURROGATES_FIELD] = ep.meta.get(SURROGATES_FIELD, 0) + n
                finish = _advance(ep, text, gen.finish_reason, cfg.max_steps or ep.env.max_steps)
                if finish is None:
                    still.append(ep)
                    continue
                policy.release([ep.key])
                rec = _to_record(ep, finish, {**meta, **ep.meta})
                if ep.repaired:
                    warn_surrogates(f"{env_name} task {ep.task.task_id!r} rollout {ep.rollout}", ep.repaired)
                writer.write(rec)
                existing.append(rec)
                idle_envs.append(ep.env)
                stats.episodes += 1
                stats.steps += len(ep.steps)
                stats.prompt_tokens += ep.prompt_tokens
                stats.completion_tokens += ep.completion_tokens
                n_success += rec.success
                bar.update(1)
            active = still
            bar.set_postfix(
                active=len(active), success=n_success, steps=stats.steps + sum(len(e.steps) for e in active)
            )
    bar.close()
    for env in idle_envs:
        env.close()
    stats.seconds = time.time() - t_start
    return [r for r in existing if r.key in wanted], stats


def _advance(ep: _Episode, text: str, gen_reason: str, max_steps: int) -> str | None:
    """Apply one model reply; return the finish reason if the episode is over."""
    if gen_reason == "context_limit":
        return "context_limit"
    reply = truncate_reply(text)
    parsed = parse_reply(reply)
    ep.messages.append({"role": "assistant", "content": reply})
    if parsed.action is None:
        obs, grounded, reward, env_done, success = INVALID_FORMAT_OBSERVATION, False, 0.0, False, False
    else:
        res = ep.env.step(parsed.action)
        obs, grounded, reward, env_done, success = (
            res.observation,
            res.grounded,
            res.reward,
            res.done,
            res.success,
        )
    ep.steps.append(
        StepRecord(reply=reply, action=parsed.action, observation=obs, grounded=grounded, reward=reward)
    )
    if success:
        return "success"
    if env_done:
        return "max_steps" if len(ep.steps) >= max_steps else "done"
    if len(ep.steps) >= max_steps:
        return "max_steps"
    ep.messages.append({"role": "user", "content": obs})
    return None


def _to_record(ep: _Episode, finish: str, meta: dict) -> TrajectoryRecord:
    return TrajectoryRecord(
        env=ep.task.env,
        split=ep.task.split,
        task_id=ep.task.task_id,
        task_type=ep.task.task_type,
        rollout=ep.rollout,
        messages=ep.messages,
        prefix_len=ep.prefix_len,
        steps=ep.steps,
        # Environments give their reward on the step that ends the task (0 before).
        reward=float(ep.steps[-1].reward) if ep.steps else 0.0,
        success=finish == "success",
        n_steps=len(ep.steps),
        finish_reason=finish,
        meta={
            **meta,
            "prompt_tokens": ep.prompt_tokens,
            "completion_tokens": ep.completion_tokens,
            "seconds": round(time.time() - ep.started, 2),
        },
    )
