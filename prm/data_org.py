"""Exploration rollouts -> progress-estimator data: ``train.jsonl`` and ``val.jsonl`` in the
trajectory-record format, split by task (all rollouts of a task land on one side) with a seed.

    python prm/data_org.py --rollouts runs/demo/alfworld/exploration/episodes.jsonl \\
        --output-dir runs/demo/alfworld/prm_data --val-fraction 0.2

The target of each rollout is its final reward R (ALFWorld / VirtualHome: success 0/1, WebShop: score).
Rollouts cut by the context limit have no trustworthy end and are left out. Rollouts played with the
other in-context-example setting than ``--icl-examples`` are refused (rollouts that predate the
setting's record count as 1).
"""

from __future__ import annotations

import json
import random
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from spa_rl.agent.prompts import DEFAULT_ICL_EXAMPLES, check_records_icl, validate_icl_examples
from spa_rl.agent.schema import read_records, write_json_atomic, write_jsonl_atomic
from spa_rl.cli import arg, parse
from spa_rl.fingerprint import claim_file, make_fingerprint, mark_file
from spa_rl.rewards import final_reward
from spa_rl.validate import in_range


def split_by_task(task_ids: list[str], val_fraction: float, seed: int) -> set[str]:
    """The task ids that go to validation."""
    tasks = sorted(set(task_ids))
    n_val = round(len(tasks) * val_fraction)
    if val_fraction > 0 and n_val == 0 and len(tasks) > 1:
        n_val = 1
    return set(random.Random(seed).sample(tasks, n_val))


@dataclass
class DataOrgConfig:
    rollouts: list[str] = arg(help="exploration JSONL file(s)")
    output_dir: str = arg(help="folder for train.jsonl, val.jsonl and data_info.json")
    val_fraction: float = arg(0.1, "share of tasks held out")
    seed: int = arg(0, "seed of the task split")
    icl_examples: int = arg(
        DEFAULT_ICL_EXAMPLES, "in-context examples the rollouts' prompts must hold: 1 (paper) or 0"
    )
    overwrite: bool = arg(False, "write the split again even if it is up to date")

    def __post_init__(self) -> None:
        # Refused before any file is touched; 1 would leave no training data.
        in_range("--val-fraction", self.val_fraction, 0.0, 1.0, hi_open=True)


def main(argv: list[str] | None = None) -> None:
    cfg = parse(DataOrgConfig, argv=argv, doc=__doc__)
    settings = {"val_fraction": cfg.val_fraction, "seed": cfg.seed, "icl_examples": cfg.icl_examples}
    fp = make_fingerprint("estimator-data", settings, {f"rollouts{i}": p for i, p in enumerate(cfg.rollouts)})
    info = Path(cfg.output_dir) / "data_info.json"
    with claim_file(info, fp, cfg.overwrite, redo_when_changed=True) as current:
        if current:
            print(f"{cfg.output_dir} is up to date; skipping")
            return
        mark_file(info, fp)
        run(cfg)


def run(cfg: DataOrgConfig) -> None:
    validate_icl_examples(cfg.icl_examples, "--icl-examples")

    records = []
    for path in cfg.rollouts:
        recs = read_records(path)
        check_records_icl(recs, cfg.icl_examples, path)
        records += recs
    if not records:
        raise SystemExit(f"no rollouts in {' '.join(cfg.rollouts)}")
    kept = [r for r in records if r.finish_reason != "context_limit" and r.n_steps > 0]
    val_tasks = split_by_task([r.task_id for r in kept], cfg.val_fraction, cfg.seed)
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    sides = {
        "train": [r for r in kept if r.task_id not in val_tasks],
        "val": [r for r in kept if r.task_id in val_tasks],
    }
    for name, recs in sides.items():
        write_jsonl_atomic(out / f"{name}.jsonl", [r.to_json() for r in recs])
    info = {
        "rollouts": cfg.rollouts,
        "read": len(records),
        "dropped_context_limit_or_empty": len(records) - len(kept),
        "val_fraction": cfg.val_fraction,
        "seed": cfg.seed,
        "icl_examples": cfg.icl_examples,
    }
    for name, recs in sides.items():
        rewards = [final_reward(r) for r in recs]
        info[name] = {
            "rollouts": len(recs),
            "tasks": len({r.task_id for r in recs}),
            "mean_reward": sum(rewards) / len(rewards) if rewards else None,
            "success": sum(r.success for r in recs),
            "steps": dict(sorted(Counter(r.n_steps for r in recs).items())),
        }
    write_json_atomic(out / "data_info.json", info)
    print(json.dumps({k: info[k] for k in ("read", "train", "val")}, default=str)[:400])


if __name__ == "__main__":
    main()
