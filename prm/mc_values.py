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

import argparse
import json
import random
from collections import defaultdict
from pathlib import Path

from envs import load_tasks
from spa_rl.agent.backends import GenerationConfig, make_policy
from spa_rl.agent.prompts import (
    DEFAULT_ICL_EXAMPLES,
    check_model_icl,
    check_records_icl,
    validate_icl_examples,
)
from spa_rl.agent.runner import EpisodeSpec, RolloutConfig, run_rollouts
from spa_rl.agent.schema import read_records, write_json_atomic, write_jsonl_atomic
from spa_rl.fingerprint import claim_file, make_fingerprint, mark_file
from spa_rl.rewards import final_reward
from spa_rl.validate import exit_on_error, non_negative, positive_int


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rollouts", required=True, help="exploration JSONL")
    ap.add_argument("--model", required=True, help="policy that samples the continuations (the SFT model)")
    ap.add_argument("--output", required=True, help="state-values JSONL to write")
    ap.add_argument("--k", type=int, default=4, help="continuations per state")
    ap.add_argument("--num-rollouts", type=int, default=None, help="a random subset of N rollouts (seeded)")
    ap.add_argument("--temperature", type=float, default=0.7)
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--max-steps", type=int, default=None, help="episode step limit (default: the env's)")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--backend", default="hf")
    ap.add_argument("--api-base", default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--icl-examples", type=int, default=DEFAULT_ICL_EXAMPLES,
                    help="in-context examples in the prompt, as the rollouts were played: 1 or 0 (default 1)")  # fmt: skip
    ap.add_argument("--overwrite", action="store_true", help="sample again from scratch, even if up to date")
    args = ap.parse_args()
    with exit_on_error():  # argparse lets nan, 0 and -1 through; refused before any work
        positive_int("--k", args.k)
        positive_int("--num-rollouts", args.num_rollouts, allow_none=True)  # None: all
        non_negative("--temperature", args.temperature)
        positive_int("--max-new-tokens", args.max_new_tokens)
        positive_int("--max-steps", args.max_steps, allow_none=True)  # None: the env's limit
        positive_int("--batch-size", args.batch_size)
    settings = {k: v for k, v in vars(args).items() if k not in ("rollouts", "model", "output", "overwrite",
                                                                  "batch_size", "api_base")}  # fmt: skip
    fp = make_fingerprint("mc-values", settings, {"rollouts": args.rollouts, "model": args.model})
    out = Path(args.output)
    with claim_file(out, fp, args.overwrite, work_files=(out.with_suffix(".episodes.jsonl"),)) as current:
        if current:
            print(f"{out} is up to date; skipping")
            return
        mark_file(out, fp)  # before the continuations: they are resumable partial work
        run(args)


def run(args: argparse.Namespace) -> None:
    validate_icl_examples(args.icl_examples, "--icl-examples")

    records = read_records(args.rollouts)
    check_records_icl(records, args.icl_examples, args.rollouts)
    check_model_icl(args.model, args.icl_examples)
    records = [r for r in records if r.n_steps > 0 and r.finish_reason != "context_limit"]
    if args.num_rollouts is not None and args.num_rollouts < len(records):
        records = random.Random(args.seed).sample(records, args.num_rollouts)
    if not records:
        raise SystemExit(f"no usable rollouts in {args.rollouts}")
    env, split = records[0].env, records[0].split
    tasks = {t.task_id: t for t in load_tasks(env, split)}
    specs, index = [], {}
    for r in records:
        for t in range(r.n_steps):
            for k in range(args.k):
                j = len(specs)  # a unique rollout number per (source rollout, t, k) within the task
                forced = tuple(s.reply for s in r.steps[:t])
                meta = {"source_rollout": r.rollout, "prefix_steps": t, "sample": k}
                specs.append(EpisodeSpec(tasks[r.task_id], j, forced, meta))
                index[(r.task_id, j)] = (r.key, t)
    print(f"{len(records)} rollouts, {len(specs)} continuations (K={args.k})")
    policy = make_policy(args.backend, args.model, api_base=args.api_base, batch_size=args.batch_size)
    cfg = RolloutConfig(
        batch_size=args.batch_size,
        max_steps=args.max_steps,
        generation=GenerationConfig(args.max_new_tokens, args.temperature, 1.0, args.seed),
    )
    out = Path(args.output)
    conts, stats = run_rollouts(
        [], policy, out.with_suffix(".episodes.jsonl"), cfg, specs=specs, icl_examples=args.icl_examples
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
            "k": args.k,
            "icl_examples": args.icl_examples,
            "seconds": round(stats.seconds, 1),
        },
    )
    print(f"wrote V(s_t) of {len(records)} rollouts to {out}")


if __name__ == "__main__":
    main()
