"""Per-step values c_t, their fusion with grounding into PPO rewards r_t, and the PPO data file.

r_t = alpha * c_t + beta * g_t  (paper: alpha 1, beta 0.5), g_t = the environment's recorded
``grounded`` flag. The step-value variant picks c_t (the paper's ablations):

- ``progress``: the progress estimator's c_t (SPA-RL). Sums to the estimator's prediction of R.
- ``sparse``: R on the last step, 0 elsewhere; with beta 0 by default (plain PPO on the final reward).
- ``mean``: R / T on every step.
- ``random``: a random split (Dirichlet(1,...,1), seeded per rollout) that sums to R.
- ``mc``: Monte-Carlo values, c_t = V(s_{t+1}) - V(s_t), V(s_T) = R, V(s_t) from sampled
  continuations (prm/mc_values.py). Sums to R - V(s_0).
- ``no-progress``: c_t = 0 (grounding only).
- ``no-grounding``: the estimator's c_t with beta 0.
- ``public-code``: the SPA-RL public code's data script: every step gets R minus the mean final reward
  of the task's other rollouts; g_t is 0 when the observation that follows step t in the conversation
  contains "Nothing happens", else 1 (the last step, whose observation is not in the conversation,
  gets 1); rollouts of 35 steps or more are dropped.
"""

from __future__ import annotations

import json
import random
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from envs import env_spec
from spa_rl.agent.prompts import recorded_icl
from spa_rl.agent.schema import REWARD_RANGE, RecordError, TrajectoryRecord, json_lines
from spa_rl.validate import is_finite_number

PUBLIC_CODE_MAX_STEPS = 35
# Fused step rewards r_t = alpha c_t + beta g_t are of order 1 (c_t: shares or differences of rewards in
# [0, 1], g_t: 0 or 1); one beyond this is a broken input (an estimator's overflow, a mistyped alpha) and
# would reach PPO's value loss as Infinity, so it is refused where it is made and where it is read.
STEP_REWARD_BOUND = 1e6


def final_reward(rec: TrajectoryRecord) -> float:
    """The reward a rollout is scored by: success (0/1) for ALFWorld and VirtualHome, the score in
    [0, 1] for WebShop."""
    if env_spec(rec.env).graded:
        return float(rec.reward)
    return 1.0 if rec.success else 0.0


@dataclass(frozen=True)
class StepInputs:
    """What a variant may read besides the rollout: the estimator's c_t, Monte-Carlo V(s_t), the mean final
    reward of the task's other rollouts, a seed."""

    estimator: list[float] | None = None
    mc: list[float] | None = None
    others_mean: float | None = None
    seed: int = 0


@dataclass(frozen=True)
class Variant:
    """One step-value variant: how it computes c_t and everything the stages derive from it."""

    name: str
    label: str  # the report's row label
    compute: Callable[[TrajectoryRecord, float, StepInputs], list[float]]  # (rollout, R, inputs) -> c_t
    needs: str | None = None  # "estimator" | "mc" | "others_mean": the input it cannot do without
    beta: float = 0.5  # default grounding weight (the paper's 0.5)
    online: bool = True  # computable on fresh rollouts (no Monte-Carlo continuations, no sibling rollouts)
    grounding: str = "recorded"  # g_t: the environment's flag | "nothing-happens": the public code's test
    max_steps: int | None = None  # fuse_rewards drops rollouts of this many steps or more by default
    step_weighting: str = "none"  # PPO's --step-weighting auto: "public-code" multiplies r_t by (T - t - 1)
    ablation: bool = False  # one of the paper's reward ablations (the study report's ablation table)


REGISTRY: dict[str, Variant] = {}  # in the report's row order


def variant(
    name: str,
    label: str,
    *,
    needs: str | None = None,
    beta: float = 0.5,
    online: bool = True,
    grounding: str = "recorded",
    max_steps: int | None = None,
    step_weighting: str = "none",
    ablation: bool = False,
):
    """Register a step-value variant: ``@variant("mean", "ablation: ...")`` over ``f(rec, R, inputs)``."""

    def register(fn: Callable[[TrajectoryRecord, float, StepInputs], list[float]]):
        if name in REGISTRY:
            raise ValueError(f"step-value variant {name!r} is registered twice")
        REGISTRY[name] = Variant(
            name, label, fn, needs, beta, online, grounding, max_steps, step_weighting, ablation
        )
        return fn

    return register


def _given(values: list[float] | None, rec: TrajectoryRecord, what: str) -> list[float]:
    if values is None or len(values) != rec.n_steps:
        raise ValueError(f"{rec.task_id}#{rec.rollout}: need {rec.n_steps} {what}")
    return list(values)


@variant("sparse", "PPO (sparse reward)", beta=0.0)
def _sparse(rec, R, inp):
    return [0.0] * (rec.n_steps - 1) + [R]


