"""CPU speed benchmark of the training and rollout stages, today's path (fp32, the in-context example in
every prompt) against the faster settings, alternating, in one run, with ratios:

- SFT: tokens/s of a training step (forward, backward, AdamW) on ALFWorld expert trajectories;
- estimator: tokens/s of the frozen backbone reading every step position (the demo's estimator);
- PPO: seconds per rollout of one PPO update (scoring, reference, GAE, one epoch of minibatch-1 steps;
  ``--ppo-epochs 1,2,4`` also times updates of several epochs);
- rollouts: episodes/min of greedy ALFWorld episodes on the demo's shape (8 episodes, fixed steps).

    python bench/bench_speed.py                                  # everything, fp32 vs bf16
    python bench/bench_speed.py --parts sft,ppo --trajectories 4 --output results/bench_speed.json

Settings compared (``--settings``): ``fp32`` (today's default), ``bf16`` (bf16 autocast for training,
bf16 weights for generation: the default where the CPU has bf16 instructions), where the prompt
builder offers it, ``bf16-icl0`` (bf16 and the prompt without the in-context example, for the stages of
trained agents), and for rollouts ``fp32-generate`` (fp32 through transformers' ``generate``: decoding as
it was before the fast decoder) and ``before`` (that, and ALFWorld without the memoised grammar parsing:
the rollout path before issue 17). Decode ms/step against the memory-traffic bound: bench/bench_decode.py;
ALFWorld steps with and without the parse memo: bench/bench_alfworld_steps.py.
"""

from __future__ import annotations

import inspect
import platform
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from types import SimpleNamespace

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from envs import load_tasks  # noqa: E402
from envs.alfworld import env as alfworld_env  # noqa: E402
from spa_rl.agent.backends import GenerationConfig  # noqa: E402
from spa_rl.agent.backends.hf import HFPolicy, load_tokenizer  # noqa: E402
from spa_rl.agent.chat import render_chat  # noqa: E402
from spa_rl.agent.experts import expert_messages  # noqa: E402
from spa_rl.agent.runner import RolloutConfig, run_rollouts  # noqa: E402
from spa_rl.agent.schema import command_line, write_json_atomic, write_text_atomic  # noqa: E402
from spa_rl.cli import arg, parse  # noqa: E402
from spa_rl.models.precision import autocast, cpu_has_bf16  # noqa: E402
from spa_rl.rl.policy_value import PolicyWithValue  # noqa: E402
from spa_rl.rl.ppo import KLController, to_sample  # noqa: E402
from spa_rl.training import IGNORE_INDEX, labelled_positions_loss  # noqa: E402

SETTINGS = {
    "fp32": (torch.float32, 1),
    "bf16": (torch.bfloat16, 1),
    "bf16-icl0": (torch.bfloat16, 0),
    "fp32-generate": (torch.float32, 1),
    "before": (torch.float32, 1),
}
# Rollouts only (the other parts do not decode or play): fp32-generate decodes through transformers'
# generate (HFPolicy(fast_decode=False)), the decoding path before the fast decoder; "before" also plays
# ALFWorld without the memoised grammar parsing (envs/alfworld/env.py, PARSES): the whole rollout path as it
# was before issue 17.
ROLLOUTS_ONLY = {"fp32-generate", "before"}


@dataclass
class SpeedBenchConfig:
    model: str = arg("models/smollm2-135m-instruct", "model folder (Hugging Face format)")
    parts: str = arg("sft,estimator,ppo,rollouts", "comma-separated stages to time")
    settings: str | None = arg(None, "comma-separated among fp32, bf16, bf16-icl0, fp32-generate and before "
                               "(these two: rollouts only); default: all that apply here")  # fmt: skip
    trajectories: int = arg(4, "expert trajectories for SFT / estimator / PPO")
    ppo_epochs: str = arg("1", "comma-separated PPO epochs per update to time; a count other than 1 is "
                          "reported as SETTING-e<N> (e.g. fp32-e4)")  # fmt: skip
    episodes: int = arg(8, "rollout episodes played together")
    steps: int = arg(4, "steps per rollout episode")
    repeats: int = arg(2, "runs per part and setting (the best counts)")
    output: Path | None = arg(None, "also write the figures to this JSON file")
    profile: Path | None = arg(None, "also profile one more call of each SFT / estimator / PPO timing "
                               "(torch.profiler) and write the tables to this text file")  # fmt: skip


def supports_icl0() -> bool:
    return "icl_examples" in inspect.signature(expert_messages).parameters


def conversations(n: int, icl: int) -> list[tuple[list[dict], int]]:
    tasks = [t for t in load_tasks("alfworld", "train") if t.task_type == "pick"][:n]
    kw = {"icl_examples": icl} if supports_icl0() else {}
    return [expert_messages(t, **kw) for t in tasks]


# --profile: one more call of each timed part under torch.profiler, its table kept under the part's label.
PROFILES: dict[str, str] | None = None
_label = ""


def timed(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    if PROFILES is not None:
        from torch.profiler import profile

        with profile() as prof:
            fn()
        PROFILES[_label] = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15)
    return best


