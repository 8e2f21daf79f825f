"""Critic-free advantage estimators (spa_rl/rl/advantages.py) against hand-computed values: GRPO, RLOO and
GiGPO's anchor-state step groups, plus the refusals (mixed tasks, mismatched lengths, bad settings)."""

from __future__ import annotations

import math

import pytest

from spa_rl.rl.advantages import (
    CRITIC_FREE,
    ESTIMATORS,
    REGISTRY,
    AdvantageSettings,
    GroupMember,
    advantages_by_task,
    estimator,
    get_estimator,
    group_advantages,
)

STD = AdvantageSettings()  # std_normalise on, eps 1e-6, gamma 0.95, invalid penalty 0.1, omega 1
MEAN = AdvantageSettings(std_normalise=False)
TOL = 1e-5  # eps = 1e-6 in the denominators shifts std-normalised values by ~1e-6 relative


def member(reward: float, n_steps: int = 2, task: str = "t", obs: list[str] | None = None, grounded=None):
    obs = obs if obs is not None else [f"{task}/{reward}/{t}" for t in range(n_steps)]  # unique: singletons
    return GroupMember(task, reward, obs, grounded if grounded is not None else [1.0] * len(obs))


def approx(rows: list[list[float]], abs_tol: float = 1e-9):
    return [pytest.approx(r, abs=abs_tol) for r in rows]


# -- registry ---------------------------------------------------------------------------------------------


def test_registry_names_and_labels():
    assert ESTIMATORS == ("gae", "grpo", "rloo", "gigpo")
    assert CRITIC_FREE == ("grpo", "rloo", "gigpo")
    assert REGISTRY["gae"].critic and not REGISTRY["gae"].grouped
    assert all(REGISTRY[n].grouped and not REGISTRY[n].critic for n in CRITIC_FREE)
    assert get_estimator("gigpo").label == "GiGPO (episode + anchor-state groups)"


def test_unknown_estimator_names_the_known_ones():
    with pytest.raises(ValueError, match="'nope'.*known: gae, grpo, rloo, gigpo"):
        get_estimator("nope")
    with pytest.raises(ValueError, match="known: gae, grpo, rloo, gigpo"):
        advantages_by_task([], "nope", STD)


def test_registering_a_name_twice_is_refused():
    with pytest.raises(ValueError, match="registered twice"):
        estimator("grpo", "again")(lambda members, settings: [])


def test_gae_is_left_to_the_ppo_update():
    with pytest.raises(ValueError, match="value head"):
        group_advantages([member(1.0)], "gae", STD)


# -- GRPO -------------------------------------------------------------------------------------------------


def test_grpo_with_and_without_std():
    # R = [1, 0, 0, 1]: mean 0.5, deviations +-0.5, population std sqrt(4 * 0.25 / 4) = 0.5
    # -> with std: +-0.5 / (0.5 + 1e-6) = +-1 (to ~2e-6); without: +-0.5. Step counts differ on purpose.
    group = [member(1.0, 3), member(0.0, 1), member(0.0, 2), member(1.0, 4)]
    with_std = group_advantages(group, "grpo", STD)
    expected = [[1.0] * 3, [-1.0], [-1.0] * 2, [1.0] * 4]
    assert with_std == [pytest.approx(row, rel=TOL) for row in expected]
    assert group_advantages(group, "grpo", MEAN) == approx([[0.5] * 3, [-0.5], [-0.5] * 2, [0.5] * 4])
    for row in with_std:  # every step of a rollout carries the rollout's one advantage
        assert len(set(row)) == 1


def test_grpo_equal_rewards_give_zero():
    # a graded reward whose float mean is not exact (0.3 * 3 / 3 != 0.3) still gives exact zeros
    for r in (0.0, 1.0, 0.3):
        assert group_advantages([member(r), member(r), member(r)], "grpo", STD) == [[0.0, 0.0]] * 3
    assert group_advantages([member(0.7)], "grpo", STD) == [[0.0, 0.0]]  # a group of one


def test_grpo_graded_rewards():
    # R = [0.2, 0.8]: mean 0.5, deviations -+0.3, population std 0.3 -> -+1 with std, -+0.3 without
    group = [member(0.2, 1), member(0.8, 1)]
    assert group_advantages(group, "grpo", STD) == [
        pytest.approx([-1.0], rel=TOL),
        pytest.approx([1.0], rel=TOL),
    ]
    assert group_advantages(group, "grpo", MEAN) == approx([[-0.3], [0.3]])


# -- RLOO -------------------------------------------------------------------------------------------------


def test_rloo_leave_one_out():
    # R = [1, 0, 0]: 1 - mean(0, 0) = 1; 0 - mean(1, 0) = -0.5 (twice). Never std-normalised.
    group = [member(1.0, 2), member(0.0, 3), member(0.0, 1)]
    expected = [[1.0] * 2, [-0.5] * 3, [-0.5]]
    assert group_advantages(group, "rloo", STD) == approx(expected)
    assert group_advantages(group, "rloo", MEAN) == approx(expected)


