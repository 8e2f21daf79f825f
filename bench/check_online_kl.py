"""Online PPO's KL log, checked on many rollouts: sample fresh episodes from a PPO policy (SFT model +
adapter) exactly as online PPO does, score them as a PPO iteration does, and print per rollout the
penalty's log-ratio sum (k1, what ``kl`` logs) and the k3 estimate (``kl_k3``) of KL(policy || ref),
with their means and standard errors. Unbiased scoring makes both estimate the same KL >= 0; k1 alone
is noisy.

    python bench/check_online_kl.py --model runs/demo/alfworld/sft/model \\
        --adapter runs/demo/alfworld/ppo_online_progress/adapter --rollouts 16 --max-steps 4
"""

from __future__ import annotations

import importlib.util
import math
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from types import SimpleNamespace

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from spa_rl.agent.schema import command_line, write_json_atomic  # noqa: E402
from spa_rl.cli import arg, parse  # noqa: E402
from spa_rl.models.loading import load_tokenizer  # noqa: E402
from spa_rl.rl.policy_value import PolicyWithValue  # noqa: E402
from spa_rl.rl.sources import OnlineSource, SourceConfig  # noqa: E402
from spa_rl.rl.update import score_rollouts  # noqa: E402


@dataclass
class OnlineKLConfig:
    model: str = arg(help="the SFT model folder (the reference)")
    adapter: str = arg(help="a PPO adapter folder (ppo/train.py output)")
    env: str = arg("alfworld", "the environment the rollouts are played in")
    task_types: str = arg("pick", "comma-separated task types the tasks are drawn from")
    num_tasks: int = arg(8, "draw from the first N training tasks")
    rollouts: int = arg(16, "fresh rollouts sampled and scored")
    max_steps: int = arg(4, "agent turns per episode")
    temperature: float = arg(0.7, "sampling temperature of the rollouts")
    icl_examples: int = arg(1, "in-context examples in the prompt: 1 (the paper's) or 0")
    seed: int = arg(1, "sampling seed")
    output: Path | None = arg(None, "also write the per-rollout figures to this JSON file")


def mean_se(xs: list[float]) -> tuple[float, float]:
    m = sum(xs) / len(xs)
    var = sum((x - m) ** 2 for x in xs) / (len(xs) - 1) if len(xs) > 1 else 0.0
    return m, math.sqrt(var / len(xs))


def main(argv: list[str] | None = None) -> None:
    cfg = parse(OnlineKLConfig, argv=argv, doc=__doc__)

    spec = importlib.util.spec_from_file_location(
        "ppo_train", Path(__file__).resolve().parents[1] / "ppo/train.py"
    )
    recipe = importlib.util.module_from_spec(spec)
    sys.modules["ppo_train"] = recipe
    spec.loader.exec_module(recipe)
    tok = load_tokenizer(cfg.model)
    policy = PolicyWithValue.create(cfg.model, adapter=cfg.adapter).eval()
    acc = SimpleNamespace(device="cpu", process_index=0, num_processes=1)
    with tempfile.TemporaryDirectory() as tmp:
        ppo_cfg = recipe.PPOConfig(model=cfg.model, mode="online", env=cfg.env, variant="sparse",
                                   num_tasks=cfg.num_tasks, task_types=cfg.task_types,
                                   temperature=cfg.temperature, max_steps=cfg.max_steps, max_new_tokens=96,
                                   gen_batch_size=8, output_dir=tmp, seed=cfg.seed,
                                   icl_examples=cfg.icl_examples, dtype="fp32")  # fmt: skip
        source = OnlineSource(SourceConfig.of(ppo_cfg), tok, policy, acc)
        samples, extra = source.next(cfg.rollouts, 0)
    old_lp, _, ref_lp = score_rollouts(policy, samples, 1, tok.pad_token_id, "cpu")
    k1 = [(o - r).sum().item() for o, r in zip(old_lp, ref_lp, strict=True)]
    k3 = [(torch.exp(r - o) - 1 - (r - o)).sum().item() for o, r in zip(old_lp, ref_lp, strict=True)]
    tokens = sum(len(s.act_pos) for s in samples)
    (m1, se1), (m3, se3) = mean_se(k1), mean_se(k3)
    print(f"{len(samples)} rollouts, {tokens} action tokens; per rollout: k1 (logged kl) {m1:.4f} +- {se1:.4f} "
          f"(se), k3 (kl_k3) {m3:.4f} +- {se3:.4f}; k1 < 0 in {sum(x < 0 for x in k1)} rollouts")  # fmt: skip
    if cfg.output:
        write_json_atomic(cfg.output, {"command": command_line(),
                                       "args": asdict(cfg) | {"output": str(cfg.output)},
                                       "rollouts": len(samples), "action_tokens": tokens, "k1": k1, "k3": k3,
                                       "k1_mean": m1, "k1_se": se1, "k3_mean": m3, "k3_se": se3,
                                       "rollout_stats": extra})  # fmt: skip


if __name__ == "__main__":
    main()
