"""Evaluate a model on an environment split; writes ``episodes.jsonl`` and ``summary.json``.

    python -m spa_rl.agent.evaluate --env alfworld --split unseen --model models/smollm2-135m-instruct \
        --num-tasks 20 --output-dir runs/eval/smollm2-unseen

Rerunning with the same ``--output-dir`` resumes: finished episodes are kept and skipped.
"""

from __future__ import annotations

import json
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from envs import ENV_NAMES, parse_env_options, select_tasks
from spa_rl.agent.backends import GenerationConfig, make_policy
from spa_rl.agent.metrics import summarize
from spa_rl.agent.prompts import check_model_icl, validate_icl_examples
from spa_rl.agent.runner import RolloutConfig, run_rollouts
from spa_rl.agent.schema import command_line, write_json_atomic
from spa_rl.cli import arg, parse
from spa_rl.fingerprint import claim_output, env_option_settings, settings_of
from spa_rl.models.precision import dtype_name, resolve_dtype
from spa_rl.validate import choice, in_range, non_negative, positive_int


@dataclass
class EvalConfig:
    env: str = arg("alfworld", "environment name", choices=ENV_NAMES)
    split: str = arg("unseen", "task split (alfworld: train, seen, unseen; webshop: train, test, human; "
                     "virtualhome: train, seen, unseen = test)")  # fmt: skip
    env_option: list[str] = arg(default_factory=list, help="an environment option NAME=VALUE, repeatable (webshop: "
                                "reward=original (default) | corrected | legacy, see envs/webshop/README.md; "
                                "alfworld and virtualhome take none)", repeat=True)  # fmt: skip
    model: str = arg("models/smollm2-135m-instruct", "local model folder (hf) or served model name (openai)")
    backend: str = arg("hf", "hf: transformers in this process | openai: an OpenAI-compatible server (vLLM)",
                       choices=("hf", "openai"))  # fmt: skip
    api_base: str | None = arg(None, "openai backend endpoint, e.g. http://127.0.0.1:8000/v1")
    num_tasks: int | None = arg(None, "play N tasks of the split (see --task-sample; default: all)")
    task_sample: str = arg("first", "first: the split's first N tasks; random: N drawn without replacement "
                           "(seeded by --task-seed)")  # fmt: skip
    task_seed: int = arg(0, "seed of --task-sample random")
    task_types: str | None = arg(None, "keep only these task types, comma-separated (alfworld: pick,examine,"
                                 "clean,heat,cool,pick_two; webshop: beauty,electronics,fashion,garden,grocery; "
                                 "virtualhome: the task title in snake case, e.g. watch_tv)")  # fmt: skip
    task_ids: str | None = arg(None, "a file with one task id per line (e.g. an SFT model's task_ids.txt): "
                               "draw tasks only from these")  # fmt: skip
    exclude_task_ids: str | None = arg(None, "a file with one task id per line: never draw these (e.g. hold "
                                       "out the SFT games)")  # fmt: skip
    n_rollouts: int = arg(1, "rollouts per task (use temperature > 0 for different rollouts)")
    temperature: float = arg(0.0, "sampling temperature; 0 = greedy")
    top_p: float = arg(1.0, "nucleus sampling mass")
    max_new_tokens: int = arg(128, "tokens generated per turn")
    max_steps: int | None = arg(None, "agent turns per episode (default: the environment's limit)")
    batch_size: int = arg(8, "episodes advanced together (one batched generate call per step)")
    max_context: int | None = arg(None, "prompt + reply token limit; longer episodes end with "
                                  "finish_reason=context_limit")  # fmt: skip
    icl_examples: int = arg(1, "in-context examples in the prompt: 1 (instruction + one example + task, the "
                            "paper's) or 0 (instruction + task); a model folder whose spa_rl.json records the "
                            "other setting is refused")  # fmt: skip
    seed: int = arg(0, "sampling seed")
    device: str | None = arg(None, "hf backend: torch device (default: cuda if available, else cpu)")
    dtype: str | None = arg(
        None, "hf backend: auto | bf16 | fp32 (default auto: bf16 where the hardware has it)"
    )
    output_dir: str = arg("runs/eval", "where episodes.jsonl and summary.json go")
    no_kv_cache: bool = arg(False, "hf backend: re-encode the whole conversation every turn instead of keeping "
                            "each episode's cache")  # fmt: skip
    no_progress: bool = arg(False, "no progress bar")
    overwrite: bool = arg(False, "remove the output folder's contents and start over (otherwise a rerun "
                          "resumes, and a folder written with other settings is refused)")  # fmt: skip

    def __post_init__(self) -> None:
        # Every number refused by its flag before any task is loaded: argparse lets 0, -1 and nan through.
        positive_int("--num-tasks", self.num_tasks, allow_none=True)  # None: all
        choice("--task-sample", self.task_sample, ("first", "random"))
        positive_int("--n-rollouts", self.n_rollouts)
        non_negative("--temperature", self.temperature)
        in_range("--top-p", self.top_p, 0.0, 1.0, lo_open=True)
        positive_int("--max-new-tokens", self.max_new_tokens)
        positive_int("--max-steps", self.max_steps, allow_none=True)  # None: the env's limit
        positive_int("--batch-size", self.batch_size)
        positive_int("--max-context", self.max_context, allow_none=True)
        validate_icl_examples(self.icl_examples, "--icl-examples")
        parse_env_options(self.env, self.env_option)  # an unknown option or value, named with what is allowed

    @property
    def env_options(self) -> dict[str, str]:
        """The environment's options: --env-option checked, defaults filled."""
        return parse_env_options(self.env, self.env_option)


