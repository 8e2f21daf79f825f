"""Step-level PPO with fused per-step rewards (stage 4): the SFT model with LoRA, a value head,
reference = adapters disabled, per-token KL penalty, each step's reward on the last token of its turn,
GAE over action tokens (per token, or per agent turn with ``--gae-level turn``), clipped policy and value
losses. Log-probabilities are computed at the temperature the rollouts were sampled at (offline: read
from the PPO data; online: ``--temperature``), and without dropout, so the ratio is exactly 1 before an
update.

    # offline (the public code): PPO on the fixed exploration rollouts and their fused rewards
    python ppo/train.py --mode offline --model runs/demo/alfworld/sft/model \\
        --data runs/demo/alfworld/ppo_data/progress.jsonl --output-dir runs/demo/alfworld/ppo_progress
    # online: fresh rollouts from the current policy each iteration, rewarded by the frozen estimator
    python ppo/train.py --mode online --model runs/demo/alfworld/sft/model --env alfworld \\
        --estimator runs/demo/alfworld/estimator/estimator --output-dir runs/demo/alfworld/ppo_online

Several processes: ``accelerate launch --config_file scripts/accelerate/ddp.yaml --num_processes N
ppo/train.py ...`` (DDP; on CPU ``torchrun --nproc_per_node N``). DeepSpeed is refused: only the adapters
and the value head train. Memory: ``--gradient-checkpointing`` and ``--max-tokens-per-micro-batch``; the
frozen base weights are held in the compute dtype (bf16 where the hardware has it). Writes ``<output-dir>/adapter`` (LoRA + value head, safetensors),
``train_log.jsonl`` and ``summary.json``; ``<output-dir>/checkpoint`` is rewritten every
``--save-every`` iterations and a rerun resumes from it.
"""

from __future__ import annotations

import contextlib
import json
import math
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import DistributedType, set_seed
from tqdm import tqdm

from envs import ENV_NAMES, parse_env_options
from spa_rl.agent.prompts import check_model_icl, validate_icl_examples, write_model_info
from spa_rl.agent.schema import command_line, write_json_atomic
from spa_rl.cli import arg, parse
from spa_rl.fingerprint import check_fingerprint, env_option_settings, locked, make_fingerprint, settings_of
from spa_rl.models.loading import load_tokenizer
from spa_rl.models.paths import resolve_model_path
from spa_rl.models.precision import DTYPE_CHOICES, dtype_name, resolve_dtype, use_gradient_checkpointing
from spa_rl.rewards import VARIANTS, resolve_step_weighting
from spa_rl.rl.advantages import ESTIMATORS, AdvantageSettings
from spa_rl.rl.policy_value import PolicyWithValue
from spa_rl.rl.ppo import (
    GAE_LEVELS,
    STEP_WEIGHTINGS,
    KLController,
)
from spa_rl.rl.probe import TrainingProbe
from spa_rl.rl.sources import OfflineSource, OnlineSource, SourceConfig
from spa_rl.rl.update import UpdateConfig, ppo_iteration
from spa_rl.tracking import REPORT_TO_HELP, Tracker, resolve_report_to
from spa_rl.training import json_safe, publish_dir, recover_published, write_log_history
from spa_rl.validate import (
    choice,
    finite,
    flag,
    in_range,
    non_negative,
    non_negative_int,
    positive,
    positive_int,
)

# Who plays online PPO's rollouts: in this process, or a server (spa_rl/rl/served_policy.py).
ROLLOUT_BACKENDS = ("hf", "vllm", "serve")