def bench_sft(model_path, tok, convs, dtype, repeats) -> dict:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-6)
    batches = []
    for msgs, start in convs:
        rc = render_chat(tok, msgs, train_from=start, max_length=4096)
        labels = [t if m else IGNORE_INDEX for t, m in zip(rc.input_ids, rc.assistant_mask, strict=True)]
        ids = torch.tensor([rc.input_ids])
        batches.append(
            {"input_ids": ids, "labels": torch.tensor([labels]), "attention_mask": torch.ones_like(ids)}
        )
    tokens = sum(b["input_ids"].numel() for b in batches)

    def run():
        for b in batches:
            with autocast("cpu", dtype):
                loss = labelled_positions_loss(model, b)
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)

    s = timed(run, repeats)
    return {"seconds": round(s, 2), "tokens": tokens, "tokens_per_s": round(tokens / s, 1)}


def bench_estimator(model_path, tok, convs, dtype, repeats) -> dict:
    from transformers import AutoModelForCausalLM

    lm = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32).eval()
    trunk = getattr(lm, lm.base_model_prefix)
    seqs = [render_chat(tok, m, train_from=s, max_length=4096) for m, s in convs]
    tokens = sum(len(r.input_ids) for r in seqs)

    @torch.no_grad()
    def run():
        for r in seqs:
            with autocast("cpu", dtype):
                h = trunk(input_ids=torch.tensor([r.input_ids])).last_hidden_state
            h[0, r.turn_ends].float()

    s = timed(run, repeats)
    return {"seconds": round(s, 2), "tokens": tokens, "tokens_per_s": round(tokens / s, 1)}


def bench_ppo(model_path, tok, convs, dtype, repeats, epochs: int = 1) -> dict:
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "ppo_train", Path(__file__).resolve().parents[1] / "ppo/train.py"
    )
    recipe = importlib.util.module_from_spec(spec)
    sys.modules["ppo_train"] = recipe  # dataclasses look their module up
    spec.loader.exec_module(recipe)

    # Expert conversations as PPO records: a small reward on every step, sampled at T 0.7.
    recs = [SimpleNamespace(messages=m, prefix_len=start, temperature=0.7,
                            step_rewards=[0.1] * sum(x["role"] == "assistant" for x in m[start:]))
            for m, start in convs]  # fmt: skip
    samples = [s for r in recs if (s := to_sample(tok, r, 4096))]
    cfg = recipe.PPOConfig(model=model_path, lr=1e-6, ppo_epochs=epochs, minibatch_size=1, grad_accum=2)
    # As ppo/train.py: the frozen base weights in the compute dtype (trees before that held them in fp32).
    held = {"dtype": dtype} if "dtype" in inspect.signature(PolicyWithValue.create).parameters else {}
    policy = PolicyWithValue.create(model_path, **held)
    policy.compute_dtype = dtype
    opt = torch.optim.AdamW([p for p in policy.parameters() if p.requires_grad], lr=cfg.lr)
    acc = SimpleNamespace(device="cpu", backward=lambda loss: loss.backward(),
                          clip_grad_norm_=torch.nn.utils.clip_grad_norm_)  # fmt: skip
    s = timed(lambda: recipe.ppo_iteration(policy, policy, opt, acc, samples, cfg, KLController(0.0),
                                           tok.pad_token_id, 0), repeats)  # fmt: skip
    tokens = sum(len(x.input_ids) for x in samples)
    return {"seconds": round(s, 2), "rollouts": len(samples), "tokens": tokens,
            "seconds_per_rollout": round(s / len(samples), 2)}  # fmt: skip


def bench_rollouts(
    model_path, tok, dtype, icl, episodes, steps, repeats, fast_decode=True, memo=True
) -> dict:
    tasks = [t for t in load_tasks("alfworld", "unseen") if t.task_type == "pick"][:episodes]
    kw = {}
    if "icl_examples" in inspect.signature(run_rollouts).parameters:
        kw["icl_examples"] = icl
    elif icl != 1:
        raise SystemExit(
            "this tree's run_rollouts has no icl_examples: the prompt without the example is not here"
        )
    cfg = RolloutConfig(batch_size=episodes, max_steps=steps,
                        generation=GenerationConfig(max_new_tokens=96, temperature=0.0))  # fmt: skip
    best, out = float("inf"), {}
    for _ in range(repeats):
        policy = HFPolicy(model_path, device="cpu", dtype="bf16" if dtype == torch.bfloat16 else "fp32",
                          batch_size=episodes, tokenizer=tok, fast_decode=fast_decode)  # fmt: skip
        parses = getattr(alfworld_env, "PARSES", None)
        if parses is not None:
            parses.enabled = memo
        elif not memo:
            raise SystemExit("this tree has no memoised grammar parsing to switch off")
        try:
            with tempfile.TemporaryDirectory() as tmp:
                t0 = time.perf_counter()
                recs, stats = run_rollouts(tasks, policy, Path(tmp) / "e.jsonl", cfg, progress=False, **kw)
                s = time.perf_counter() - t0
        finally:
            if parses is not None:
                parses.enabled = True
        if s < best:
            best = s
            out = {"seconds": round(s, 2), "episodes": len(recs), "steps": stats.steps,
                   "generated_tokens": stats.completion_tokens, "prompt_tokens": stats.prompt_tokens,
                   "episodes_per_min": round(len(recs) / s * 60, 2),
                   "generated_tokens_per_s": round(stats.completion_tokens / s, 1)}  # fmt: skip
    return out


