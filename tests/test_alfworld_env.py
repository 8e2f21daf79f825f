import json

import pytest

from envs import EnvError, load_tasks, make_env
from envs.alfworld.env import alfworld_root, clean_observation, normalize_action

pytestmark = pytest.mark.usefixtures("alfworld_ready")


def test_split_sizes_and_unseen_order():
    assert len(load_tasks("alfworld", "train")) == 3554
    assert len(load_tasks("alfworld", "seen")) == 140
    unseen = load_tasks("alfworld", "unseen")
    assert len(unseen) == 134
    order = [
        ln.strip() for ln in (alfworld_root() / "gamefile_id.txt").read_text().splitlines() if ln.strip()
    ]
    assert [t.task_id for t in unseen] == order


def test_task_types_and_experts():
    types = {t.task_type for t in load_tasks("alfworld", "unseen")}
    assert types == {"pick", "examine", "clean", "heat", "cool", "pick_two"}
    train = load_tasks("alfworld", "train", limit=5)
    assert all(t.expert_actions for t in train)
    assert all(t.expert_actions is None for t in load_tasks("alfworld", "seen", limit=5))


def test_unknown_split_is_a_clear_error():
    with pytest.raises(EnvError, match="unknown ALFWorld split"):
        load_tasks("alfworld", "validation")


@pytest.mark.parametrize("index", [0, 1500, 3553])
def test_expert_replay_wins(index):
    task = load_tasks("alfworld", "train")[index]
    env = make_env("alfworld")
    first = env.reset(task)
    assert "Your task is to:" in first and not first.startswith("-=")
    results = [env.step(a) for a in task.expert_actions]
    env.close()
    assert results[-1].success and results[-1].done and results[-1].reward == 1.0
    assert all(r.grounded for r in results)
    assert not any(r.done for r in results[:-1])


def test_invalid_action_is_not_grounded_and_max_steps_ends():
    task = load_tasks("alfworld", "unseen", limit=1)[0]
    env = make_env("alfworld", max_steps=3)
    env.reset(task)
    r1 = env.step("fly to the moon")
    assert r1.observation == "Nothing happens." and not r1.grounded and not r1.done
    r2 = env.step("look")
    assert r2.grounded and not r2.done
    r3 = env.step("inventory")
    assert r3.done and not r3.success and r3.info["truncated"]
    with pytest.raises(EnvError):
        env.step("look")
    env.close()


def test_expert_observations_match_recorded_ones():
    # gt_traj.json records the observations the game gave the expert: ours must be identical.
    task = load_tasks("alfworld", "train", limit=1)[0]
    turns = json.loads((alfworld_root() / "json_2.1.1/train" / task.task_id / "gt_traj.json").read_text())
    recorded = [t["value"] for t in turns if t["from"] == "human"][1:]
    env = make_env("alfworld")
    env.reset(task)
    ours = [env.step(a).observation for a in task.expert_actions]
    env.close()
    assert ours[: len(recorded)] == recorded[: len(ours)]


def test_normalize_action():
    assert normalize_action("  Go to  Shelf 1. ") == "go to shelf 1"
    assert normalize_action("put apple 1 in fridge 1") == "put apple 1 in/on fridge 1"
    assert normalize_action("put apple 1 on countertop 2") == "put apple 1 in/on countertop 2"
    assert normalize_action("put apple 1 in/on fridge 1") == "put apple 1 in/on fridge 1"
    assert (
        clean_observation("You arrive at loc 7. On the desk 1, you see a pen 2.")
        == "On the desk 1, you see a pen 2."
    )


def test_admissible_commands_on_request():
    task = load_tasks("alfworld", "train", limit=1)[0]
    env = make_env("alfworld", admissible_commands=True)
    env.reset(task)
    assert task.expert_actions[0] in env.admissible_commands and "inventory" in env.admissible_commands
    env.step(task.expert_actions[0])
    assert task.expert_actions[1] in env.admissible_commands
    env.close()


def test_loading_a_game_keeps_the_command_line(monkeypatch):
    # fast_downward rewrites sys.argv while it translates a game; results files record sys.argv.
    import sys

    from envs.alfworld.env import TRANSLATIONS

    monkeypatch.setattr(sys, "argv", ["evaluate.py", "--env", "alfworld"])
    TRANSLATIONS.entries.clear()  # a cached game would not run the translator
    env = make_env("alfworld")
    env.reset(load_tasks("alfworld", "unseen", limit=2)[1])
    env.close()
    assert sys.argv == ["evaluate.py", "--env", "alfworld"]


def test_a_game_is_translated_once_and_replays_the_same():
    """The PDDL -> SAS translation is memoised: a game's first reset translates it twice (plain and
    optimised) instead of four times, a second reset not at all, and the replay is the same game."""
    from envs.alfworld.env import TRANSLATIONS

    task = load_tasks("alfworld", "unseen", limit=3)[2]
    TRANSLATIONS.entries.clear()
    before = TRANSLATIONS.misses
    env = make_env("alfworld")
    first = [env.reset(task)] + [env.step(a).observation for a in ["look", "inventory", "go to desk 1"]]
    assert TRANSLATIONS.misses - before == 2
    second = [env.reset(task)] + [env.step(a).observation for a in ["look", "inventory", "go to desk 1"]]
    env.close()
    assert TRANSLATIONS.misses - before == 2
    assert first == second and len(set(first)) > 1  # real feedback, not all 'Nothing happens.'


def test_memoised_grammar_parses_change_nothing_the_game_says():
    """textworld's grammar parses are memoised (PARSES): an expert episode, with invalid commands mixed in,
    says the same (observations, outcome, every list of valid commands) with the memo and without it, and
    a replay parses nothing new."""
    from envs.alfworld.env import PARSES, expert_trajectory

    task = load_tasks("alfworld", "train", limit=2)[1]
    actions = [a for a, _ in expert_trajectory(task)[1]]
    actions = actions[:2] + ["jump", "take the moon"] + actions[2:]

    def play() -> list:
        env = make_env("alfworld", admissible_commands=True)
        seen = [(env.reset(task), env.admissible_commands)]
        for a in actions:
            r = env.step(a)
            seen.append((r.observation, r.success, r.grounded, env.admissible_commands))
            if r.done:
                break
        env.close()
        return seen

    try:
        PARSES.enabled = False
        plain = play()
        PARSES.enabled = True
        PARSES.entries.clear()
        memoised = play()
        misses = PARSES.misses
        replay = play()
    finally:
        PARSES.enabled = True
    assert memoised == plain and replay == plain
    assert plain[-1][1] and len(plain[1][3]) > 5  # the expert won; real lists of valid commands
    assert PARSES.misses == misses  # the replay was served from the memo