@dataclass
class PPOConfig:
    model: str = arg("", "the SFT model folder (Hugging Face format)")
    output_dir: str = arg("runs/ppo", "where the adapter, logs and checkpoint go")
    mode: str = arg("offline", "offline: fixed exploration rollouts; online: fresh rollouts each iteration",
                    choices=("offline", "online"))  # fmt: skip
    data: str = arg("", "offline: the PPO data file (prm/fuse_rewards.py)")
    # online
    env: str = arg("alfworld", "online and the probe: the environment", choices=ENV_NAMES)
    env_option: list[str] = arg(default_factory=list, help="online and the probe: an environment option "
                                "NAME=VALUE, repeatable (webshop: reward=original (default) | corrected | legacy)",
                                repeat=True)  # fmt: skip
    estimator: str = arg("", "online: the frozen progress estimator folder (variants that need it)")
    variant: str | None = arg(None, "online: the step-value variant (default progress); offline: taken from the "
                              "data (if given, it must match)", choices=VARIANTS)  # fmt: skip
    num_tasks: int | None = arg(None, "online: draw from the first N training tasks (default: all)")
    task_types: str | None = arg(None, "online and the probe: comma-separated task types (default: all)")
    task_ids: str | None = arg(
        None, "online: a file with one training-task id per line; draw only from these"
    )
    exclude_task_ids: str | None = arg(
        None, "online: a file with one training-task id per line; never draw these"
    )
    temperature: float | None = arg(None, "online only: sampling temperature of the fresh rollouts (default "
                                    "0.7); offline PPO reads each rollout's temperature from the data")  # fmt: skip
    max_steps: int | None = arg(None, "online: agent turns per episode (default: the environment's limit)")
    max_new_tokens: int = arg(128, "online: tokens generated per turn")
    gen_batch_size: int = arg(8, "online: episodes played together")
    alpha: float = arg(1.0, "weight of the step value in the fused reward")
    beta: float | None = arg(None, "weight of the grounding reward (default: the variant's, 0.5 or 0)")
    # PPO
    iterations: int = arg(10, "PPO updates")
    rollouts_per_iteration: int = arg(
        8, "rollouts per PPO update (offline: taken in turn from the data file)"
    )
    ppo_epochs: int = arg(2, "passes over each update's rollouts")
    minibatch_size: int = arg(2, "rollouts per forward pass")
    grad_accum: int = arg(2, "minibatches per optimizer step")
    lr: float = arg(1e-5, "learning rate (0: frozen weights)")
    gamma: float = arg(0.99, "GAE discount")
    lam: float = arg(0.95, "GAE lambda")
    gae_level: str = arg("token", "token: gamma and lambda per action token (the public code, TRL) | turn: per "
                         "agent turn, the turn's tokens share its advantage (RAGEN's turn-level GAE)",
                         choices=GAE_LEVELS)  # fmt: skip
    clip: float = arg(0.2, "policy ratio clip")
    value_clip: float = arg(0.2, "value clip")
    vf_coef: float = arg(0.1, "value loss weight")
    kl_coef: float = arg(0.3, "initial KL penalty coefficient")
    kl_target: float | None = arg(6.0, "adaptive KL target; 'none' keeps --kl-coef fixed")
    kl_horizon: int = arg(10000, "adaptive KL controller horizon")
    whiten_advantages: bool = arg(True, "normalise advantages per update")
    max_grad_norm: float = arg(1.0, "gradient clip norm")
    step_weighting: str = arg("auto", "auto: public-code for the public-code variant's data, none (the paper) "
                              "otherwise | none | public-code: multiply step t's reward by (T - t - 1)",
                              choices=("auto", *STEP_WEIGHTINGS))  # fmt: skip
    max_length: int = arg(4096, "tokens per rollout; longer ones are skipped")
    # memory (neither changes what is learned: left out of the fingerprint)
    gradient_checkpointing: bool = arg(False, "recompute each decoder layer's activations in the backward pass "
                                       "(GPU only: turned off on a CPU, as in the Trainer recipes)")  # fmt: skip
    max_tokens_per_micro_batch: int | None = arg(None, "run each minibatch's forward and backward passes, and the "
                                                 "scoring passes, in micro-batches of at most N padded tokens (rows "
                                                 "x longest rollout; a longer rollout goes alone), with the same "
                                                 "loss and gradients (default: one pass per minibatch)")  # fmt: skip
    lora_r: int = arg(8, "LoRA rank")
    lora_alpha: int = arg(16, "LoRA alpha")
    dtype: str = arg("auto", "compute dtype: auto (bf16 on a GPU or a CPU with bf16 instructions, else fp32) "
                     "| bf16 | fp32", choices=DTYPE_CHOICES)  # fmt: skip
    icl_examples: int = arg(1, "in-context examples in the prompt: 1 (the paper's) or 0 (instruction + task); "
                            "online rollouts are played with it, offline PPO data and a model folder "
                            "(spa_rl.json) of the other setting are refused")  # fmt: skip
    seed: int = arg(0, "seed of the rollout order, LoRA init and sampling")
    save_every: int = arg(5, "write the checkpoint every N updates (a rerun resumes from it)")
    probe_every: int = arg(0, "every N PPO updates (and before the first), play --probe-tasks training tasks "
                           "greedily with the current policy and log their success to probe_log.jsonl: the "
                           "learning curve (0: off; needs --env)")  # fmt: skip
    probe_tasks: int = arg(16, "training tasks the probe plays (drawn with --probe-seed from --task-types / "
                           "--task-ids)")  # fmt: skip
    probe_seed: int = arg(0, "seed of the probe's task draw (the same for every PPO seed, so runs play the "
                          "same games)")  # fmt: skip
    # critic-free advantage estimators (spa_rl/rl/advantages.py)
    advantage: str = arg("gae", "gae: GAE with the value head on the fused step rewards (PPO, SPA-RL) | grpo | "
                         "rloo | gigpo: critic-free, from the group of rollouts of each task (offline: every "
                         "rollout of the task in --data; online: --group-size rollouts per drawn task) and "
                         "their final rewards (gigpo: also anchor-state groups of identical observations)",
                         choices=ESTIMATORS)  # fmt: skip
    group_size: int = arg(4, "online, critic-free estimators: rollouts played per drawn task (the group)")
    grpo_std: bool = arg(True, "grpo, gigpo: divide by the group's std (off: mean-centred, as Dr. GRPO)")
    adv_eps: float = arg(1e-6, "grpo, gigpo: added to the group std")
    gigpo_gamma: float = arg(0.95, "gigpo: discount of the step returns (the GiGPO paper's 0.95)")
    invalid_penalty: float = arg(0.1, "gigpo: subtracted from the step reward of an invalid action "
                                 "(verl-agent's 0.1)")  # fmt: skip
    gigpo_step_weight: float = arg(1.0, "gigpo: weight of the step advantage beside the episode one (omega)")
    # online rollouts from a server (spa_rl/rl/served_policy.py)
    rollout_backend: str = arg("hf", "online: who plays the fresh rollouts. hf: the trainer's model in this process | "
                               "vllm: a vLLM server of --model with LoRA enabled, given the current adapter before "
                               "each iteration (runtime LoRA loading) | serve: the same with spa_rl.agent.serve "
                               "(no vLLM needed)", choices=ROLLOUT_BACKENDS)  # fmt: skip
    vllm_python: str | None = arg(None, "--rollout-backend vllm: the Python that runs vLLM (its own virtualenv; "
                                  "default: this one)")  # fmt: skip
    vllm_args: str = arg("", "--rollout-backend vllm: more server flags, one string (shell words)")
    vllm_mem_fraction: float | None = arg(0.3, "--rollout-backend vllm: --gpu-memory-utilization (the trainer "
                                          "shares the GPU; on a CPU the share of host memory); none: vLLM's")  # fmt: skip
    vllm_start_timeout: float = arg(900.0, "--rollout-backend vllm | serve: seconds to wait for the server")
    report_to: str = arg("auto", REPORT_TO_HELP)
    overwrite: bool = arg(False, "remove the output folder's contents (adapter, checkpoint, logs) and train "
                          "from the start; without it a rerun resumes or skips, and a folder written with "
                          "other settings is refused")  # fmt: skip

    def __post_init__(self) -> None:
        # Every number and choice refused by its flag before a model is loaded: argparse lets 0, -1, nan
        # and typos through, and some would otherwise surface only after an iteration of training.
        choice("--mode", self.mode, ("offline", "online"))
        choice("--gae-level", self.gae_level, GAE_LEVELS)
        choice("--step-weighting", self.step_weighting, ("auto", *STEP_WEIGHTINGS))
        choice("--dtype", self.dtype, DTYPE_CHOICES)
        for name in ("iterations", "rollouts_per_iteration", "ppo_epochs", "minibatch_size", "grad_accum",
                     "max_new_tokens", "gen_batch_size", "kl_horizon", "max_length", "lora_r", "lora_alpha",
                     "save_every"):  # fmt: skip
            positive_int(flag(name), getattr(self, name))
        positive_int("--num-tasks", self.num_tasks, allow_none=True)  # None: all
        non_negative_int("--probe-every", self.probe_every)  # 0: no probe
        positive_int("--probe-tasks", self.probe_tasks)
        positive_int("--max-steps", self.max_steps, allow_none=True)  # None: the env's limit
        positive_int("--max-tokens-per-micro-batch", self.max_tokens_per_micro_batch, allow_none=True)
        non_negative("--temperature", self.temperature, allow_none=True)  # None: 0.7 online
        finite("--alpha", self.alpha)
        finite("--beta", self.beta, allow_none=True)  # None: the variant's default
        # lr 0 is allowed: a frozen-weights run (tests check the PPO ratio with it).
        non_negative("--lr", self.lr)
        in_range("--gamma", self.gamma, 0.0, 1.0)
        in_range("--lam", self.lam, 0.0, 1.0)
        for name in ("clip", "value_clip", "max_grad_norm"):
            positive(flag(name), getattr(self, name))
        non_negative("--vf-coef", self.vf_coef)
        non_negative("--kl-coef", self.kl_coef)
        positive("--kl-target", self.kl_target, allow_none=True)  # None: a fixed coefficient
        validate_icl_examples(self.icl_examples, "--icl-examples")
        resolve_report_to(self.report_to)  # an unknown or missing tracker, refused before any work
        positive_int("--group-size", self.group_size)
        choice("--rollout-backend", self.rollout_backend, ROLLOUT_BACKENDS)
        in_range("--vllm-mem-fraction", self.vllm_mem_fraction, 0.0, 1.0, lo_open=True, allow_none=True)
        positive("--vllm-start-timeout", self.vllm_start_timeout)
        parse_env_options(self.env, self.env_option)  # an unknown option or value, named with what is allowed
        AdvantageSettings(self.grpo_std, self.adv_eps, self.gigpo_gamma, self.invalid_penalty,
                          self.gigpo_step_weight)  # fmt: skip


