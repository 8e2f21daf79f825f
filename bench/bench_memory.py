"""Peak memory of one PPO update and one estimator training step for Llama-3.2-3B-Instruct, measured on a
scaled-down copy and extrapolated to the real depth: no download.

The model is Llama-3.2-3B's shape (hidden 3072, intermediate 8192, 24 heads / 8 key-value heads of 128,
vocabulary 128,256, tied embeddings) with random weights and 1 and 2 decoder layers. Each measurement
runs in a fresh subprocess:

- ``ppo``: the project's PPO update (spa_rl.rl.update.ppo_iteration) on one rollout of L tokens, a
  quarter of them action tokens (``--act-fraction``): scoring (policy and value), the reference
  log-probs with the adapters disabled (no second model), GAE, one clipped update with AdamW over the
  LoRA adapters (r 8, all linear layers) and the value head. The frozen base weights are in the compute
  dtype (bf16 or fp32).
- ``estimator``: one training step of the paper profile's estimator (whole backbone + MLP head read at
  the end of each step, every 128 tokens; fp32 weights and AdamW state, bf16 autocast where set): the
  single-process path, no DeepSpeed. A warm-up step on 16 tokens first allocates AdamW's moments, so the
  measured step is a steady-state one (its "static" figure includes them).

Settings: ``fp32`` (no autocast, fp32 weights), ``bf16`` (bf16 autocast; PPO's frozen weights in bf16),
``bf16+ckpt`` (and gradient checkpointing of every decoder layer). On a CPU the figure is the process's
peak resident memory (``ru_maxrss``) less its resident memory before the model was built; on a GPU
``torch.cuda.max_memory_allocated`` (the CUDA context, ~0.5 GB, comes on top). 28 layers are
extrapolated as M(1) + 27 x (M(2) - M(1)): the per-layer cost times 28 plus what does not depend on
depth (embeddings, output layer and logits, optimizer state of those).

    python bench/bench_memory.py --output results/memory_3b/memory.json    # the whole grid: 36 measurements
    python bench/bench_memory.py --parts ppo --settings bf16+ckpt --seq-lens 1024 4096 --output out.json

The whole grid takes tens of minutes on 2 CPU cores (an fp32 PPO update at 4,096 tokens alone ~1.5 min of
CPU); ``--parts`` / ``--settings`` / ``--seq-lens`` pick a subset, and ``--output`` keeps every
measurement a file already holds, so several invocations fill one file. ``--estimator-vocab`` shrinks the
estimator's vocabulary where free memory is short (a 2-layer full fine-tune with the full vocabulary peaks
near 13 GB) and adds the missing rows' parameter state by computation.
"""

from __future__ import annotations

import json
import platform
import resource
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from spa_rl.cli import arg, parse  # noqa: E402

LLAMA_3B = dict(
    hidden_size=3072, intermediate_size=8192, num_attention_heads=24, num_key_value_heads=8, head_dim=128,
    vocab_size=128256, tie_word_embeddings=True, rms_norm_eps=1e-5, max_position_embeddings=131072,
    rope_theta=500000.0, bos_token_id=128000, eos_token_id=128009, pad_token_id=128004,
)  # fmt: skip
FULL_LAYERS = 28
SETTINGS = {"fp32": ("fp32", False), "bf16": ("bf16", False), "bf16+ckpt": ("bf16", True)}
GPUS = [("24 GB (RTX 4090, A10, L4)", 24), ("40 GB A100", 40), ("48 GB (A6000, L40S)", 48),
        ("80 GB A100 / H100", 80), ("141 GB H200", 141)]  # fmt: skip