def test_rloo_equal_rewards_and_single_member():
    assert group_advantages([member(1.0), member(1.0)], "rloo", STD) == [[0.0, 0.0]] * 2
    assert group_advantages([member(1.0, 3)], "rloo", STD) == [[0.0] * 3]  # no other rollout: no baseline


# -- GiGPO ------------------------------------------------------------------------------------------------
#
# One task, three rollouts; "start" is shared by all three at step 0, "mid" by a and b at step 1.
#   a: R 1, obs [start, mid, a2], grounded [1, 1, 1]  -> r = [0, 0, 1]
#   b: R 0, obs [start, mid, b2], grounded [1, 0, 1]  -> r = [0, -0.1, 0]   (invalid step 1: -0.1)
#   c: R 0, obs [start, c1],      grounded [1, 1]     -> r = [0, 0]
# Returns with gamma 0.95:
#   a: G2 = 1, G1 = 0.95 * 1 = 0.95, G0 = 0.95 * 0.95 = 0.9025
#   b: G2 = 0, G1 = -0.1,            G0 = 0.95 * -0.1 = -0.095
#   c: G1 = 0, G0 = 0
# Anchor groups: start {a0 0.9025, b0 -0.095, c0 0}, mid {a1 0.95, b1 -0.1}; a2, b2, c1 are singletons.


def gigpo_group() -> list[GroupMember]:
    return [
        GroupMember("t", 1.0, ["start", "mid", "a2"], [1.0, 1.0, 1.0]),
        GroupMember("t", 0.0, ["start", "mid", "b2"], [1.0, 0.0, 1.0]),
        GroupMember("t", 0.0, ["start", "c1"], [1.0, 1.0]),
    ]


def test_gigpo_mean_centred_by_hand():
    # Episode (R = [1, 0, 0], mean 1/3): A_E = [2/3, -1/3, -1/3].
    # start: mean (0.9025 - 0.095 + 0) / 3 = 0.8075 / 3
    #   a0: 0.9025 - 0.8075/3 = (2.7075 - 0.8075) / 3 = 1.9 / 3
    #   b0: -0.095 - 0.8075/3 = (-0.285 - 0.8075) / 3 = -1.0925 / 3
    #   c0: -0.8075 / 3
    # mid: mean (0.95 - 0.1) / 2 = 0.425 -> a1 +0.525, b1 -0.525
    # A = A_E + 1.0 * A_S:
    #   a: [2/3 + 1.9/3, 2/3 + 0.525, 2/3 + 0]   = [1.3, 1.191666..., 0.666...]
    #   b: [-1/3 - 1.0925/3, -1/3 - 0.525, -1/3] = [-0.6975, -0.858333..., -0.333...]
    #   c: [-1/3 - 0.8075/3, -1/3]               = [-0.6025, -0.333...]
    got = group_advantages(gigpo_group(), "gigpo", MEAN)
    assert got == approx([[1.3, 2 / 3 + 0.525, 2 / 3], [-0.6975, -1 / 3 - 0.525, -1 / 3], [-0.6025, -1 / 3]])


def test_gigpo_std_normalised_by_hand():
    # Episode: deviations [2/3, -1/3, -1/3], population std sqrt((4/9 + 1/9 + 1/9) / 3) = sqrt(2/9) = sqrt(2)/3
    #   -> A_E = [sqrt(2), -1/sqrt(2), -1/sqrt(2)].
    # mid (two values): population std = |0.95 - (-0.1)| / 2 = 0.525 = the deviation -> A_S = +-1.
    # start: deviations [1.9, -1.0925, -0.8075] / 3; sum of squares (3.61 + 1.19355625 + 0.65205625) / 9
    #   = 5.4556125 / 9, population std sqrt(5.4556125 / 27) -> A_S(a0) = (1.9/3) / sqrt(5.4556125/27).
    # Singletons (a2, b2, c1) keep A_S = 0, so A = A_E there.
    ae = [math.sqrt(2), -1 / math.sqrt(2), -1 / math.sqrt(2)]
    sd = math.sqrt(5.4556125 / 27)
    start = [1.9 / 3 / sd, -1.0925 / 3 / sd, -0.8075 / 3 / sd]
    got = group_advantages(gigpo_group(), "gigpo", STD)
    expected = [
        [ae[0] + start[0], ae[0] + 1.0, ae[0]],
        [ae[1] + start[1], ae[1] - 1.0, ae[1]],
        [ae[2] + start[2], ae[2]],
    ]
    assert got == [pytest.approx(row, rel=TOL) for row in expected]
    # the step weight omega scales only the step part: omega 0 leaves GRPO's episode advantage
    no_step = group_advantages(gigpo_group(), "gigpo", AdvantageSettings(step_weight=0.0))
    assert no_step == group_advantages(gigpo_group(), "grpo", STD)


