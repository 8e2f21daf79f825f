"""Monte-Carlo step values (the paper's "MC" ablation): for a rollout's state s_t (its first t steps
replayed in the environment), V(s_t) is the mean final reward of K continuations sampled from the
policy. ``prm/fuse_rewards.py --variant mc`` turns them into c_t = V(s_{t+1}) - V(s_t), V(s_T) = R.

    python prm/mc_values.py --rollouts runs/demo/alfworld/exploration/episodes.jsonl \\
        --model runs/demo/alfworld/sft/model --k 4 --num-rollouts 20 \\
        --output runs/demo/alfworld/exploration/mc_values.jsonl

Costly: T x K episodes per rollout. Continuations go to ``<output>.episodes.jsonl`` (resumable). They
are played with the rollouts' prompt: ``--icl-examples`` must match the rollouts' (and the model's).
"""

from __future__ import annotations

import json
import random
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from envs import load_tasks, parse_env_options
from spa_rl.agent.backends import GenerationConfig, make_policy
from spa_rl.agent.prompts import (
    DEFAULT_ICL_EXAMPLES,
    check_model_icl,
    check_records_icl,
    validate_icl_examples,
)
from spa_rl.agent.runner import EpisodeSpec, RolloutConfig, run_rollouts
from spa_rl.agent.schema import read_records, write_json_atomic, write_jsonl_atomic
from spa_rl.cli import arg, parse
from spa_rl.fingerprint import claim_file, env_option_settings, make_fingerprint, mark_file, settings_of
from spa_rl.rewards import final_reward
from spa_rl.validate import exit_on_error, non_negative, positive_int


@dataclass
class MCValuesConfig:
    rollouts: str = arg(help="exploration JSONL")
    model: str = arg(help="policy that samples the continuations (the SFT model)")
    output: str = arg(help="state-values JSONL to write")
    k: int = arg(4, "continuations per state")
    num_rollouts: int | None = arg(None, "a random subset of N rollouts (seeded; default: all)")
    temperature: float = arg(0.7, "sampling temperature of the continuations")
    max_new_tokens: int = arg(128, "tokens generated per turn")
    max_steps: int | None = arg(None, "episode step limit (default: the env's)")
    batch_size: int = arg(8, "episodes played together")
    backend: str = arg("hf", "policy backend: hf (local model) or openai (an OpenAI-compatible server)")
    api_base: str | None = arg(None, "openai backend: the server's URL (e.g. http://127.0.0.1:8000/v1)")
    seed: int = arg(0, "seed of the rollout subset and of sampling")
    icl_examples: int = arg(
        DEFAULT_ICL_EXAMPLES, "in-context examples in the prompt, as the rollouts were played: 1 or 0"
    )
    env_option: list[str] = arg(default_factory=list, help="an option of the rollouts' environment NAME=VALUE, "
                                "repeatable (webshop: reward=original (default) | corrected | legacy): the "
                                "continuations' final rewards", repeat=True)  # fmt: skip
    overwrite: bool = arg(False, "sample again from scratch, even if up to date")

    def __post_init__(self) -> None:  # the parser lets nan, 0 and -1 through; refused before any work
        positive_int("--k", self.k)
        positive_int("--num-rollouts", self.num_rollouts, allow_none=True)  # None: all
        non_negative("--temperature", self.temperature)
        positive_int("--max-new-tokens", self.max_new_tokens)
        positive_int("--max-steps", self.max_steps, allow_none=True)  # None: the env's limit
        positive_int("--batch-size", self.batch_size)


# Not in the fingerprint: the inputs (hashed separately) and settings that do not change the values;
# --env-option goes in resolved for the rollouts' environment (env_option_settings).
NOT_SETTINGS = frozenset({"rollouts", "model", "output", "overwrite", "batch_size", "api_base", "env_option"})


def rollouts_env(path: str) -> str:
    """The environment of the rollouts file (its first record's), which --env-option is checked against."""
    first = None
    if Path(path).is_file():
        with open(path) as f:
            first = next((ln for ln in f if ln.strip()), None)
    if first is None:
        raise SystemExit(f"no usable rollouts in {path}")
    return json.loads(first)["env"]