@dataclass
class MemoryBenchConfig:
    # (Empty lists: the defaults; argparse's "extend" would add given values to a non-empty default.)
    parts: list[str] = arg(default_factory=list, help="ppo and/or estimator (default: both)", repeat=True)
    seq_lens: list[int] = arg(default_factory=list, help="tokens per sequence (default: 1024 2048 4096)",
                              repeat=True)  # fmt: skip
    settings: list[str] = arg(
        default_factory=list, help="among fp32, bf16, bf16+ckpt (default: all)", repeat=True
    )
    act_fraction: float = arg(0.25, "PPO: share of a rollout's tokens that are action tokens (log-probs)")
    step_every: int = arg(128, "estimator: one agent step every N tokens (the head reads each step's end)")
    estimator_vocab: int = arg(LLAMA_3B["vocab_size"], "estimator: a smaller vocabulary for machines whose free "
                               "memory cannot hold the full one's fp32 weights, gradients and AdamW moments; "
                               "the 28-layer figures then add the missing rows at 16 bytes each (computed, "
                               "marked 'vocab_adjusted_gb')")  # fmt: skip
    threads: int | None = arg(None, "torch threads in each measurement (default: torch's)")
    max_gb: float | None = arg(None, "CPU: stop a measurement with MemoryError past this much heap (RLIMIT_DATA), "
                               "rather than let the machine run out of memory")  # fmt: skip
    output: Path | None = arg(None, "also write the figures to this JSON file")
    child: str | None = arg(None, "internal: run one measurement (JSON) and print its result")


@dataclass
class Measurement:
    part: str
    setting: str
    layers: int
    seq_len: int
    device: str
    static_gb: float  # after the model (and optimizer) exist, before the step
    peak_gb: float  # the step's peak (both less the baseline)
    seconds: float
    extra: dict = field(default_factory=dict)


def _rss_gb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**30