@variant("progress", "SPA-RL", needs="estimator")
def _progress(rec, R, inp):
    return _given(inp.estimator, rec, "estimator values for variant 'progress'")


@variant("mean", "ablation: uniform split (mean)", ablation=True)
def _mean(rec, R, inp):
    return [R / rec.n_steps] * rec.n_steps


@variant("random", "ablation: random split", ablation=True)
def _random(rec, R, inp):
    rng = random.Random(f"{inp.seed}:{rec.task_id}:{rec.rollout}")
    w = [rng.expovariate(1.0) for _ in range(rec.n_steps)]  # normalised exponentials = Dirichlet(1, ..., 1)
    s = sum(w)
    return [R * x / s for x in w]


@variant("mc", "ablation: Monte-Carlo step values", needs="mc", online=False, ablation=True)
def _mc(rec, R, inp):
    v = _given(inp.mc, rec, f"V(s_0..s_{rec.n_steps - 1}) values for 'mc'") + [R]
    return [v[t + 1] - v[t] for t in range(rec.n_steps)]


@variant("no-progress", "ablation: grounding only", ablation=True)
def _no_progress(rec, R, inp):
    return [0.0] * rec.n_steps


@variant("no-grounding", "ablation: progress only", needs="estimator", beta=0.0, ablation=True)
def _no_grounding(rec, R, inp):
    return _given(inp.estimator, rec, "estimator values for variant 'no-grounding'")


@variant("public-code", "public-code rewards", needs="others_mean", online=False, grounding="nothing-happens",
         max_steps=PUBLIC_CODE_MAX_STEPS, step_weighting="public-code")  # fmt: skip
def _public_code(rec, R, inp):
    if inp.others_mean is None:
        raise ValueError("'public-code' needs the mean final reward of the task's other rollouts")
    return [R - inp.others_mean] * rec.n_steps


# Views derived from the registry (CLI choices, stage checks, report rows).
VARIANTS = tuple(REGISTRY)
NEEDS_ESTIMATOR = tuple(n for n, v in REGISTRY.items() if v.needs == "estimator")
DEFAULT_BETA = {n: v.beta for n, v in REGISTRY.items()}
ONLINE_VARIANTS = tuple(n for n, v in REGISTRY.items() if v.online)
REPORT_LABELS = {"sft": "SFT"} | {n: v.label for n, v in REGISTRY.items()}


def get_variant(name: str) -> Variant:
    if name not in REGISTRY:
        raise ValueError(f"unknown step-value variant {name!r}; known: {', '.join(REGISTRY)}")
    return REGISTRY[name]


def step_values(
    variant: str,
    rec: TrajectoryRecord,
    estimator_values: list[float] | None = None,
    mc_values: list[float] | None = None,
    others_mean: float | None = None,
    seed: int = 0,
) -> list[float]:
    """c_t for every step of ``rec`` under ``variant``."""
    v = get_variant(variant)
    if rec.n_steps == 0:
        return []
    return v.compute(rec, final_reward(rec), StepInputs(estimator_values, mc_values, others_mean, seed))


def grounding(variant: str, rec: TrajectoryRecord) -> list[float]:
    """g_t: the recorded flag, or the public code's string test for ``public-code``."""
    if get_variant(variant).grounding == "nothing-happens":
        # The conversation holds the observation after every step but the last one.
        seen = [s.observation for s in rec.steps[:-1]]
        return [0.0 if "Nothing happens" in o else 1.0 for o in seen] + [1.0]
    return [1.0 if s.grounded else 0.0 for s in rec.steps]


@dataclass
class PPORecord:
    """One rollout ready for PPO: the conversation and a reward per agent step."""

    env: str
    task_id: str
    rollout: int
    messages: list[dict[str, str]]
    prefix_len: int
    n_steps: int
    reward: float  # final reward R
    success: bool
    values: list[float]  # c_t
    grounding: list[float]  # g_t
    step_rewards: list[float]  # r_t = alpha c_t + beta g_t
    variant: str
    alpha: float
    beta: float
    temperature: float  # the sampling temperature the rollout was played at (PPO scores it at this one)
    meta: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False)


def is_temperature(t: Any) -> bool:
    """A sampling temperature as hand-off files hold it: a finite JSON number >= 0 (0: greedy)."""
    return is_finite_number(t) and t >= 0


def sampling_temperature(rec: TrajectoryRecord) -> float:
    """The temperature a rollout was sampled at, as the runner recorded it in ``meta``."""
    t = rec.meta.get("temperature")
    if not is_temperature(t):
        raise RecordError(
            f"{rec.task_id}#{rec.rollout}: meta.temperature (the sampling temperature, which PPO's "
            f"log-probabilities must use) must be a finite number >= 0, got {t!r}"
        )
    return float(t)