def test_gigpo_all_singletons_is_the_episode_advantage():
    group = [member(1.0, 3), member(0.0, 2)]  # every observation unique
    assert group_advantages(group, "gigpo", STD) == group_advantages(group, "grpo", STD)


def test_gigpo_discount_and_penalty_settings():
    # Two rollouts share "s" at step 0 and are R 1 / R 1; b's step 0 action is invalid. gamma 0.5, penalty 0.2:
    #   a: r = [0, 1] -> G0 = 0.5 * 1 = 0.5;  b: r = [-0.2, 1] -> G0 = -0.2 + 0.5 * 1 = 0.3
    #   A_E = 0 (equal rewards); s: mean 0.4 -> a0 +0.1, b0 -0.1; step 1 ("a", "b") singletons -> 0.
    group = [
        GroupMember("t", 1.0, ["s", "a"], [1.0, 1.0]),
        GroupMember("t", 1.0, ["s", "b"], [0.0, 1.0]),
    ]
    settings = AdvantageSettings(std_normalise=False, gamma=0.5, invalid_penalty=0.2)
    assert group_advantages(group, "gigpo", settings) == approx([[0.1, 0.0], [-0.1, 0.0]])


def test_gigpo_groups_observations_that_differ_only_in_whitespace():
    # a: R 1, G = [0.95, 1]; b: R 0, G = [0, 0]. "start" == "  start\n".strip(): one group, mean 0.475
    #   -> A_S = +-0.475; A_E = +-0.5 (mean-centred). x, y singletons.
    # a: [0.5 + 0.475, 0.5] = [0.975, 0.5];  b: [-0.975, -0.5]
    group = [
        GroupMember("t", 1.0, ["start", "x"], [1.0, 1.0]),
        GroupMember("t", 0.0, ["  start\n", "y"], [1.0, 1.0]),
    ]
    assert group_advantages(group, "gigpo", MEAN) == approx([[0.975, 0.5], [-0.975, -0.5]])


def test_gigpo_never_groups_observations_of_different_tasks():
    # Every rollout starts in "room". Per task (mean-centred):
    #   A: A1 R 1 G = [0.95, 1], A2 R 0 G = [0, 0]: room mean 0.475 -> +-0.475, A_E +-0.5
    #      -> A1 [0.975, 0.5], A2 [-0.975, -0.5]
    #   B: B1 R 1 G = [1], B2 R 0 G = [0]: room mean 0.5 -> +-0.5, A_E +-0.5 -> B1 [1.0], B2 [-1.0]
    # Had "room" been one group across tasks its mean would be (0.95 + 1) / 4 = 0.4875, not 0.475 / 0.5.
    batch = [
        GroupMember("A", 1.0, ["room", "hall"], [1.0, 1.0]),
        GroupMember("B", 1.0, ["room"], [1.0]),
        GroupMember("A", 0.0, ["room", "cellar"], [1.0, 1.0]),
        GroupMember("B", 0.0, ["room"], [1.0]),
    ]
    got = advantages_by_task(batch, "gigpo", MEAN)
    assert got == approx([[0.975, 0.5], [1.0], [-0.975, -0.5], [-1.0]])  # in the input order


def test_advantages_by_task_matches_per_task_groups():
    batch = [member(1.0, task="x"), member(0.0, task="y"), member(0.0, task="x"), member(1.0, task="y")]
    for name in CRITIC_FREE:
        got = advantages_by_task(batch, name, STD)
        assert [got[0], got[2]] == group_advantages([batch[0], batch[2]], name, STD)
        assert [got[1], got[3]] == group_advantages([batch[1], batch[3]], name, STD)


# -- refusals ---------------------------------------------------------------------------------------------


def test_group_refuses_mixed_tasks():
    with pytest.raises(ValueError, match="one task.*'a', 'b'"):
        group_advantages([member(1.0, task="a"), member(0.0, task="b")], "grpo", STD)


def test_member_refuses_mismatched_lengths_and_bad_values():
    with pytest.raises(ValueError, match="grounded has 1 values but observations has 2"):
        GroupMember("t", 1.0, ["o1", "o2"], [1.0])
    with pytest.raises(ValueError, match="reward"):
        GroupMember("t", math.nan, ["o1"], [1.0])
    with pytest.raises(ValueError, match=r"grounded\[0\]"):
        GroupMember("t", 1.0, ["o1"], [2.0])


@pytest.mark.parametrize(
    ("kwargs", "flag"),
    [
        ({"gamma": 1.5}, "--gigpo-gamma"),
        ({"gamma": -0.1}, "--gigpo-gamma"),
        ({"eps": 0.0}, "--adv-eps"),
        ({"invalid_penalty": -0.1}, "--invalid-penalty"),
        ({"step_weight": math.nan}, "--gigpo-step-weight"),
    ],
)
def test_settings_refuse_out_of_range(kwargs, flag):
    with pytest.raises(ValueError, match=flag):
        AdvantageSettings(**kwargs)