def _peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def measure(
    part: str,
    setting: str,
    layers: int,
    seq_len: int,
    act_fraction: float,
    step_every: int,
    vocab: int | None = None,
) -> dict:
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig

    from spa_rl.estimator.model import EstimatorConfig, ProgressEstimator
    from spa_rl.rl.policy_value import PolicyWithValue
    from spa_rl.rl.ppo import KLController, Sample
    from spa_rl.rl.update import UpdateConfig, ppo_iteration

    cuda = torch.cuda.is_available()
    device = "cuda" if cuda else "cpu"
    dtype_name, ckpt = SETTINGS[setting]
    compute = torch.bfloat16 if dtype_name == "bf16" else torch.float32
    torch.manual_seed(0)
    base_rss = _rss_gb()

    def used() -> float:
        return torch.cuda.memory_allocated() / 2**30 if cuda else _rss_gb() - base_rss

    small = (
        {"vocab_size": vocab, "pad_token_id": vocab - 1, "bos_token_id": 0, "eos_token_id": 1}
        if vocab
        else {}
    )
    cfg = LlamaConfig(num_hidden_layers=layers, **(LLAMA_3B | small))
    cfg._attn_implementation = "sdpa"
    ids = torch.randint(0, min(cfg.vocab_size, 128000), (seq_len,)).tolist()
    extra: dict = {"vocab": cfg.vocab_size}
    if part == "ppo":
        # The frozen base in the compute dtype (ppo/train.py), LoRA + value head in fp32.
        base = AutoModelForCausalLM.from_config(cfg, dtype=compute)
        policy = PolicyWithValue.from_base(base).to(device)
        policy.compute_dtype = compute
        if ckpt:
            policy.enable_gradient_checkpointing()
        params = [p for p in policy.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=1e-5)
        extra["trainable_parameters"] = sum(p.numel() for p in params)
        n_act = max(2, int(seq_len * act_fraction))
        act_pos = list(range(seq_len - n_act, seq_len))  # one long answer block: the same count of logits
        sample = Sample(ids, act_pos, [n_act // 2 - 1, n_act - 1], [0.5, 1.0], 1.0)
        ucfg = UpdateConfig(variant="progress", step_weighting="none", gae_level="token", gamma=0.99, lam=0.95,
                            whiten_advantages=True, ppo_epochs=1, minibatch_size=1, grad_accum=1, clip=0.2,
                            value_clip=0.2, vf_coef=0.1, max_grad_norm=1.0, seed=0)  # fmt: skip
        accel = SimpleNamespace(device=device, backward=lambda loss: loss.backward(),
                                clip_grad_norm_=torch.nn.utils.clip_grad_norm_)  # fmt: skip
        static = used()
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        t0 = time.time()
        ppo_iteration(
            policy, policy, opt, accel, [sample], ucfg, KLController(0.3), LLAMA_3B["pad_token_id"], 0
        )
    else:
        lm = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)
        est_cfg = EstimatorConfig("bench", head="mlp", backbone="full", compute_dtype=dtype_name)
        model = ProgressEstimator(est_cfg, lm).to(device).train()
        if ckpt:
            model.activation_checkpointing_enable()
        opt = torch.optim.AdamW(model.parameters(), lr=3e-6)
        extra["trainable_parameters"] = sum(p.numel() for p in model.parameters())
        ends = list(range(step_every - 1, seq_len, step_every)) or [seq_len - 1]
        batch = {
            "input_ids": torch.tensor([ids], device=device),
            "attention_mask": torch.ones(1, seq_len, dtype=torch.long, device=device),
            "step_index": torch.tensor([[0, e] for e in ends], device=device),
            "step_row": torch.zeros(len(ends), dtype=torch.long, device=device),
            "target": torch.ones(1, device=device),
        }
        # AdamW's two moments exist from the first step on: a warm-up step on 16 tokens allocates them, so
        # the measured step is a steady-state one (weights, moments, gradients and activations at once).
        warm = {"input_ids": batch["input_ids"][:, :16], "attention_mask": batch["attention_mask"][:, :16],
                "step_index": torch.tensor([[0, 15]], device=device), "step_row": batch["step_row"][:1],
                "target": batch["target"]}  # fmt: skip
        model(**warm)["loss"].backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        static = used()
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        t0 = time.time()
        loss = model(**batch)["loss"]
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    seconds = time.time() - t0
    peak = torch.cuda.max_memory_allocated() / 2**30 if cuda else _peak_rss_gb() - base_rss
    return asdict(Measurement(part, setting, layers, seq_len, device, round(static, 3), round(peak, 3),
                              round(seconds, 1), extra))  # fmt: skip


def run_child(spec: dict, threads: int | None, max_gb: float | None = None) -> dict:
    cmd = [sys.executable, __file__, "--child", json.dumps(spec)]
    if max_gb:
        cmd += ["--max-gb", str(max_gb)]
    env = None
    if threads:
        import os

        env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    res = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if res.returncode != 0:
        raise SystemExit(f"measurement {spec} failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def extrapolate(rows: list[dict]) -> list[dict]:
    """Per (part, setting, L): M(28) = M(1) + 27 x (M(2) - M(1)), for the peak and the static part."""
    out = []
    by = {(r["part"], r["setting"], r["seq_len"], r["layers"]): r for r in rows}  # one vocabulary per part
    for (part, setting, seq, layers), r1 in by.items():
        r2 = by.get((part, setting, seq, 2))
        if layers != 1 or r2 is None:
            continue
        per_layer = r2["peak_gb"] - r1["peak_gb"]
        per_layer_static = r2["static_gb"] - r1["static_gb"]
        # A smaller vocabulary (estimator, --estimator-vocab): the missing embedding rows' fp32 weight,
        # gradient and two AdamW moments, 16 bytes per parameter, computed, not measured.
        missing = LLAMA_3B["vocab_size"] - r1.get("extra", {}).get("vocab", LLAMA_3B["vocab_size"])
        adjust = missing * LLAMA_3B["hidden_size"] * 16 / 2**30
        static_adjust = missing * LLAMA_3B["hidden_size"] * 4 / 2**30
        out.append({
            "part": part, "setting": setting, "seq_len": seq,
            "per_layer_gb": round(per_layer, 3),
            "depth_independent_gb": round(r1["peak_gb"] - per_layer + adjust, 3),
            "static_28_gb": round(r1["static_gb"] + (FULL_LAYERS - 1) * per_layer_static + static_adjust, 2),
            "peak_28_gb": round(r1["peak_gb"] + (FULL_LAYERS - 1) * per_layer + adjust, 2),
            "vocab_adjusted_gb": round(adjust, 2),
        })  # fmt: skip
    return out


def fits(gb: float) -> str:
    return " ".join("yes" if gb <= cap * 0.95 else "no" for _, cap in GPUS)  # 5% for the CUDA context etc.


def main() -> None:
    cfg = parse(MemoryBenchConfig, doc=__doc__)
    if cfg.child:
        if cfg.max_gb:
            limit = int(cfg.max_gb * 2**30)
            resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))
        spec = json.loads(cfg.child)
        print(json.dumps(measure(**spec)))
        return
    import torch

    cfg.parts = cfg.parts or ["ppo", "estimator"]
    cfg.seq_lens = cfg.seq_lens or [1024, 2048, 4096]
    cfg.settings = cfg.settings or list(SETTINGS)
    unknown = set(cfg.settings) - set(SETTINGS) | set(cfg.parts) - {"ppo", "estimator"}
    if unknown:
        raise SystemExit(
            f"unknown part or setting {sorted(unknown)} (parts: ppo estimator; settings: {list(SETTINGS)})"
        )
    measured: dict[tuple, dict] = {}
    if cfg.output and cfg.output.exists():  # a rerun keeps what earlier runs into the same file measured
        measured = {_key(r): r for r in json.loads(cfg.output.read_text())["measurements"]}
    t0 = time.time()
    for part in cfg.parts:
        for setting in cfg.settings:
            for seq in cfg.seq_lens:
                for layers in (1, 2):
                    spec = dict(part=part, setting=setting, layers=layers, seq_len=seq,
                                act_fraction=cfg.act_fraction, step_every=cfg.step_every)  # fmt: skip
                    if part == "estimator" and cfg.estimator_vocab != LLAMA_3B["vocab_size"]:
                        spec["vocab"] = cfg.estimator_vocab
                    r = measured.get(_key(spec))
                    if r is None:
                        r = measured[_key(spec)] = run_child(spec, cfg.threads, cfg.max_gb)
                        if cfg.output:
                            _write(cfg, list(measured.values()), torch)
                    print(f"  {part:9s} {setting:9s} L={seq:5d} layers={layers}: static {r['static_gb']:6.2f} GB, "
                          f"peak {r['peak_gb']:6.2f} GB ({r['seconds']} s)", flush=True)  # fmt: skip
    rows = sorted(measured.values(), key=_key)
    ext = extrapolate(rows)
    where = "cuda max_memory_allocated" if torch.cuda.is_available() else "CPU peak RSS less the baseline"
    print(f"\nLlama-3.2-3B shape, {FULL_LAYERS} layers extrapolated from 1 and 2 ({where}); GB = 2^30 bytes")
    print("GPU columns: " + " | ".join(name for name, _ in GPUS) + " (fits within 95%?)")
    print(
        f"{'part':9s} {'setting':9s} {'L':>5s} {'per layer':>9s} {'rest':>6s} {'static':>7s} {'peak':>7s}  fits"
    )
    for e in ext:
        print(f"{e['part']:9s} {e['setting']:9s} {e['seq_len']:5d} {e['per_layer_gb']:9.3f} "
              f"{e['depth_independent_gb']:6.2f} {e['static_28_gb']:7.2f} {e['peak_28_gb']:7.2f}  "
              f"{fits(e['peak_28_gb'])}"
              + (f"  (incl. {e['vocab_adjusted_gb']} GB computed for the vocabulary)" if e["vocab_adjusted_gb"]
                 else ""))  # fmt: skip
    print(f"({time.time() - t0:.0f} s)")
    if cfg.output:
        _write(cfg, rows, torch, ext)


def _key(r: dict) -> tuple:
    vocab = r.get("vocab") or r.get("extra", {}).get("vocab") or LLAMA_3B["vocab_size"]
    return (r["part"], r["setting"], r["layers"], r["seq_len"], vocab)


def _write(cfg: MemoryBenchConfig, rows: list[dict], torch, ext: list[dict] | None = None) -> None:
    from spa_rl.agent.schema import command_line, write_json_atomic

    cfg.output.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(cfg.output, {
        "command": command_line(), "config": {k: str(v) if isinstance(v, Path) else v
                                               for k, v in asdict(cfg).items() if k != "child"},
        "machine": {"platform": platform.platform(), "processor": platform.processor(),
                    "torch": torch.__version__, "cuda": torch.cuda.is_available()},
        "measurements": rows, "extrapolated_28_layers": ext if ext is not None else extrapolate(rows),
        "gpus_gb": dict(GPUS),
    })  # fmt: skip


if __name__ == "__main__":
    main()
