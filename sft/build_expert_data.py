"""Build the SFT expert file (ShareGPT) from an environment's own expert.

    python sft/build_expert_data.py --env alfworld --output data/sft/alfworld_sft.json
    python sft/build_expert_data.py --env alfworld --icl-examples 0     # -> data/sft/alfworld_sft_icl0.json

Each record is the conversation the agent sees at evaluation (instruction, in-context example, task),
followed by the expert's turns as ``Thought: ...\\nAction: ...`` with thoughts written from the expert's
plan (see ``spa_rl/agent/experts``). ``context_turns`` marks where the expert's turns begin.
``--icl-examples 0`` leaves the in-context example out (instruction + task, as SPA-RL's own data script
does before the estimator); each record's ``icl_examples`` field says which prompt it holds, and the
default output path differs (``data/sft/<env>_sft.json`` for 1, ``<env>_sft_icl0.json`` for 0).

ALFWorld uses the 3,119 training games of ETO's SFT set by default (``--games eto``, listed in the data
mirror's ``meta/steca_game_file_to_id.json``, in that file's id order), or every training game
(``--games all``). If ETO's original file (GPT-4 thoughts) is at ``data/original/<env>_sft.json`` or given
with ``--original``, it is validated and used instead.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from envs import load_tasks
from envs.paths import data_dir, default_mirror
from spa_rl.agent.experts import expert_messages
from spa_rl.agent.prompts import DEFAULT_ICL_EXAMPLES, validate_icl_examples
from spa_rl.agent.schema import write_json_atomic
from spa_rl.agent.sharegpt import from_messages, read_sharegpt, to_messages, write_sharegpt
from spa_rl.cli import arg, parse
from spa_rl.validate import choice, positive_int


@dataclass
class BuildConfig:
    env: str = arg("alfworld", "the environment whose expert is played")
    output: str = arg("", "the expert file (default: data/sft/<env>_sft.json; --icl-examples 0: "
                      "<env>_sft_icl0.json)")  # fmt: skip
    games: str = arg("eto", "alfworld: eto (ETO's 3,119 SFT games) | all (every training game)",
                     choices=("eto", "all"))  # fmt: skip
    num_tasks: int | None = arg(None, "first N trajectories only (demo / tests; default: all)")
    max_expert_steps: int | None = arg(None, "drop experts longer than this (default: keep all)")
    original: str | None = arg(None, "ETO/SPA-RL ShareGPT file to use instead of building (default: "
                               "data/original/<env>_sft.json if it exists)")  # fmt: skip
    tokenizer: str | None = arg(None, "a model folder: also count tokens per trajectory")
    icl_examples: int = arg(DEFAULT_ICL_EXAMPLES, "in-context examples in the prompt: 1 (the paper's) or 0 "
                            "(instruction + task only)")  # fmt: skip

    def __post_init__(self) -> None:
        # Refused by flag before any game is loaded: argparse lets 0 and -1 through (0 would build nothing).
        choice("--games", self.games, ("eto", "all"))
        positive_int("--num-tasks", self.num_tasks, allow_none=True)  # None: all
        positive_int("--max-expert-steps", self.max_expert_steps, allow_none=True)  # None: keep all
        validate_icl_examples(self.icl_examples, "--icl-examples")


def default_output(env: str, icl_examples: int) -> Path:
    """The expert file's default path; the two settings never share one."""
    suffix = "" if icl_examples == DEFAULT_ICL_EXAMPLES else f"_icl{icl_examples}"
    return data_dir() / "sft" / f"{env}_sft{suffix}.json"


def eto_alfworld_games() -> list[str]:
    mirror = default_mirror()
    candidates = [data_dir() / "alfworld" / "meta" / "steca_game_file_to_id.json"]
    if mirror is not None:
        candidates.append(Path(mirror) / "alfworld" / "meta" / "steca_game_file_to_id.json")
    for path in candidates:
        if path.exists():
            ids = json.loads(path.read_text())
            ordered = sorted(ids.items(), key=lambda kv: int(kv[1]))
            return [p.split("/train/", 1)[1] for p, _ in ordered]
    raise SystemExit(
        "ETO's game list (alfworld/meta/steca_game_file_to_id.json) is not in the data mirror; "
        "use --games all"
    )


