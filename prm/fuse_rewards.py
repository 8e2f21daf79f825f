"""Reward fusion (the paper's ``rl_data_org``): per-step rewards r_t = alpha * c_t + beta * g_t for every
exploration rollout, with c_t from the chosen step-value variant (see spa_rl/rewards.py) and
g_t from the environment's recorded ``grounded`` flag. Writes the PPO data file. Rollouts played with the
other in-context-example setting than ``--icl-examples`` are refused; each PPO record's ``meta`` keeps it.

    python prm/fuse_rewards.py --rollouts runs/demo/alfworld/exploration/episodes.jsonl \\
        --step-values runs/demo/alfworld/exploration/step_values.jsonl \\
        --variant progress --output runs/demo/alfworld/ppo_data/progress.jsonl
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections import defaultdict
from pathlib import Path

from spa_rl.agent.prompts import DEFAULT_ICL_EXAMPLES, check_records_icl, validate_icl_examples
from spa_rl.agent.schema import read_records, write_json_atomic, write_jsonl_atomic
from spa_rl.estimator.data import read_step_values
from spa_rl.fingerprint import claim_file, make_fingerprint, mark_file
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
from spa_rl.validate import exit_on_error, finite, positive_int


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rollouts", required=True, help="exploration JSONL")
    ap.add_argument("--variant", default="progress", choices=VARIANTS)
    ap.add_argument("--step-values", help="estimator output (prm/infer.py); for progress / no-grounding")
    ap.add_argument("--mc-values", help="Monte-Carlo state values (prm/mc_values.py); for mc")
    ap.add_argument("--alpha", type=float, default=1.0)
    ap.add_argument("--beta", type=float, default=None, help="default 0.5; 0 for sparse and no-grounding")
    ap.add_argument("--max-steps", type=int, default=None, help=f"drop rollouts with at least this many steps "
                    f"(public-code default {PUBLIC_CODE_MAX_STEPS})")  # fmt: skip
    ap.add_argument("--max-rollouts", type=int, default=None, help="keep at most N rollouts (file order)")
    ap.add_argument("--seed", type=int, default=0, help="for the random variant")
    ap.add_argument("--icl-examples", type=int, default=DEFAULT_ICL_EXAMPLES,
                    help="in-context examples the rollouts' prompts must hold: 1 (paper) or 0 (default 1)")  # fmt: skip
    ap.add_argument("--output", required=True)
    ap.add_argument(
        "--overwrite", action="store_true", help="write the output again even if it is up to date"
    )
    args = ap.parse_args()
    with exit_on_error():  # argparse lets nan, 0 and -1 through; refused before any file is touched
        finite("--alpha", args.alpha)
        finite("--beta", args.beta, allow_none=True)  # None: the variant's default
        positive_int("--max-steps", args.max_steps, allow_none=True)  # None: no step limit
        positive_int("--max-rollouts", args.max_rollouts, allow_none=True)  # None: all
    settings = {
        k: v
        for k, v in vars(args).items()
        if k not in ("rollouts", "step_values", "mc_values", "output", "overwrite")
    }
    inputs = {"rollouts": args.rollouts, "step_values": args.step_values, "mc_values": args.mc_values}
    fp = make_fingerprint("fuse-rewards", settings, inputs)
    with claim_file(args.output, fp, args.overwrite, redo_when_changed=True) as current:
        if current:
            print(f"{args.output} is up to date; skipping")
            return
        mark_file(args.output, fp)
        run(args)


def run(args: argparse.Namespace) -> None:
    validate_icl_examples(args.icl_examples, "--icl-examples")

    beta = args.beta if args.beta is not None else DEFAULT_BETA[args.variant]
    records = read_records(args.rollouts)
    check_records_icl(records, args.icl_examples, args.rollouts)  # rollouts of the other prompt: refused
    est = read_step_values(args.step_values) if args.variant in NEEDS_ESTIMATOR else {}
    if args.variant in NEEDS_ESTIMATOR and not args.step_values:
        raise SystemExit(f"--variant {args.variant} needs --step-values")
    mc = read_step_values(args.mc_values) if args.variant == "mc" else {}
    if args.variant == "mc" and not args.mc_values:
        raise SystemExit("--variant mc needs --mc-values")
    max_steps = args.max_steps or get_variant(args.variant).max_steps

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
        if args.variant in NEEDS_ESTIMATOR and r.key not in est:
            raise SystemExit(f"{args.step_values}: no step values for {r.task_id} rollout {r.rollout}")
        if args.variant == "mc" and r.key not in mc:
            skipped["no_mc_values"] += 1  # MC values are often computed for a subset only
            continue
        rewards = by_task[r.task_id]
        others = (sum(rewards) - final_reward(r)) / (len(rewards) - 1) if len(rewards) > 1 else 0.0
        c = step_values(args.variant, r, est.get(r.key), mc.get(r.key), others, args.seed)
        fused.append(fuse(r, args.variant, c, args.alpha, beta))
        if args.max_rollouts and len(fused) >= args.max_rollouts:
            break
    if not fused:
        raise SystemExit(f"no rollouts left to write (skipped: {skipped})")

    out = Path(args.output)
    write_jsonl_atomic(out, [p.to_json() for p in fused])
    all_r = [x for p in fused for x in p.step_rewards]
    info = {
        "variant": args.variant,
        "alpha": args.alpha,
        "beta": beta,
        "icl_examples": args.icl_examples,
        "rollouts": len(fused),
        "skipped": skipped,
        "steps": len(all_r),
        "step_reward_mean": statistics.mean(all_r),
        "step_reward_std": statistics.pstdev(all_r),
        "grounding_mean": statistics.mean(g for p in fused for g in p.grounding),
        "inputs": {"rollouts": args.rollouts, "step_values": args.step_values, "mc_values": args.mc_values},
    }
    write_json_atomic(out.with_suffix(".info.json"), info)
    print(json.dumps(info))


if __name__ == "__main__":
    main()