def main(argv: list[str] | None = None) -> None:
    cfg = parse(MCValuesConfig, argv=argv, doc=__doc__)
    with exit_on_error():
        env_settings = env_option_settings(rollouts_env(cfg.rollouts), cfg.env_option)
    fp = make_fingerprint(
        "mc-values",
        settings_of(cfg, NOT_SETTINGS) | env_settings,
        {"rollouts": cfg.rollouts, "model": cfg.model},
    )
    out = Path(cfg.output)
    with claim_file(out, fp, cfg.overwrite, work_files=(out.with_suffix(".episodes.jsonl"),)) as current:
        if current:
            print(f"{out} is up to date; skipping")
            return
        mark_file(out, fp)  # before the continuations: they are resumable partial work
        run(cfg)


def run(cfg: MCValuesConfig) -> None:
    validate_icl_examples(cfg.icl_examples, "--icl-examples")

    records = read_records(cfg.rollouts)
    check_records_icl(records, cfg.icl_examples, cfg.rollouts)
    check_model_icl(cfg.model, cfg.icl_examples)
    records = [r for r in records if r.n_steps > 0 and r.finish_reason != "context_limit"]
    if cfg.num_rollouts is not None and cfg.num_rollouts < len(records):
        records = random.Random(cfg.seed).sample(records, cfg.num_rollouts)
    if not records:
        raise SystemExit(f"no usable rollouts in {cfg.rollouts}")
    env, split = records[0].env, records[0].split
    env_options = parse_env_options(env, cfg.env_option)
    played = {json.dumps(r.meta["env_options"], sort_keys=True) for r in records if "env_options" in r.meta}
    if played - {json.dumps(env_options, sort_keys=True)}:
        raise SystemExit(
            f"{cfg.rollouts} was played with environment options {' / '.join(sorted(played))}, the continuations "
            f"would be played with {env_options}: pass the rollouts' options with --env-option NAME=VALUE"
        )
    tasks = {t.task_id: t for t in load_tasks(env, split)}
    specs, index = [], {}
    for r in records:
        for t in range(r.n_steps):
            for k in range(cfg.k):
                j = len(specs)  # a unique rollout number per (source rollout, t, k) within the task
                forced = tuple(s.reply for s in r.steps[:t])
                meta = {"source_rollout": r.rollout, "prefix_steps": t, "sample": k}
                specs.append(EpisodeSpec(tasks[r.task_id], j, forced, meta))
                index[(r.task_id, j)] = (r.key, t)
    print(f"{len(records)} rollouts, {len(specs)} continuations (K={cfg.k})")
    policy = make_policy(cfg.backend, cfg.model, api_base=cfg.api_base, batch_size=cfg.batch_size)
    rollout_cfg = RolloutConfig(
        batch_size=cfg.batch_size,
        max_steps=cfg.max_steps,
        generation=GenerationConfig(cfg.max_new_tokens, cfg.temperature, 1.0, cfg.seed),
        env_options=env_options,
    )
    out = Path(cfg.output)
    conts, stats = run_rollouts(
        [],
        policy,
        out.with_suffix(".episodes.jsonl"),
        rollout_cfg,
        specs=specs,
        icl_examples=cfg.icl_examples,
    )

    returns = defaultdict(list)
    for c in conts:
        returns[index[c.key]].append(final_reward(c))
    lines = []
    for r in records:
        v = [sum(returns[(r.key, t)]) / len(returns[(r.key, t)]) for t in range(r.n_steps)]
        lines.append(
            json.dumps({"task_id": r.task_id, "rollout": r.rollout, "values": v, "reward": final_reward(r)})
        )
    write_jsonl_atomic(out, lines)
    write_json_atomic(
        out.with_suffix(".info.json"),
        {
            "rollouts": len(records),
            "continuations": len(conts),
            "k": cfg.k,
            "icl_examples": cfg.icl_examples,
            "seconds": round(stats.seconds, 1),
        },
    )
    print(f"wrote V(s_t) of {len(records)} rollouts to {out}")


if __name__ == "__main__":
    main()