def fuse(rec: TrajectoryRecord, variant: str, values: list[float], alpha: float, beta: float) -> PPORecord:
    g = grounding(variant, rec)
    r = [alpha * c + beta * gt for c, gt in zip(values, g, strict=True)]
    for t, (rt, c) in enumerate(zip(r, values, strict=True)):
        # Refused here, before it is written to the PPO data or trained on online.
        if not is_finite_number(rt, STEP_REWARD_BOUND):
            raise ValueError(
                f"{rec.task_id}#{rec.rollout} step {t}: fused reward {rt!r} (alpha {alpha!r} x c_t {c!r} + "
                f"beta {beta!r} x g_t {g[t]!r}) is not a finite number with |r| <= {STEP_REWARD_BOUND:g}"
            )
    return PPORecord(
        env=rec.env,
        task_id=rec.task_id,
        rollout=rec.rollout,
        messages=rec.messages,
        prefix_len=rec.prefix_len,
        n_steps=rec.n_steps,
        reward=final_reward(rec),
        success=rec.success,
        values=values,
        grounding=g,
        step_rewards=r,
        variant=variant,
        alpha=alpha,
        beta=beta,
        temperature=sampling_temperature(rec),
        meta={
            "split": rec.split,
            "task_type": rec.task_type,
            # the rollout's in-context examples (records older than the setting's record: 1)
            "icl_examples": recorded_icl(rec.meta, f"{rec.task_id}#{rec.rollout}"),
        },
    )


def _floats(d: dict, name: str, n: int, where: str, bound: float = sys.float_info.max) -> list[float]:
    v = d.get(name)
    if not isinstance(v, list) or len(v) != n:
        raise RecordError(f"{where}: field '{name}' must be a list of {n} numbers (one per step)")
    for i, x in enumerate(v):
        if not is_finite_number(x, bound):
            limit = "" if bound == sys.float_info.max else f" with |x| <= {bound:g}"
            raise RecordError(f"{where}: field '{name}'[{i}] must be a finite number{limit}, got {x!r}")
    return [float(x) for x in v]


def _number(d: dict, name: str, default: float, where: str, span: tuple[float, float] | None = None) -> float:
    v = d.get(name, default)
    if not is_finite_number(v) or (span is not None and not span[0] <= v <= span[1]):
        within = f" in [{span[0]}, {span[1]}]" if span else ""
        raise RecordError(f"{where}: field '{name}' must be a finite number{within}, got {v!r}")
    return float(v)


def read_ppo_data(path: str | Path) -> list[PPORecord]:
    """Read and validate a PPO data file (JSONL)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"PPO data {path} does not exist (make it with prm/fuse_rewards.py)")
    out = []
    for where, d in json_lines(path):
        if not isinstance(d, dict):
            raise RecordError(f"{where}: a record must be an object")
        for name, kind in (("env", str), ("task_id", str), ("rollout", int), ("messages", list),
                           ("prefix_len", int), ("n_steps", int), ("variant", str)):  # fmt: skip
            if not isinstance(d.get(name), kind) or isinstance(d.get(name), bool):
                raise RecordError(f"{where}: field '{name}' must be {kind.__name__}")
        T = d["n_steps"]
        turns = sum(
            1
            for m in d["messages"][d["prefix_len"] :]
            if isinstance(m, dict) and m.get("role") == "assistant"
        )
        if turns != T:
            raise RecordError(f"{where}: {turns} agent turns after prefix_len but n_steps is {T}")
        temp = d.get("temperature")
        if not is_temperature(temp):
            raise RecordError(
                f"{where}: field 'temperature' (the rollout's sampling temperature) must be a finite "
                f"number >= 0, got {temp!r}; PPO data written before it was recorded must be rebuilt "
                "with prm/fuse_rewards.py"
            )
        out.append(
            PPORecord(
                env=d["env"],
                task_id=d["task_id"],
                rollout=d["rollout"],
                messages=d["messages"],
                prefix_len=d["prefix_len"],
                n_steps=T,
                reward=_number(d, "reward", 0.0, where, REWARD_RANGE),
                success=bool(d.get("success", False)),
                values=_floats(d, "values", T, where),
                grounding=_floats(d, "grounding", T, where),
                step_rewards=_floats(d, "step_rewards", T, where, STEP_REWARD_BOUND),
                variant=d["variant"],
                alpha=_number(d, "alpha", 1.0, where),
                beta=_number(d, "beta", 0.5, where),
                temperature=float(temp),
                meta=d.get("meta") or {},
            )
        )
    if not out:
        raise RecordError(f"{path}: no records")
    return out


def resolve_step_weighting(requested: str, variant: str) -> str:
    """``auto``: the public code's (T - t - 1) weighting goes with its variant, none with the others."""
    if requested != "auto":
        return requested
    v = REGISTRY.get(variant)  # data of a variant this version does not know: no weighting
    return v.step_weighting if v is not None else "none"