def build(cfg: BuildConfig) -> list[dict]:
    tasks = load_tasks(cfg.env, "train")
    if cfg.env == "alfworld" and cfg.games == "eto":
        by_id = {t.task_id: t for t in tasks}
        wanted = eto_alfworld_games()
        missing = [g for g in wanted if g not in by_id]
        if missing:
            raise SystemExit(f"{len(missing)} ETO games are not in the train split, e.g. {missing[0]}")
        tasks = [by_id[g] for g in wanted]
    elif cfg.games not in ("eto", "all"):
        raise SystemExit(f"--games must be eto or all, got {cfg.games!r}")
    records, dropped = [], 0
    for task in tqdm(tasks, desc=f"expert {cfg.env}", unit="traj"):
        if cfg.num_tasks is not None and len(records) >= cfg.num_tasks:
            break
        messages, prefix_len = expert_messages(task, cfg.icl_examples)
        n_steps = sum(m["role"] == "assistant" for m in messages[prefix_len:])
        if cfg.max_expert_steps is not None and n_steps > cfg.max_expert_steps:
            dropped += 1
            continue
        records.append(
            from_messages(
                task.task_id,
                messages,
                prefix_len,
                env=cfg.env,
                task_type=task.task_type,
                icl_examples=cfg.icl_examples,
            )
        )
    if dropped:
        print(f"dropped {dropped} experts longer than {cfg.max_expert_steps} steps", file=sys.stderr)
    return records


def stats(records: list[dict], tokenizer_path: str | None) -> dict:
    turns = [
        sum(c["from"] == "gpt" for c in r["conversations"][r.get("context_turns", 0) :]) for r in records
    ]
    out = {
        "trajectories": len(records),
        "expert_turns": sum(turns),
        "turns_per_trajectory": {"mean": statistics.mean(turns), "max": max(turns)},
    }
    if tokenizer_path:
        from spa_rl.agent.chat import render_chat
        from spa_rl.models.loading import load_tokenizer

        tok = load_tokenizer(tokenizer_path)
        lengths, trained = [], []
        for r in tqdm(records, desc="tokens", unit="traj"):
            msgs, start = to_messages(r)
            rc = render_chat(tok, msgs, train_from=start)
            lengths.append(len(rc.input_ids))
            trained.append(sum(rc.assistant_mask))
        out["tokens"] = {
            "tokenizer": tokenizer_path,
            "total": sum(lengths),
            "trained (assistant) total": sum(trained),
            "per_trajectory_mean": statistics.mean(lengths),
            "per_trajectory_max": max(lengths),
        }
    return out


def main(argv: list[str] | None = None) -> None:
    cfg = parse(BuildConfig, argv=argv, doc=__doc__)  # BuildConfig checks every number and choice
    out = Path(cfg.output or default_output(cfg.env, cfg.icl_examples))
    original = Path(cfg.original) if cfg.original else data_dir() / "original" / f"{cfg.env}_sft.json"
    t0 = time.time()
    if cfg.icl_examples != 1 and cfg.original:
        raise SystemExit(
            f"--original {cfg.original}: ETO's files hold the in-context example (icl_examples=1); "
            f"--icl-examples {cfg.icl_examples} builds from the environment's expert instead"
        )
    if original.exists() and cfg.icl_examples == 1:
        print(f"using the original expert file {original}", file=sys.stderr)
        records = [{"icl_examples": 1, **r} for r in read_sharegpt(original)[: cfg.num_tasks]]
        source = str(original)
    elif cfg.original:
        raise SystemExit(f"--original {cfg.original} does not exist")
    else:
        records = build(cfg)
        source = f"built from the {cfg.env} expert"
    if not records:
        raise SystemExit("no expert trajectories were built")
    write_sharegpt(out, records)
    info = {"source": source, "config": vars(cfg), "seconds": round(time.time() - t0, 1)}
    info |= stats(records, cfg.tokenizer)
    write_json_atomic(out.with_suffix(".stats.json"), info)
    print(json.dumps(info, indent=2))
    print(f"wrote {len(records)} trajectories to {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