def parse_args(argv: list[str] | None = None) -> PPOConfig:
    cfg = parse(PPOConfig, argv=argv, doc=__doc__)  # PPOConfig checks every number and choice
    if cfg.mode == "offline" and not cfg.data:
        raise SystemExit("--mode offline needs --data (a PPO data file from prm/fuse_rewards.py)")
    if cfg.mode == "offline" and cfg.temperature is not None:
        raise SystemExit(
            "--temperature is for online mode; offline PPO scores each rollout at the sampling "
            "temperature recorded in its data (field 'temperature')"
        )
    if cfg.mode == "online" and cfg.temperature is None:
        cfg.temperature = 0.7
    if cfg.mode == "online" and cfg.variant is None:
        # Critic-free estimators read the outcome and grounding only: no estimator needed for their records.
        cfg.variant = "progress" if cfg.advantage == "gae" else "sparse"
    return cfg


def main() -> None:
    cfg = parse_args()
    cfg.model = resolve_model_path(cfg.model)  # a typo'd folder fails here, not on the Hub
    validate_icl_examples(cfg.icl_examples, "--icl-examples")
    check_model_icl(cfg.model, cfg.icl_examples)  # a model trained with the other prompt is refused
    # cpu=True lets a multi-process CPU launch (torchrun, gloo) form its process group.
    accelerator = Accelerator(cpu=not torch.cuda.is_available())
    if accelerator.distributed_type == DistributedType.DEEPSPEED:
        raise SystemExit(
            "PPO trains LoRA adapters and a value head only (the base weights are frozen), so ZeRO has little "
            "to shard: launch it with plain DDP (accelerate launch --config_file scripts/accelerate/ddp.yaml)"
        )
    set_seed(cfg.seed)
    out = Path(cfg.output_dir)
    with contextlib.ExitStack() as stack:
        # The main process locks the folder and checks (with --overwrite: clears, then writes) the
        # fingerprint before the others look at it.
        with accelerator.main_process_first():
            if accelerator.is_main_process:
                stack.enter_context(locked(out))
            unused = ADVANTAGE_SETTINGS if cfg.advantage == "gae" else frozenset()
            if cfg.rollout_backend == "hf" or cfg.mode == "offline":  # only a served online run records it
                unused |= {"rollout_backend"}
            dtype = dtype_name(resolve_dtype(cfg.dtype, accelerator.device))
            settings = settings_of(cfg, NOT_FINGERPRINTED | unused) | {
                "dtype": dtype,
                "processes": accelerator.num_processes,
            }
            if dtype != "fp32":
                # The frozen base weights are held in this dtype (earlier versions held them in fp32 under
                # autocast): a bf16 run made before is refused rather than resumed with other numerics.
                settings["frozen_weights"] = dtype
            if cfg.mode == "online" or cfg.probe_every:  # offline PPO without the probe plays no episode
                settings |= env_option_settings(cfg.env, cfg.env_option)
            fp = make_fingerprint("ppo", settings, _inputs(cfg))
            check_fingerprint(out, fp, cfg.overwrite and accelerator.is_main_process, "a PPO run")
        if (out / "adapter" / "adapter_config.json").exists():
            accelerator.print(
                f"{out / 'adapter'} exists with these settings; pass --overwrite to train again"
            )
            return
        train(cfg, accelerator, out)


