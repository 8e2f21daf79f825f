"""Critic-free advantage estimators: one advantage per agent step, computed from a GROUP of rollouts of the
same task (offline: every exploration rollout of a task; online: the G rollouts drawn for each task). The
PPO recipe then gives every action token of step t that step's advantage, in place of GAE's.

A rollout is a ``GroupMember``: its final reward R (0/1 on ALFWorld, graded in [0, 1] on WebShop), the
observation the agent saw before each step's action, and each step's ``grounded`` flag (1 valid, 0 not).

- ``gae``: PPO's generalised advantage estimation with a value head. It needs the critic and per-token
  values, so the PPO update computes it; it is registered here only so that every estimator's name and
  report label come from one registry, and its ``compute`` refuses to run.
- ``grpo``: group-relative outcome advantage (Shao et al. 2024, "DeepSeekMath"):
  A_i = (R_i - mean(R)) / (std(R) + eps), the POPULATION std (divide by n, not n - 1). With
  ``std_normalise`` off it is the mean-centred R_i - mean(R) (as Dr. GRPO, Liu et al. 2025, argue: the
  std division up-weights groups whose rewards barely differ). Every step of rollout i gets A_i.
- ``rloo``: REINFORCE leave-one-out (Ahmadian et al. 2024, "Back to Basics"): A_i = R_i - mean_{j != i} R_j,
  an unbiased baseline that excludes the rollout itself; never std-normalised; a group of one has no
  baseline and gets 0. Every step of rollout i gets A_i.
- ``gigpo``: group-in-group policy optimisation (Feng et al. 2025, "Group-in-Group Policy Optimization for
  LLM Agent Training", code: verl-agent). A = A_E + omega * A_S, where A_E is grpo's episode advantage and
  A_S a step advantage from ANCHOR-STATE groups: every step, in any rollout of the group, whose observation
  is the same string (exact match after ``.strip()``; repeats within one rollout group together too). A
  step's return is G_t = sum_{k >= t} gamma^(k - t) r_k over step rewards r_t = [t is last] R
  - invalid_penalty * (1 - grounded_t), and A_S = (G_t - mean) / (std + eps) over its anchor group
  (population std; mean-centred only without ``std_normalise``); a step whose observation no other step
  shares gets A_S = 0. Defaults: gamma 0.95 (the GiGPO paper's and verl-agent's ALFWorld step discount),
  invalid penalty 0.1 (verl-agent's ``invalid_action_penalty_coef``), omega 1.0 (the paper's weight).

Groups never mix tasks: ``group_advantages`` refuses members of different tasks, and ``advantages_by_task``
splits a batch by task first, so identical observations of two different tasks are never compared.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from spa_rl.validate import finite, in_range, non_negative, positive


@dataclass(frozen=True)
class GroupMember:
    """One rollout as the estimators see it: ``observations[t]`` is what the agent saw before step t's
    action, ``grounded[t]`` whether that action was valid (1.0) or not (0.0)."""

    task_id: str
    reward: float
    observations: list[str]
    grounded: list[float]

    def __post_init__(self) -> None:
        finite("reward", self.reward)
        if len(self.grounded) != len(self.observations):
            raise ValueError(
                f"{self.task_id}: grounded has {len(self.grounded)} values but observations has "
                f"{len(self.observations)}: both need one per step"
            )
        for t, g in enumerate(self.grounded):
            in_range(f"{self.task_id}: grounded[{t}]", g, 0.0, 1.0)

    @property
    def n_steps(self) -> int:
        return len(self.observations)


@dataclass(frozen=True)
class AdvantageSettings:
    std_normalise: bool = True  # --grpo-std: divide by the group std (GRPO); off: mean-centring (Dr. GRPO)
    eps: float = 1e-6  # --adv-eps: keeps the division finite when a group's std is tiny
    gamma: float = 0.95  # --gigpo-gamma: GiGPO's step discount (paper / verl-agent ALFWorld)
    invalid_penalty: float = 0.1  # --invalid-penalty: verl-agent's invalid_action_penalty_coef
    step_weight: float = 1.0  # --gigpo-step-weight: GiGPO's omega on the step advantage

    def __post_init__(self) -> None:
        positive("--adv-eps", self.eps)  # 0 would turn an all-equal group's 0 / 0 into NaN
        in_range("--gigpo-gamma", self.gamma, 0.0, 1.0)
        non_negative("--invalid-penalty", self.invalid_penalty)
        non_negative("--gigpo-step-weight", self.step_weight)


Compute = Callable[[list[GroupMember], AdvantageSettings], list[list[float]]]


@dataclass(frozen=True)
class Estimator:
    """One advantage estimator: how it computes per-step advantages for a group, and what it needs."""

    name: str
    label: str  # the report's row label
    compute: Compute  # (one task's rollouts, settings) -> one advantage per step of each rollout
    critic: bool = False  # needs a value head (only GAE)
    grouped: bool = True  # its advantage compares a rollout with the other rollouts of its task


REGISTRY: dict[str, Estimator] = {}  # in the report's row order


def estimator(name: str, label: str, *, critic: bool = False, grouped: bool = True):
    """Register an advantage estimator: ``@estimator("grpo", "GRPO ...")`` over ``f(members, settings)``."""

    def register(fn: Compute) -> Compute:
        if name in REGISTRY:
            raise ValueError(f"advantage estimator {name!r} is registered twice")
        REGISTRY[name] = Estimator(name, label, fn, critic, grouped)
        return fn

    return register


def _centred(values: Sequence[float], settings: AdvantageSettings) -> list[float]:
    """(v - mean) / (population std + eps), or v - mean without std_normalise. A group whose values are
    all equal gets exact zeros (float rounding of the mean would otherwise leave ~1e-17 / eps noise)."""
    n = len(values)
    if n == 0 or max(values) == min(values):
        return [0.0] * n
    mean = math.fsum(values) / n
    dev = [v - mean for v in values]
    if not settings.std_normalise:
        return dev
    std = math.sqrt(math.fsum(d * d for d in dev) / n)  # population std: GRPO normalises the group itself
    return [d / (std + settings.eps) for d in dev]


def _per_step(members: list[GroupMember], per_rollout: list[float]) -> list[list[float]]:
    return [[a] * m.n_steps for m, a in zip(members, per_rollout, strict=True)]


@estimator("gae", "GAE with a value head (PPO)", critic=True, grouped=False)
def _gae(members: list[GroupMember], settings: AdvantageSettings) -> list[list[float]]:
    raise ValueError(
        "GAE is computed by the PPO update from the value head's per-token values; "
        "it has no critic-free group computation"
    )


@estimator("grpo", "GRPO (group-normalised outcome)")
def _grpo(members: list[GroupMember], settings: AdvantageSettings) -> list[list[float]]:
    return _per_step(members, _centred([m.reward for m in members], settings))


@estimator("rloo", "RLOO (leave-one-out baseline)")
def _rloo(members: list[GroupMember], settings: AdvantageSettings) -> list[list[float]]:
    n = len(members)
    if n < 2:  # no other rollout to form a baseline from
        return _per_step(members, [0.0] * n)
    rewards = [m.reward for m in members]
    total = math.fsum(rewards)
    return _per_step(members, [r - (total - r) / (n - 1) for r in rewards])


def _discounted_returns(m: GroupMember, settings: AdvantageSettings) -> list[float]:
    """G_t = sum_{k >= t} gamma^(k - t) r_k, r_t = [t is last] R - invalid_penalty * (1 - grounded_t)."""
    returns = [0.0] * m.n_steps
    g = 0.0
    for t in reversed(range(m.n_steps)):
        r = (m.reward if t == m.n_steps - 1 else 0.0) - settings.invalid_penalty * (1.0 - m.grounded[t])
        g = r + settings.gamma * g
        returns[t] = g
    return returns


@estimator("gigpo", "GiGPO (episode + anchor-state groups)")
def _gigpo(members: list[GroupMember], settings: AdvantageSettings) -> list[list[float]]:
    episode = _centred([m.reward for m in members], settings)
    returns = [_discounted_returns(m, settings) for m in members]
    # Anchor states: (rollout, step) positions keyed by the stripped observation, so trailing newlines or
    # indentation differences in how an environment prints the same state do not split a group.
    anchors: dict[str, list[tuple[int, int]]] = {}
    for i, m in enumerate(members):
        for t, obs in enumerate(m.observations):
            anchors.setdefault(obs.strip(), []).append((i, t))
    step = [[0.0] * m.n_steps for m in members]  # a singleton anchor group keeps A_S = 0
    for positions in anchors.values():
        if len(positions) < 2:
            continue
        centred = _centred([returns[i][t] for i, t in positions], settings)
        for (i, t), a in zip(positions, centred, strict=True):
            step[i][t] = a
    return [[episode[i] + settings.step_weight * a for a in step[i]] for i in range(len(members))]


ESTIMATORS = tuple(REGISTRY)
CRITIC_FREE = tuple(n for n, e in REGISTRY.items() if not e.critic)


def get_estimator(name: str) -> Estimator:
    if name not in REGISTRY:
        raise ValueError(f"unknown advantage estimator {name!r}; known: {', '.join(REGISTRY)}")
    return REGISTRY[name]


def group_advantages(members: list[GroupMember], name: str, settings: AdvantageSettings) -> list[list[float]]:
    """Per-step advantages of one task's rollouts (``members``, all of one ``task_id``) under estimator
    ``name``: one list per member, one value per step, in the members' order."""
    est = get_estimator(name)
    tasks = sorted({m.task_id for m in members})
    if len(tasks) > 1:
        raise ValueError(f"a group holds the rollouts of one task, got tasks {', '.join(map(repr, tasks))}")
    out = est.compute(members, settings)
    if [len(a) for a in out] != [m.n_steps for m in members]:  # a registered compute's contract
        raise ValueError(f"advantage estimator {name!r} returned the wrong number of steps")
    return out


