"""Exploration (stage 2): the SFT agent plays training tasks M times with sampling; every rollout is
appended to ``<output-dir>/episodes.jsonl`` as soon as it ends, and a rerun resumes where it stopped.

    python exploration/explore.py --env alfworld --model runs/demo/alfworld/sft/model \\
        --num-tasks 40 --n-rollouts 4 --output-dir runs/demo/alfworld/exploration

Defaults follow the paper: the train split, temperature 0.7; tasks drawn at random (seeded) because
the split is ordered by task type. Every evaluation flag works (see --help).
"""

from pathlib import Path

from spa_rl.agent.evaluate import evaluate, parse_args


def main() -> None:
    cfg = parse_args(
        doc=__doc__,
        split="train",
        temperature=0.7,
        n_rollouts=4,
        task_sample="random",
        output_dir="runs/exploration",
    )
    m = evaluate(cfg)["metrics"]
    print(
        f"{m['n']} rollouts: success {m['success_rate']:.3f}, grounding {m['grounding']:.3f}, "
        f"avg steps {m['avg_steps']:.1f} -> {Path(cfg.output_dir) / 'episodes.jsonl'}"
    )


if __name__ == "__main__":
    main()