# Not in the run fingerprint: settings that change speed or where things go, and which tasks are played
# (each episode depends on its task and the fingerprinted settings only, and the summary reports exactly
# the selected tasks), so a rerun may add tasks to a folder or report a subset of it. --env-option goes in
# resolved (env_option_settings: defaults filled; nothing for environments without options).
NOT_FINGERPRINTED = frozenset(
    {"output_dir", "batch_size", "no_progress", "device", "no_kv_cache", "api_base", "overwrite", "model",
     "num_tasks", "task_sample", "task_seed", "task_types", "task_ids", "exclude_task_ids", "env_option"}
)  # fmt: skip


def parse_args(argv: list[str] | None = None, doc: str = __doc__, **defaults) -> EvalConfig:
    """The evaluation flags; ``defaults`` replace field defaults (exploration's sampling settings)."""
    return parse(EvalConfig, argv=argv, doc=doc, **defaults)


def _previous_runs(path: Path) -> list[dict]:
    """The ``runs`` of an earlier summary in this folder (older summaries: their ``this_run``)."""
    if not path.exists():
        return []
    try:
        prev = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e}); remove it to rewrite it from episodes.jsonl") from e
    if "runs" in prev:
        return list(prev["runs"])
    last = prev.get("this_run")
    return [last] if last and last.get("episodes") else []


def evaluate(cfg: EvalConfig, command: str | None = None) -> dict:
    out = Path(cfg.output_dir)
    validate_icl_examples(cfg.icl_examples, "--icl-examples")
    check_model_icl(cfg.model, cfg.icl_examples)  # a model trained with the other prompt is refused
    tasks = select_tasks(
        cfg.env,
        cfg.split,
        cfg.num_tasks,
        cfg.task_sample,
        cfg.task_seed,
        cfg.task_types,
        cfg.task_ids,
        cfg.exclude_task_ids,
    )
    rcfg = RolloutConfig(
        n_rollouts=cfg.n_rollouts,
        batch_size=cfg.batch_size,
        max_steps=cfg.max_steps,
        generation=GenerationConfig(cfg.max_new_tokens, cfg.temperature, cfg.top_p, cfg.seed),
        env_options=cfg.env_options,
    )
    settings = settings_of(cfg, NOT_FINGERPRINTED) | env_option_settings(cfg.env, cfg.env_option)
    if cfg.backend == "hf":  # "auto" and unset name one dtype, which depends on the hardware
        settings["dtype"] = dtype_name(resolve_dtype(cfg.dtype, cfg.device))
    with claim_output(out, "evaluate", settings, _inputs(cfg), cfg.overwrite):
        policy = make_policy(
            cfg.backend,
            cfg.model,
            api_base=cfg.api_base,
            device=cfg.device,
            dtype=cfg.dtype,
            batch_size=cfg.batch_size,
            max_context=cfg.max_context,
            kv_cache=not cfg.no_kv_cache,
        )
        previous_runs = _previous_runs(out / "summary.json")  # read first: a bad file fails before the work
        t0 = time.time()
        records, stats = run_rollouts(
            tasks,
            policy,
            out / "episodes.jsonl",
            rcfg,
            meta={"model": cfg.model, "temperature": cfg.temperature, "seed": cfg.seed},
            progress=not cfg.no_progress,
            icl_examples=cfg.icl_examples,
        )
        return _write_summary(cfg, out, records, stats, previous_runs, t0, command)


def _inputs(cfg: EvalConfig) -> dict:
    """What an evaluation's episodes depend on besides its settings: the model (served: its name)."""
    return {"model": cfg.model}


def _write_summary(cfg: EvalConfig, out: Path, records, stats, previous_runs, t0: float, command) -> dict:
    this_run = {
        "episodes": stats.episodes,
        "steps": stats.steps,
        "wall_seconds": round(time.time() - t0, 1),
        "generated_tokens": stats.completion_tokens,
        "prompt_tokens": stats.prompt_tokens,
        "generated_tokens_per_second": round(stats.tokens_per_second, 2),
    }
    summary = {
        "env": cfg.env,
        "split": cfg.split,
        "model": cfg.model,
        "icl_examples": cfg.icl_examples,
        "env_options": cfg.env_options,
        "metrics": summarize(records),
        "this_run": this_run,
        # A resumed or repeated evaluation keeps the throughput of the runs that played episodes.
        "runs": previous_runs + ([this_run] if stats.episodes else []),
        "config": asdict(cfg),
        "command": command or command_line(),
        "host": {"python": platform.python_version(), "machine": platform.machine()},
    }
    write_json_atomic(out / "summary.json", summary)
    return summary


def main(argv: list[str] | None = None) -> None:
    cfg = parse_args(argv)
    summary = evaluate(cfg)
    m = summary["metrics"]
    print(
        json.dumps(
            {k: summary["this_run"][k] for k in ("episodes", "wall_seconds", "generated_tokens_per_second")}
            | {k: round(m[k], 4) for k in ("n", "success_rate", "avg_reward", "grounding", "avg_steps")}
        )
    )
    print(f"wrote {Path(cfg.output_dir) / 'summary.json'}")


if __name__ == "__main__":
    main()
