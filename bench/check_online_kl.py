"""Online PPO's KL log, checked on many rollouts: sample fresh episodes from a PPO policy (SFT model +
adapter) exactly as online PPO does, score them as a PPO iteration does, and print per rollout the
penalty's log-ratio sum (k1, what ``kl`` logs) and the k3 estimate (``kl_k3``) of KL(policy || ref),
with their means and standard errors. Unbiased scoring makes both estimate the same KL >= 0; k1 alone
is noisy.

    python bench/check_online_kl.py --model runs/demo/alfworld/sft/model \\
        --adapter runs/demo/alfworld/ppo_online_progress/adapter --rollouts 16 --max-steps 4
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from spa_rl.agent.schema import command_line, write_json_atomic  # noqa: E402
from spa_rl.models.loading import load_tokenizer  # noqa: E402
from spa_rl.rl.online import OnlineSource  # noqa: E402
from spa_rl.rl.policy_value import PolicyWithValue  # noqa: E402


def mean_se(xs: list[float]) -> tuple[float, float]:
    m = sum(xs) / len(xs)
    var = sum((x - m) ** 2 for x in xs) / (len(xs) - 1) if len(xs) > 1 else 0.0
    return m, math.sqrt(var / len(xs))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="the SFT model folder (the reference)")
    ap.add_argument("--adapter", required=True, help="a PPO adapter folder (ppo/train.py output)")
    ap.add_argument("--env", default="alfworld")
    ap.add_argument("--task-types", default="pick")
    ap.add_argument("--num-tasks", type=int, default=8)
    ap.add_argument("--rollouts", type=int, default=16)
    ap.add_argument("--max-steps", type=int, default=4)
    ap.add_argument("--temperature", type=float, default=0.7)
    ap.add_argument("--icl-examples", type=int, default=1)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--output", type=Path, default=None)
    args = ap.parse_args()

    spec = importlib.util.spec_from_file_location(
        "ppo_train", Path(__file__).resolve().parents[1] / "ppo/train.py"
    )
    recipe = importlib.util.module_from_spec(spec)
    sys.modules["ppo_train"] = recipe
    spec.loader.exec_module(recipe)
    tok = load_tokenizer(args.model)
    policy = PolicyWithValue.create(args.model, adapter=args.adapter).eval()
    acc = SimpleNamespace(device="cpu", process_index=0, num_processes=1)
    with tempfile.TemporaryDirectory() as tmp:
        cfg = recipe.PPOConfig(model=args.model, mode="online", env=args.env, variant="sparse",
                               num_tasks=args.num_tasks, task_types=args.task_types, temperature=args.temperature,
                               max_steps=args.max_steps, max_new_tokens=96, gen_batch_size=8, output_dir=tmp,
                               seed=args.seed, icl_examples=args.icl_examples, dtype="fp32")  # fmt: skip
        source = OnlineSource(cfg, tok, policy, acc)
        samples, extra = source.next(args.rollouts, 0)
    old_lp, _, ref_lp = recipe.score_rollouts(policy, samples, 1, tok.pad_token_id, "cpu")
    k1 = [(o - r).sum().item() for o, r in zip(old_lp, ref_lp, strict=True)]
    k3 = [(torch.exp(r - o) - 1 - (r - o)).sum().item() for o, r in zip(old_lp, ref_lp, strict=True)]
    tokens = sum(len(s.act_pos) for s in samples)
    (m1, se1), (m3, se3) = mean_se(k1), mean_se(k3)
    print(f"{len(samples)} rollouts, {tokens} action tokens; per rollout: k1 (logged kl) {m1:.4f} +- {se1:.4f} "
          f"(se), k3 (kl_k3) {m3:.4f} +- {se3:.4f}; k1 < 0 in {sum(x < 0 for x in k1)} rollouts")  # fmt: skip
    if args.output:
        write_json_atomic(args.output, {"command": command_line(), "args": vars(args) | {"output": str(args.output)},
                                        "rollouts": len(samples), "action_tokens": tokens, "k1": k1, "k3": k3,
                                        "k1_mean": m1, "k1_se": se1, "k3_mean": m3, "k3_se": se3,
                                        "rollout_stats": extra})  # fmt: skip


if __name__ == "__main__":
    main()
