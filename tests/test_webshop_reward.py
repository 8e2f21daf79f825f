"""WebShop's reward modes (envs/webshop/reward.py) on the real 1000-product data, each case computed by
hand from WebShop's goal.py at d149d0d7 (``get_option_reward`` / ``get_reward``), and the environment
option that picks the mode (``--env-option reward=...``) from the command line to the environment.

Hand computations use thefuzz's token_set_ratio as thefuzz processes its inputs: ``str()`` of a tuple,
characters other than letters and digits become spaces, lower case, split on spaces; with a shared token
and one side's tokens all in the other, the score is 100; else the best of ratio(shared, shared + rest
of each side) and ratio(the two), ratio(a, b) = 2 * LCS / (len a + len b). A match needs > 85.
Every goal below has all its attributes matched, price within the bound and r_type 1 (asserted), so
reward = (A + option matches + 1) / (A + N + 1) with A attributes and N goal options.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import replace
from fractions import Fraction

import pytest
from conftest import TINY, ExpertReplay, load_recipe

from envs import (
    EnvOptionError,
    expert_trajectory,
    load_tasks,
    make_env,
    parse_env_options,
    resolve_env_options,
)
from envs.webshop.normalize import normalize_color
from envs.webshop.reward import (
    DEFAULT_REWARD_MODE,
    REWARD_MODES,
    _in_text,
    attribute_matches,
    compute_reward,
    corrected_option_matches,
    legacy_option_matches,
    original_option_matches,
)
from spa_rl.fingerprint import env_option_settings

MODES = ("original", "corrected", "legacy")


pytestmark = pytest.mark.usefixtures("webshop_ready")


def goal_and_product(catalog, goal_id):
    goal = next(g for goals in catalog.goals.values() for g in goals if g.goal_id == goal_id)
    product = catalog.products[goal.asin]
    info = compute_reward(product, goal, dict.fromkeys(()))
    assert attribute_matches(product, goal) == len(goal.attributes) and info.r_type == 1.0 and info.r_price
    return goal, product


def rewards(product, goal, options) -> dict[str, float]:
    return {m: compute_reward(product, goal, options, m).reward for m in MODES}


def frac(a_matched_plus, total) -> float:
    return float(Fraction(a_matched_plus, total))


def test_the_modes_and_thefuzz_on_tuples():
    assert tuple(REWARD_MODES) == MODES and DEFAULT_REWARD_MODE == "original"
    from thefuzz import fuzz

    # "('size', 'x-large')" -> tokens {size, x, large} hold "large"'s only token: 100.
    assert fuzz.token_set_ratio("large", ("size", "x-large")) == 100
    # {x, large} vs {size, large}: shared "large"; ratio("large", "large x") = 10/12 -> 83, the best.
    assert fuzz.token_set_ratio("x-large", ("size", "large")) == 83
    # Values alone: {x, large} holds {large}: 100 either way.
    assert fuzz.token_set_ratio("x-large", "large") == fuzz.token_set_ratio("large", "x-large") == 100


def test_color_normalisation_of_tuples_is_a_membership_test(catalog):
    # WebShop's normalize_color runs `color in value` over its color list: a substring test for a string,
    # a membership test for the (type, value) tuples of a generated goal.
    assert normalize_color("navy blue") == "blue"  # "blue" precedes "navy" in the list
    assert normalize_color(("color", "navy blue")) == ("color", "navy blue")  # no element is a color word
    assert normalize_color(("color", "black")) == "black"  # an element is exactly "black"
    assert normalize_color("rectangular") == "tan"  # "tan" inside "rectangular"
    assert normalize_color(("item shape", "rectangular")) == ("item shape", "rectangular")
    # A train goal of a rug: color taupe, item shape rectangular, size 1 ft 9 in x 7 ft 2 in (3 attributes).
    goal, rug = goal_and_product(catalog, "B07FKGQKZ1-252")
    assert goal.goal_options == {
        "color": "taupe",
        "item shape": "rectangular",
        "size": "1 ft 9 in x 7 ft 2 in",
    }
    own = dict(goal.goal_options)
    # original: ("color", "taupe") -> "taupe" (member), bought "taupe" -> hit. ("item shape", "rectangular")
    # stays a tuple, bought "rectangular" -> "tan": tokens {tan} vs {item, shape, rectangular}, nothing
    # shared, ratio("tan", "item rectangular shape") = 6/25 -> 24: no hit. Size: bought tokens {1, ft, 9,
    # in, x, 7, 2} all in the tuple's (+ "size"): 100, hit. 2 of 3.
    assert original_option_matches(rug, goal, own) == 2
    # corrected: "rectangular" -> "tan" on both sides: hit; 3 of 3.
    assert corrected_option_matches(rug, goal, own) == 3
    A = len(goal.attributes)
    assert rewards(rug, goal, own) == {"original": frac(A + 2 + 1, A + 4), "corrected": 1.0, "legacy": 1.0}
    # A goal color that is exactly a color word is normalised in the tuple too: bought "black | white" ->
    # "black" hits goal ("color", "black") -> "black", and misses ("color", "white") -> "white" in both.
    black = replace(goal, goal_options={"color": "black"})
    white = replace(goal, goal_options={"color": "white"})
    for rule in (original_option_matches, corrected_option_matches):
        assert rule(rug, black, {"color": "black | white"}) == 1
        assert rule(rug, white, {"color": "black | white"}) == 0


def test_tuple_quirk_matches_where_the_values_do_not(catalog):
    # Test goal: an accent chair with color: dark grey, style: velvet (4 attributes); bought light grey.
    goal, chair = goal_and_product(catalog, "B08FQTMCNM-3")
    assert goal.goal_options == {"color": "dark grey", "style": "velvet"}
    bought = {"color": "light grey", "style": "velvet"}
    # original: the goal tuples stay tuples (no element is a color word); bought "light grey" -> "grey"
    # ("grey" precedes "light"). "grey" is a token of ('color', 'dark grey'): 100, hit; "velvet" of
    # ('style', 'velvet'): hit. 2 of 2 -> reward 7/7.
    assert original_option_matches(chair, goal, bought) == 2
    # corrected: "dark grey" -> "dark" ("dark" precedes "grey"); "grey" vs "dark": no shared token,
    # ratio("grey", "dark") = 2/8 -> 25: no hit. 1 of 2 -> 6/7.
    assert corrected_option_matches(chair, goal, bought) == 1
    # legacy (bought options): "grey" fuzzy-misses "dark" but is in the chair's text (fallback); velvet
    # matches: 2 -> 1.
    assert _in_text("grey", chair)
    assert rewards(chair, goal, bought) == {"original": 1.0, "corrected": frac(6, 7), "legacy": 1.0}


def test_goals_own_option_can_miss_under_the_original(catalog):
    # Test goal: loafers with color: 1877blue, size: 8.5 (4 attributes), bought with exactly these.
    goal, shoes = goal_and_product(catalog, "B07S7HDC88-16")
    own = dict(goal.goal_options)
    assert own == {"color": "1877blue", "size": "8.5"}
    # original: ("color", "1877blue") stays a tuple, bought "1877blue" -> "blue" (substring). Tokens {blue}
    # vs {color, 1877blue}: nothing shared, ratio("blue", "1877blue color") = 8/18 -> 44: no hit.
    # ("size", "8.5") -> {size, 8, 5} holds bought {8, 5}: hit. 1 of 2 -> (4 + 1 + 1) / 7 = 6/7.
    assert original_option_matches(shoes, goal, own) == 1
    # corrected: both sides "blue", both "8.5": 2 of 2 -> 1. legacy: "blue" fuzzy 100, "8.5" exact -> 1.
    assert rewards(shoes, goal, own) == {"original": frac(6, 7), "corrected": 1.0, "legacy": 1.0}
    # The expert buys exactly this, so it fails this goal under the original reward only (the runner test
    # below plays it); its SFT conversation leaves out the last page (the score), so it is the same in
    # every mode.
    task = next(t for t in load_tasks("webshop", "test") if t.task_id == goal.goal_id)
    first, pairs = expert_trajectory(task)
    for mode in MODES:
        again_first, again = expert_trajectory(task, {"reward": mode})
        assert (
            again_first == first
            and again[:-1] == pairs[:-1]
            and [a for a, _ in again] == [a for a, _ in pairs]
        )


def test_size_is_fuzzy_x_large_and_large(catalog):
    # Goal size: large (2 attributes), bought x-large.
    goal, briefs = goal_and_product(catalog, "B07PVZPS58-2")
    assert goal.goal_options == {"size": "large"}
    # original: {x, large} vs ('size', 'large') = {size, large}: shared "large", best ratio("large",
    # "large x") = 10/12 -> 83 <= 85: no hit -> (2 + 0 + 1) / 4. corrected: {x, large} holds {large}: 100,
    # hit -> 1. legacy: size is exact ("x-large" != "large") and "x-large" is not in the text -> 3/4.
    assert rewards(briefs, goal, {"size": "x-large"}) == {"original": 0.75, "corrected": 1.0, "legacy": 0.75}
    # Goal size: x-large (5 attributes), bought large: ('size', 'x-large') = {size, x, large} holds
    # {large}: 100, hit (original and corrected); legacy: not equal, not in the text -> (5 + 0 + 1) / 7.
    goal, body = goal_and_product(catalog, "B089K79PQ1-2")
    assert goal.goal_options == {"size": "x-large"}
    assert rewards(body, goal, {"size": "large"}) == {"original": 1.0, "corrected": 1.0, "legacy": frac(6, 7)}


def test_no_text_fallback(catalog):
    goal, briefs = goal_and_product(catalog, "B07PVZPS58-2")  # size: large, 2 attributes
    said = replace(briefs, bullet_points=(*briefs.bullet_points, "Tailored for a medium build"))
    assert attribute_matches(said, goal) == 2
    # Bought medium: "medium" vs ('size', 'large') / "large": nothing shared, low ratio: no hit in original
    # and corrected -> 3/4; legacy counts it because "medium" is in the features now -> 1.
    assert rewards(said, goal, {"size": "medium"}) == {"original": 0.75, "corrected": 0.75, "legacy": 1.0}
    # legacy's fallback is a substring test: "red" inside "tailored" counts a red it was never asked for.
    assert not _in_text("red", briefs)
    assert legacy_option_matches(said, goal, {"color": "red"}) == 1
    assert original_option_matches(said, goal, {"color": "red"}) == 0


def test_goal_without_options_and_no_cap_needed(catalog):
    goal, product = goal_and_product(catalog, "B085RBZCHH-0")
    assert goal.goal_options == {} and len(goal.attributes) == 3
    for mode in MODES:
        info = compute_reward(product, goal, {}, mode)
        assert info.r_option is None and info.reward == 1.0 and info.mode == mode  # (3 + 0 + 1) / (3 + 0 + 1)
    # An option bought anyway: original and corrected count goal options hit (none here) -> still 4/4;
    # legacy counts the bought option when its value is in the text: (3 + 1 + 1) / 4 = 5/4, capped to 1.
    word = product.title.split()[0].lower()
    assert legacy_option_matches(product, goal, {"style": word}) == 1
    assert rewards(product, goal, {"style": word}) == {m: 1.0 for m in MODES}


def test_human_goals_compare_values(catalog):
    # A human goal's options are a list of values: the original compares values, as corrected does.
    goal, coat = goal_and_product(catalog, "B09KP78G37-h0")
    assert goal.goal_options == ("red", "x-large") and len(goal.attributes) == 1
    # "red" hits "red"; "x-large" -> {x, large} holds bought {large}: 100, hit -> (1 + 2 + 1) / 4 = 1 in
    # both; legacy: size "large" != "x-large" but "large" is in the coat's text -> 1.
    assert rewards(coat, goal, {"color": "red", "size": "large"}) == {m: 1.0 for m in MODES}
    goal, shorts = goal_and_product(catalog, "B09HX5CD2D-h0")
    assert goal.goal_options == ("heather charcoal", "small")
    # "heather charcoal" -> "charcoal"; bought "heather grey" -> "grey" ("grey" precedes "heather"): no hit;
    # small hits: (3 + 1 + 1) / 6 = 5/6 in both; legacy: "grey" is in the text -> 1.
    assert rewards(shorts, goal, {"color": "heather grey", "size": "small"}) == {
        "original": frac(5, 6), "corrected": frac(5, 6), "legacy": 1.0
    }  # fmt: skip
    # Every human goal, its own product with every option combination: original == corrected.
    for goal in catalog.goals["human"]:
        product = catalog.products[goal.asin]
        kinds = sorted(product.options)
        for combo in itertools.product(*(product.options[k] for k in kinds)):
            bought = dict(zip(kinds, combo, strict=True))
            assert original_option_matches(product, goal, bought) == corrected_option_matches(
                product, goal, bought
            )


# --- the environment option ---------------------------------------------------------------------------
def test_make_env_takes_and_checks_the_option():
    assert make_env("webshop").site.reward_mode == "original"
    assert make_env("webshop", options={"reward": "corrected"}).site.reward_mode == "corrected"
    assert resolve_env_options("webshop") == {"reward": "original"}
    assert resolve_env_options("alfworld") == {} == resolve_env_options("virtualhome")
    with pytest.raises(
        EnvOptionError, match="webshop option reward: 'nope' is not one of original, corrected, legacy"
    ):
        make_env("webshop", options={"reward": "nope"})
    with pytest.raises(
        EnvOptionError, match="webshop has no environment option 'rewards' \\(its options: reward\\)"
    ):
        make_env("webshop", options={"rewards": "original"})
    with pytest.raises(EnvOptionError, match="alfworld has no environment option 'reward' \\(it takes no"):
        make_env("alfworld", options={"reward": "original"})
    with pytest.raises(EnvOptionError, match="--env-option takes NAME=VALUE, got 'reward'"):
        parse_env_options("webshop", ["reward"])
    assert parse_env_options("webshop", ["reward=legacy"]) == {"reward": "legacy"}
    # The fingerprint setting: defaults filled (explicit default == nothing given); none for alfworld.
    assert env_option_settings("webshop", []) == env_option_settings("webshop", ["reward=original"])
    assert env_option_settings("webshop", []) == {"env_options": {"reward": "original"}}
    assert env_option_settings("alfworld", []) == {}


def test_the_option_reaches_the_env_through_the_rollout_runner(tmp_path):
    from spa_rl.agent.runner import RolloutConfig, run_rollouts

    task = next(t for t in load_tasks("webshop", "test") if t.task_id == "B07S7HDC88-16")
    actions = {task.task_id: [a for a, _ in expert_trajectory(task)[1]]}
    got = {}
    for mode in MODES:
        cfg = RolloutConfig(batch_size=1, env_options={"reward": mode})
        (rec,), _ = run_rollouts(
            [task], ExpertReplay("webshop", actions), tmp_path / f"{mode}.jsonl", cfg, progress=False
        )
        assert rec.meta["env_options"] == {"reward": mode}
        got[mode] = (rec.reward, rec.success)
    assert got == {"original": (frac(6, 7), False), "corrected": (1.0, True), "legacy": (1.0, True)}


def test_command_line_option_is_checked_and_named():
    from spa_rl.agent.evaluate import parse_args

    assert parse_args(["--env", "webshop"]).env_options == {"reward": "original"}
    cfg = parse_args(["--env", "webshop", "--env-option", "reward=corrected"])
    assert cfg.env_option == ["reward=corrected"] and cfg.env_options == {"reward": "corrected"}
    with pytest.raises(SystemExit) as e:
        parse_args(["--env", "webshop", "--env-option", "reward=bogus"])
    assert e.value.code == "webshop option reward: 'bogus' is not one of original, corrected, legacy"
    with pytest.raises(SystemExit) as e:
        parse_args(["--env", "alfworld", "--env-option", "reward=original"])
    assert e.value.code == "alfworld has no environment option 'reward' (it takes no environment option)"
    ppo = load_recipe("ppo/train.py")
    with pytest.raises(SystemExit) as e:
        ppo.parse_args(["--mode", "online", "--env", "webshop", "--env-option", "reward=bogus"])
    assert "webshop option reward: 'bogus'" in e.value.code
    assert ppo.parse_args(
        ["--mode", "online", "--env", "webshop", "--env-option", "reward=legacy"]
    ).env_option == ["reward=legacy"]


def test_evaluate_records_the_option_and_refuses_another_in_the_same_folder(tmp_path):
    from spa_rl.agent.evaluate import evaluate, parse_args
    from spa_rl.fingerprint import OutputConflict

    def cfg(*option):
        return parse_args(
            ["--env", "webshop", "--split", "test", "--model", str(TINY), "--num-tasks", "1", "--max-steps", "1",
             "--max-new-tokens", "4", "--batch-size", "1", "--device", "cpu", "--output-dir", str(tmp_path / "ev"),
             "--no-progress", *option]
        )  # fmt: skip

    summary = evaluate(cfg("--env-option", "reward=corrected"))
    assert summary["env_options"] == {"reward": "corrected"}
    fingerprint = json.loads((tmp_path / "ev" / "fingerprint.json").read_text())
    assert fingerprint["settings"]["env_options"] == {"reward": "corrected"}
    (line,) = (tmp_path / "ev" / "episodes.jsonl").read_text().splitlines()
    assert json.loads(line)["meta"]["env_options"] == {"reward": "corrected"}
    with pytest.raises(
        OutputConflict, match="env_options: \\{'reward': 'corrected'\\} -> \\{'reward': 'original'\\}"
    ):
        evaluate(cfg())


def test_mc_values_checks_the_option_against_the_rollouts(tmp_path):
    from spa_rl.agent.runner import RolloutConfig, run_rollouts

    task = load_tasks("webshop", "test", limit=1)[0]
    actions = {task.task_id: [a for a, _ in expert_trajectory(task)[1]]}
    rollouts = tmp_path / "ep.jsonl"
    cfg = RolloutConfig(batch_size=1, env_options={"reward": "corrected"})
    run_rollouts([task], ExpertReplay("webshop", actions), rollouts, cfg, progress=False)
    mc = load_recipe("prm/mc_values.py")
    argv = ["--rollouts", str(rollouts), "--model", str(TINY), "--output", str(tmp_path / "mc.jsonl")]
    with pytest.raises(SystemExit) as e:
        mc.main([*argv, "--env-option", "reward=bogus"])
    assert e.value.code == "webshop option reward: 'bogus' is not one of original, corrected, legacy"
    with pytest.raises(SystemExit) as e:  # the rollouts were played with reward=corrected
        mc.main(argv)
    assert "played with environment options" in e.value.code and "--env-option" in e.value.code
