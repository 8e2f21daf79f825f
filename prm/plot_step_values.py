"""Plot the estimator's c_t along a few successful and failed rollouts (and their running sums).

    python prm/plot_step_values.py --rollouts runs/demo/alfworld/exploration/episodes.jsonl \\
        --step-values runs/demo/alfworld/exploration/step_values.jsonl --output results/step_values.png
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from itertools import accumulate

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from spa_rl.agent.schema import read_records  # noqa: E402
from spa_rl.cli import arg, parse  # noqa: E402
from spa_rl.estimator.data import read_step_values  # noqa: E402
from spa_rl.validate import non_negative_int  # noqa: E402


@dataclass
class PlotConfig:
    rollouts: str = arg(help="exploration JSONL")
    step_values: str = arg(help="estimator output (prm/infer.py)")
    output: str = arg(help="PNG file")
    n: int = arg(3, "rollouts of each outcome to draw")
    seed: int = arg(0, "seed of the rollouts drawn")
    title: str | None = arg(None, "figure title (default: none)")

    def __post_init__(self) -> None:
        non_negative_int("--n", self.n)


def main(argv: list[str] | None = None) -> None:
    cfg = parse(PlotConfig, argv=argv, doc=__doc__)
    values = read_step_values(cfg.step_values)
    recs = [r for r in read_records(cfg.rollouts) if r.key in values]
    rng = random.Random(cfg.seed)
    groups = {True: [r for r in recs if r.success], False: [r for r in recs if not r.success]}
    picked = {k: rng.sample(v, min(cfg.n, len(v))) for k, v in groups.items()}
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharex=True)
    for success, color in ((True, "tab:green"), (False, "tab:red")):
        for i, r in enumerate(picked[success]):
            c = values[r.key]
            steps = range(1, len(c) + 1)
            label = f"{'success' if success else 'failure'}: {r.task_type} ({len(c)} steps)"
            style = ["-", "--", ":", "-."][i % 4]
            axes[0].plot(steps, c, style, color=color, marker=".", label=label)
            axes[1].plot(steps, list(accumulate(c)), style, color=color, marker=".")
    axes[0].set(xlabel="step t", ylabel="c_t", title="step contribution c_t")
    axes[1].set(xlabel="step t", ylabel="sum of c_1..c_t", title="running sum (ends at the prediction of R)")
    for ax in axes:
        ax.axhline(0, color="grey", lw=0.5)
    axes[0].legend(fontsize=7)
    if cfg.title:
        fig.suptitle(cfg.title)
    fig.tight_layout()
    fig.savefig(cfg.output, dpi=110)
    print(f"wrote {cfg.output} ({len(picked[True])} successful, {len(picked[False])} failed rollouts)")


if __name__ == "__main__":
    main()
