"""Reward fusion (the paper's ``rl_data_org``): per-step rewards r_t = alpha * c_t + beta * g_t for every
exploration rollout, with c_t from the chosen step-value variant (see spa_rl/rewards.py) and
g_t from the environment's recorded ``grounded`` flag. Writes the PPO data file. Rollouts played with the
other in-context-example setting than ``--icl-examples`` are refused; each PPO record's ``meta`` keeps it.

    python prm/fuse_rewards.py --rollouts runs/demo/alfworld/exploration/episodes.jsonl \\
        --step-values runs/demo/alfworld/exploration/step_values.jsonl \\
        --variant progress --output runs/demo/alfworld/ppo_data/progress.jsonl
"""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from spa_rl.agent.prompts import DEFAULT_ICL_EXAMPLES, check_records_icl, validate_icl_examples
from spa_rl.agent.schema import read_records, write_json_atomic, write_jsonl_atomic
from spa_rl.cli import arg, parse
from spa_rl.estimator.data import read_step_values
from spa_rl.fingerprint import claim_file, make_fingerprint, mark_file, settings_of
from spa_rl.rewards import (
    DEFAULT_BETA,
    NEEDS_ESTIMATOR,
    PUBLIC_CODE_MAX_STEPS,
    VARIANTS,
    final_reward,
    fuse,
    get_variant,
    step_values,
)
from spa_rl.validate import choice, finite, positive_int


@dataclass
class FuseConfig:
    rollouts: str = arg(help="exploration JSONL")
    output: str = arg(help="PPO data JSONL to write")
    variant: str = arg("progress", "step-value variant (spa_rl/rewards.py)", choices=VARIANTS)
    step_values: str | None = arg(None, "estimator output (prm/infer.py); for progress / no-grounding")
    mc_values: str | None = arg(None, "Monte-Carlo state values (prm/mc_values.py); for mc")
    alpha: float = arg(1.0, "weight of the step value c_t")
    beta: float | None = arg(
        None, "weight of the grounding reward g_t: default 0.5; 0 for sparse and no-grounding"
    )
    max_steps: int | None = arg(
        None, f"drop rollouts with at least this many steps (public-code default {PUBLIC_CODE_MAX_STEPS})"
    )
    max_rollouts: int | None = arg(None, "keep at most N rollouts (file order)")
    seed: int = arg(0, "for the random variant")
    icl_examples: int = arg(
        DEFAULT_ICL_EXAMPLES, "in-context examples the rollouts' prompts must hold: 1 (paper) or 0"
    )
    overwrite: bool = arg(False, "write the output again even if it is up to date")

    def __post_init__(self) -> None:
        # The parser lets nan, 0 and -1 through; refused before any file is touched.
        choice("--variant", self.variant, VARIANTS)
        finite("--alpha", self.alpha)
        finite("--beta", self.beta, allow_none=True)  # None: the variant's default
        positive_int("--max-steps", self.max_steps, allow_none=True)  # None: the variant's limit
        positive_int("--max-rollouts", self.max_rollouts, allow_none=True)  # None: all


INPUTS = ("rollouts", "step_values", "mc_values")  # hashed by content, not settings


def main(argv: list[str] | None = None) -> None:
    cfg = parse(FuseConfig, argv=argv, doc=__doc__)
    settings = settings_of(cfg, {*INPUTS, "output", "overwrite"})
    fp = make_fingerprint("fuse-rewards", settings, {k: getattr(cfg, k) for k in INPUTS})
    with claim_file(cfg.output, fp, cfg.overwrite, redo_when_changed=True) as current:
        if current:
            print(f"{cfg.output} is up to date; skipping")
            return
        mark_file(cfg.output, fp)
        run(cfg)


def run(cfg: FuseConfig) -> None:
    validate_icl_examples(cfg.icl_examples, "--icl-examples")

    beta = cfg.beta if cfg.beta is not None else DEFAULT_BETA[cfg.variant]
    records = read_records(cfg.rollouts)
    check_records_icl(records, cfg.icl_examples, cfg.rollouts)  # rollouts of the other prompt: refused
    est = read_step_values(cfg.step_values) if cfg.variant in NEEDS_ESTIMATOR else {}
    if cfg.variant in NEEDS_ESTIMATOR and not cfg.step_values:
        raise SystemExit(f"--variant {cfg.variant} needs --step-values")
    needs_mc = get_variant(cfg.variant).needs == "mc"
    mc = read_step_values(cfg.mc_values) if needs_mc else {}
    if needs_mc and not cfg.mc_values:
        raise SystemExit(f"--variant {cfg.variant} needs --mc-values")
    max_steps = cfg.max_steps or get_variant(cfg.variant).max_steps

    by_task = defaultdict(list)
    for r in records:
        by_task[r.task_id].append(final_reward(r))
    fused, skipped = [], {"too_long": 0, "no_steps": 0, "no_mc_values": 0}
    for r in records:
        if r.n_steps == 0:
            skipped["no_steps"] += 1
            continue
        if max_steps is not None and r.n_steps >= max_steps:
            skipped["too_long"] += 1
            continue
        if cfg.variant in NEEDS_ESTIMATOR and r.key not in est:
            raise SystemExit(f"{cfg.step_values}: no step values for {r.task_id} rollout {r.rollout}")
        if needs_mc and r.key not in mc:
            skipped["no_mc_values"] += 1  # MC values are often computed for a subset only
            continue
        rewards = by_task[r.task_id]
        others = (sum(rewards) - final_reward(r)) / (len(rewards) - 1) if len(rewards) > 1 else 0.0
        c = step_values(cfg.variant, r, est.get(r.key), mc.get(r.key), others, cfg.seed)
        fused.append(fuse(r, cfg.variant, c, cfg.alpha, beta))
        if cfg.max_rollouts and len(fused) >= cfg.max_rollouts:
            break
    if not fused:
        raise SystemExit(f"no rollouts left to write (skipped: {skipped})")

    out = Path(cfg.output)
    write_jsonl_atomic(out, [p.to_json() for p in fused])
    all_r = [x for p in fused for x in p.step_rewards]
    info = {
        "variant": cfg.variant,
        "alpha": cfg.alpha,
        "beta": beta,
        "icl_examples": cfg.icl_examples,
        "rollouts": len(fused),
        "skipped": skipped,
        "steps": len(all_r),
        "step_reward_mean": statistics.mean(all_r),
        "step_reward_std": statistics.pstdev(all_r),
        "grounding_mean": statistics.mean(g for p in fused for g in p.grounding),
        "inputs": {"rollouts": cfg.rollouts, "step_values": cfg.step_values, "mc_values": cfg.mc_values},
    }
    write_json_atomic(out.with_suffix(".info.json"), info)
    print(json.dumps(info))


if __name__ == "__main__":
    main()
