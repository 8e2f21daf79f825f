"""Plot the estimator's c_t along a few successful and failed rollouts (and their running sums).

    python prm/plot_step_values.py --rollouts runs/demo/alfworld/exploration/episodes.jsonl \\
        --step-values runs/demo/alfworld/exploration/step_values.jsonl --output results/step_values.png
"""

from __future__ import annotations

import argparse
import random
from itertools import accumulate

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from spa_rl.agent.schema import read_records  # noqa: E402
from spa_rl.estimator.data import read_step_values  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rollouts", required=True)
    ap.add_argument("--step-values", required=True)
    ap.add_argument("--output", required=True, help="PNG file")
    ap.add_argument("--n", type=int, default=3, help="rollouts of each outcome to draw")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--title", default="")
    args = ap.parse_args()

    values = read_step_values(args.step_values)
    recs = [r for r in read_records(args.rollouts) if r.key in values]
    rng = random.Random(args.seed)
    groups = {True: [r for r in recs if r.success], False: [r for r in recs if not r.success]}
    picked = {k: rng.sample(v, min(args.n, len(v))) for k, v in groups.items()}
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
    if args.title:
        fig.suptitle(args.title)
    fig.tight_layout()
    fig.savefig(args.output, dpi=110)
    print(f"wrote {args.output} ({len(picked[True])} successful, {len(picked[False])} failed rollouts)")


if __name__ == "__main__":
    main()