def advantages_by_task(
    members: list[GroupMember], name: str, settings: AdvantageSettings
) -> list[list[float]]:
    """Per-step advantages of a batch holding several tasks: each task's rollouts form one group; the
    result is in the input order."""
    get_estimator(name)  # an unknown name is refused even for an empty batch
    by_task: dict[str, list[int]] = {}
    for i, m in enumerate(members):
        by_task.setdefault(m.task_id, []).append(i)
    out: list[list[float]] = [[] for _ in members]
    for idx in by_task.values():
        for i, a in zip(idx, group_advantages([members[i] for i in idx], name, settings), strict=True):
            out[i] = a
    return out


# What the report calls each method: the step-value variants (GAE on fused rewards) and the critic-free
# estimators, which train on the outcome (and grounding) only.
def method_labels() -> dict[str, str]:
    from spa_rl.rewards import REPORT_LABELS

    return REPORT_LABELS | {n: e.label for n, e in REGISTRY.items() if not e.critic}


def step_observations(messages: list[dict[str, str]], prefix_len: int) -> list[str]:
    """The observation before each agent step of a conversation: the user message preceding each assistant
    turn from ``prefix_len`` on (the task for the first step, then the environment's answers)."""
    out, last_user = [], ""
    for i, m in enumerate(messages):
        if m["role"] == "user":
            last_user = m["content"]
        elif m["role"] == "assistant" and i >= prefix_len:
            out.append(last_user)
    return out


def member_of(rec) -> GroupMember:
    """A rollout record (``TrajectoryRecord`` or ``PPORecord``) as a group member: its final reward, the
    observation before each step and each step's grounding."""
    obs = step_observations(rec.messages, rec.prefix_len)
    grounded = rec.grounding if hasattr(rec, "grounding") else [float(s.grounded) for s in rec.steps]
    n = min(len(obs), len(grounded))  # steps without a reply in the conversation (none in practice)
    return GroupMember(rec.task_id, float(rec.reward), obs[:n], [float(g) for g in grounded[:n]])