def main(argv: list[str] | None = None) -> None:
    global PROFILES, _label
    cfg = parse(SpeedBenchConfig, argv=argv, doc=__doc__)
    if cfg.profile:
        PROFILES = {}

    settings = (
        cfg.settings.split(",")
        if cfg.settings
        else ["fp32", "bf16"]
        + (["bf16-icl0"] * supports_icl0())
        + ["fp32-generate", "before"] * ("rollouts" in cfg.parts)
    )
    unknown = set(settings) - set(SETTINGS)
    if unknown:
        raise SystemExit(f"unknown settings {sorted(unknown)}; known: {', '.join(SETTINGS)}")
    if "bf16-icl0" in settings and not supports_icl0():
        raise SystemExit("bf16-icl0: this tree's prompt builder has no icl_examples setting")
    tok = load_tokenizer(cfg.model)
    parts = cfg.parts.split(",")
    results: dict[str, dict[str, dict]] = {p: {} for p in parts}
    convs = {icl: conversations(cfg.trajectories, icl) for icl in {SETTINGS[s][1] for s in settings}}
    print(f"cpu bf16 instructions: {cpu_has_bf16()}; torch threads {torch.get_num_threads()}")
    for part in parts:
        # Alternate the order of the settings between parts so that drift on a shared machine evens out.
        for name in settings if parts.index(part) % 2 == 0 else list(reversed(settings)):
            dtype, icl = SETTINGS[name]
            if name in ROLLOUTS_ONLY and part != "rollouts":
                continue
            _label = f"{part} {name}"
            if part == "sft":
                r = bench_sft(cfg.model, tok, convs[icl], dtype, cfg.repeats)
            elif part == "estimator":
                r = bench_estimator(cfg.model, tok, convs[icl], dtype, cfg.repeats)
            elif part == "ppo":
                for e in map(int, cfg.ppo_epochs.split(",")):
                    r = bench_ppo(cfg.model, tok, convs[icl], dtype, cfg.repeats, e) | {"ppo_epochs": e}
                    results[part][name if e == 1 else f"{name}-e{e}"] = r
                    print(f"{part:<10} {name:<10} {r}", flush=True)
                continue
            elif part == "rollouts":
                fast, memo = name not in ROLLOUTS_ONLY, name != "before"
                r = bench_rollouts(
                    cfg.model, tok, dtype, icl, cfg.episodes, cfg.steps, cfg.repeats, fast, memo
                )
            else:
                raise SystemExit(f"unknown part {part!r}")
            results[part][name] = r
            print(f"{part:<10} {name:<10} {r}", flush=True)
    key = {"sft": "tokens_per_s", "estimator": "tokens_per_s", "ppo": "seconds_per_rollout",
           "rollouts": "episodes_per_min"}  # fmt: skip
    ratios = {}
    for part, rs in results.items():
        base = rs.get("fp32", {}).get(key[part])
        for name, r in rs.items():
            if base and name != "fp32":
                x = r[key[part]] / base
                ratios[f"{part}/{name}"] = round(1 / x if part == "ppo" else x, 2)
    print("speed-ups over fp32 with the example (higher is faster):", ratios)
    # Rollouts against the paths before this round too: decoding only (fp32-generate), everything (before).
    against = {}
    for base_name in ROLLOUTS_ONLY:
        base = results.get("rollouts", {}).get(base_name, {}).get("episodes_per_min")
        against[base_name] = {
            f"rollouts/{name}": round(r["episodes_per_min"] / base, 2)
            for name, r in results.get("rollouts", {}).items()
            if base and name != base_name
        }
        if against[base_name]:
            print(f"rollout speed-ups over {base_name}:", against[base_name])
    if PROFILES:
        text = "".join(f"== {label} ==\n{table}\n" for label, table in PROFILES.items())
        write_text_atomic(cfg.profile, f"{command_line()}\n\n{text}")
    if cfg.output:
        write_json_atomic(cfg.output, {"command": command_line(), "host": {"machine": platform.machine(),
                          "threads": torch.get_num_threads(), "cpu_bf16": cpu_has_bf16()},
                          "args": asdict(cfg) | {"output": str(cfg.output), "profile": cfg.profile and str(cfg.profile)}, "results": results,
                          "speedups_over_fp32": ratios,
                          "rollout_speedups_over_fp32_generate": against.get("fp32-generate", {}),
                          "rollout_speedups_over_before": against.get("before", {})})  # fmt: skip


if __name__ == "__main__":
    main()