# Settings that change where things go or how often a checkpoint is written, not what is learned.
# --env-option goes in resolved (env_option_settings), and only where episodes are played.
NOT_FINGERPRINTED = frozenset({"output_dir", "save_every", "overwrite", "report_to", "model", "data", "estimator",
                               "task_ids", "exclude_task_ids", "dtype", "env_option",
                               "gradient_checkpointing", "max_tokens_per_micro_batch", "vllm_python", "vllm_args",
                               "vllm_mem_fraction", "vllm_start_timeout"})  # fmt: skip
# The estimator settings do nothing under GAE: left out then, so runs made before they existed still match.
ADVANTAGE_SETTINGS = frozenset({"advantage", "group_size", "grpo_std", "adv_eps", "gigpo_gamma", "invalid_penalty",
                                "gigpo_step_weight"})  # fmt: skip


def _inputs(cfg: PPOConfig) -> dict:
    return {"model": cfg.model, "data": cfg.data, "estimator": cfg.estimator, "task_ids": cfg.task_ids,
            "exclude_task_ids": cfg.exclude_task_ids}  # fmt: skip


def train(cfg: PPOConfig, accelerator: Accelerator, out: Path) -> None:
    ckpt = out / "checkpoint"
    recover_published(ckpt)  # a kill between publish_dir's two renames
    resume = (ckpt / "state.json").exists()
    tokenizer = load_tokenizer(cfg.model)
    compute_dtype = resolve_dtype(cfg.dtype, accelerator.device)
    policy = PolicyWithValue.create(
        cfg.model,
        cfg.lora_r,
        cfg.lora_alpha,
        adapter=str(ckpt / "adapter") if resume else None,
        dtype=compute_dtype,  # the frozen base weights: bf16 where the hardware has it (adapters stay fp32)
    )
    policy.compute_dtype = compute_dtype
    if use_gradient_checkpointing(cfg.gradient_checkpointing, accelerator.device):
        policy.enable_gradient_checkpointing()
    optimizer = torch.optim.AdamW([p for p in policy.parameters() if p.requires_grad], lr=cfg.lr)
    start, kl_value, log = 0, cfg.kl_coef, []
    if resume:
        state = json.loads((ckpt / "state.json").read_text())
        start, kl_value = state["iteration"], state["kl_coef"]
        optimizer.load_state_dict(torch.load(ckpt / "optimizer.pt", weights_only=True))
        log = [json.loads(ln) for ln in (out / "train_log.jsonl").read_text().splitlines() if ln.strip()]
        log = log[:start]
        accelerator.print(f"resuming at iteration {start}")
    policy, optimizer = accelerator.prepare(policy, optimizer)
    unwrapped = accelerator.unwrap_model(policy)
    kl_ctl = KLController(kl_value, cfg.kl_target, cfg.kl_horizon)
    source_cfg = SourceConfig.of(cfg)
    if cfg.mode == "offline":
        source = OfflineSource(source_cfg, tokenizer, accelerator.process_index, accelerator.num_processes)
    else:
        source = OnlineSource(source_cfg, tokenizer, unwrapped, accelerator, start_iteration=start)
    cfg.variant = source.variant  # offline: the data's
    cfg.step_weighting = resolve_step_weighting(cfg.step_weighting, cfg.variant)
    accelerator.print(
        f"variant {cfg.variant}, step weighting {cfg.step_weighting}, GAE per {cfg.gae_level}, "
        f"compute dtype {dtype_name(unwrapped.compute_dtype)}"
        + (", gradient checkpointing" if unwrapped.gradient_checkpointing else "")
        + (f", sampling temperature {cfg.temperature}" if cfg.mode == "online" else "")
    )
    # PPOConfig refuses --rollouts-per-iteration < 1, so every process gets at least one rollout.
    per_process = math.ceil(cfg.rollouts_per_iteration / accelerator.num_processes)
    update_cfg = UpdateConfig.of(cfg)
    probe = None
    tracker = Tracker(cfg.report_to if accelerator.is_main_process else "none", out, out.name, asdict(cfg))
    if cfg.probe_every and accelerator.is_main_process:
        probe = TrainingProbe(source_cfg, tokenizer, unwrapped, start_iteration=start)
    t0 = time.time()
    bar = tqdm(range(start, cfg.iterations), desc="ppo", unit="it", disable=not accelerator.is_main_process)
    for it in bar:
        if probe is not None and probe.due(it):
            entry = probe.run(it)
            tracker.log(it, entry, "probe/")
            accelerator.print(f"probe after {it} updates: {entry}")
        samples, extra = source.next(per_process, it)
        stats = ppo_iteration(
            policy, unwrapped, optimizer, accelerator, samples, update_cfg, kl_ctl, tokenizer.pad_token_id, it
        )
        stats = {"iteration": it + 1, **extra, **stats, "seconds": round(time.time() - t0, 1)}
        # The log (and the summary's first/last) stays valid JSON: a diverged figure becomes null + a warning.
        log.append(json_safe(stats, f"{out / 'train_log.jsonl'} iteration {it + 1}"))
        tracker.log(it + 1, stats, "ppo/")
        bar.set_postfix(score=f"{stats['score']:.3f}", kl=f"{stats['kl']:.3f}", pg=f"{stats['pg_loss']:.3f}")
        if accelerator.is_main_process:
            write_log_history(out / "train_log.jsonl", log)
            if (it + 1) % cfg.save_every == 0 and it + 1 < cfg.iterations:
                tmp = out / "checkpoint.partial"
                shutil.rmtree(tmp, ignore_errors=True)  # a kill's leftover
                unwrapped.save(tmp / "adapter")
                torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
                (tmp / "state.json").write_text(json.dumps({"iteration": it + 1, "kl_coef": kl_ctl.value}))
                publish_dir(tmp, ckpt)
        accelerator.wait_for_everyone()
    if probe is not None and probe.due(cfg.iterations):
        entry = probe.run(cfg.iterations)
        tracker.log(cfg.iterations, entry, "probe/")
        accelerator.print(f"probe after {cfg.iterations} updates: {entry}")
    tracker.close()
    if hasattr(source, "close"):
        source.close()  # the rollout server, if any (an exception: the server dies with this process)
    if accelerator.is_main_process:
        tmp = out / "adapter.partial"
        unwrapped.save(tmp)
        write_model_info(tmp, cfg.icl_examples, stage="ppo", mode=cfg.mode, variant=cfg.variant)
        publish_dir(tmp, out / "adapter")
        # The checkpoint serves an interrupted run only; left here, a retrain would resume from it.
        shutil.rmtree(ckpt, ignore_errors=True)
        write_json_atomic(
            out / "summary.json",
            {
                "command": command_line(),
                "config": asdict(cfg),
                "processes": accelerator.num_processes,
                "compute_dtype": dtype_name(unwrapped.compute_dtype),
                "iterations": len(log),
                "seconds_this_run": round(time.time() - t0, 1),
                "first": log[0] if log else None,
                "last": log[-1] if log else None,
                "probe": probe.entries if probe is not None else None,
            },
        )
        accelerator.print(f"saved {out / 'adapter'}")


if __name__ == "__main__":
    main()
