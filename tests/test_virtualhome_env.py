"""VirtualHome on the real evolving-graph simulator and the real programs of virtualhome-eval."""

import pytest
from conftest import replay_experts

from envs import EnvError, expert_trajectory, load_tasks, make_env
from envs.virtualhome.actions import VERBS, format_command, parse_command
from envs.virtualhome.env import INVALID_FEEDBACK, MAX_STEPS, task_file
from envs.virtualhome.goals import Goal, satisfied
from spa_rl.agent.experts import expert_messages
from spa_rl.agent.prompts import get_prompt
from spa_rl.agent.react import parse_reply

pytestmark = pytest.mark.usefixtures("virtualhome_ready")


def task(task_id: str, split: str = "train"):
    return next(t for t in load_tasks("virtualhome", split) if t.task_id == task_id)


@pytest.mark.parametrize(
    "text, action, objects",
    [
        ("walk to dining room", "WALK", ("dining room",)),
        ("Go to the bathroom.", "WALK", ("bathroom",)),
        ("run to kitchen counter", "RUN", ("kitchen counter",)),
        ("find cup 2", "FIND", ("cup 2",)),
        ("grab water_glass", "GRAB", ("water glass",)),
        ("take the cup 1 from table 2", "GRAB", ("cup 1",)),
        ("pick up phone", "GRAB", ("phone",)),
        ("open freezer", "OPEN", ("freezer",)),
        ("close freezer", "CLOSE", ("freezer",)),
        ("switch on television 2", "SWITCHON", ("television 2",)),
        ("turn off light 3", "SWITCHOFF", ("light 3",)),
        ("put bowl on oven", "PUTBACK", ("bowl", "oven")),
        ("put plate in dishwasher", "PUTIN", ("plate", "dishwasher")),
        ("put plate into dishwasher", "PUTIN", ("plate", "dishwasher")),
        ("put back cup", "PUTOBJBACK", ("cup",)),
        ("pour water into water glass", "POUR", ("water", "water glass")),
        ("sit on couch", "SIT", ("couch",)),
        ("lie on bed", "LIE", ("bed",)),
        ("stand up", "STANDUP", ()),
        ("sleep", "SLEEP", ()),
        ("wake up", "WAKEUP", ()),
        ("look at cat", "LOOKAT", ("cat",)),
        ("watch television 2", "WATCH", ("television 2",)),
        ("turn to toilet", "TURNTO", ("toilet",)),
        ("point at remote control", "POINTAT", ("remote control",)),
        ("touch cat", "TOUCH", ("cat",)),
        ("read novel", "READ", ("novel",)),
        ("drink water glass", "DRINK", ("water glass",)),
        ("eat food bread", "EAT", ("food bread",)),
        ("type on keyboard 1", "TYPE", ("keyboard 1",)),
        ("push button", "PUSH", ("button",)),
        ("pull chair 1", "PULL", ("chair 1",)),
        ("move chair 1", "MOVE", ("chair 1",)),
        ("wash hands both", "WASH", ("hands both",)),
        ("rinse plate", "RINSE", ("plate",)),
        ("scrub plate", "SCRUB", ("plate",)),
        ("wipe table 2", "WIPE", ("table 2",)),
        ("squeeze tooth paste", "SQUEEZE", ("tooth paste",)),
        ("plug in television 2", "PLUGIN", ("television 2",)),
        ("unplug phone 2", "PLUGOUT", ("phone 2",)),
        ("cut food bread", "CUT", ("food bread",)),
        ("drop clothes dress", "DROP", ("clothes dress",)),
        ("release clothes dress", "RELEASE", ("clothes dress",)),
        ("wear clothes shirt", "PUTON", ("clothes shirt",)),
        ("take off clothes shirt", "PUTOFF", ("clothes shirt",)),
        ("greet man", "GREET", ("man",)),
        ("look around", "LOOKAROUND", ()),
    ],
)
def test_parse_each_action_form(text, action, objects):
    cmd = parse_command(text)
    assert cmd is not None and (cmd.action, cmd.objects) == (action, objects)


def test_canonical_forms_parse_back_and_nonsense_does_not():
    for verb in VERBS:
        n = verb.canonical.count("{")
        cmd = parse_command(format_command(verb.action, ["water glass", "kitchen counter"][:n]))
        assert cmd is not None and cmd.action == verb.action
    assert parse_command("fly to the moon") is None and parse_command("") is None


def test_splits_are_disjoint_and_test_titles_unseen():
    data = task_file()
    by_split = {s: load_tasks("virtualhome", s) for s in ("train", "seen", "unseen")}
    assert {s: len(v) for s, v in by_split.items()} == data["counts"]
    ids = [t.task_id for v in by_split.values() for t in v]
    assert len(ids) == len(set(ids)) == len(data["tasks"])
    train_titles = {t.meta["title"] for t in by_split["train"]}
    assert not train_titles & {t.meta["title"] for t in by_split["unseen"]}
    assert {t.meta["title"] for t in by_split["seen"]} <= train_titles
    assert [t.task_id for t in load_tasks("virtualhome", "test")] == [t.task_id for t in by_split["unseen"]]
    with pytest.raises(EnvError, match="unknown VirtualHome split"):
        load_tasks("virtualhome", "valid")


def test_executable_and_rejected_actions_on_a_real_graph():
    env = make_env("virtualhome")
    first = env.reset(task("32_1"))
    assert "You are in the bathroom" in first and "Your task: Cook some food." in first
    r = env.step("grab bowl")  # the bowl is in another room: the simulator refuses
    assert (r.observation, r.grounded, r.done) == (INVALID_FEEDBACK, False, False)
    assert env.step("grab unicorn").observation == INVALID_FEEDBACK  # no such object
    assert env.step("dance wildly").observation == INVALID_FEEDBACK  # no such action
    r = env.step("walk to dining room")
    assert r.grounded and r.info["script"] == "[WALK] <dining_room> (201)"
    assert "In the dining room you see:" in r.observation and " oven," in r.observation
    r = env.step("look around")
    assert r.grounded and r.observation.startswith("In the dining room you see:")
    r = env.step("walk to oven")
    assert r.grounded and "The oven is closed and off." in r.observation
    r = env.step("open oven")
    assert r.grounded and "The oven is open" in r.observation
    assert not env.step("open oven").grounded  # already open
    env.close()


def test_names_and_instances():
    env = make_env("virtualhome")
    env.reset(task("32_1"))
    w = env.world
    assert w.resolve("table 2") is not None and w.resolve("table 2") != w.resolve("table 1")
    env.step("walk to dining room")
    # a bare class name picks the instance in the agent's room
    assert w.room_of(w.resolve("table")) == w.room_of(w.char_id)
    env.close()


@pytest.mark.parametrize(
    "split, index", [("train", 0), ("train", 200), ("seen", 5), ("unseen", 0), ("unseen", 60)]
)
def test_goal_false_at_start_true_after_expert(split, index):
    t = load_tasks("virtualhome", split)[index]
    env = make_env("virtualhome")
    env.reset(t)
    assert not satisfied(Goal.from_json(t.meta["goal"]), env.world, [])
    results = [env.step(a) for a in t.expert_actions]
    assert all(r.grounded for r in results)
    assert results[-1].success and results[-1].done and results[-1].reward == 1.0
    assert not any(r.done for r in results[:-1])
    env.close()


def test_step_limit_and_step_after_end():
    env = make_env("virtualhome", max_steps=2)
    env.reset(task("32_1"))
    assert not env.step("look around").done
    r = env.step("look around")
    assert r.done and not r.success and r.info["truncated"]
    with pytest.raises(EnvError):
        env.step("look around")
    assert make_env("virtualhome").max_steps == MAX_STEPS == 40


def test_expert_trajectory_and_sft_messages():
    t = task("600_1")
    first, pairs = expert_trajectory(t)
    assert [a for a, _ in pairs] == list(t.expert_actions)
    msgs, prefix = expert_messages(t)
    turns = [parse_reply(m["content"]) for m in msgs[prefix:] if m["role"] == "assistant"]
    assert [p.action for p in turns] == list(t.expert_actions) and all(p.thought for p in turns)
    assert msgs[prefix - 1]["content"].endswith(first)


def test_prompt_example_is_the_environment_s_own_text():
    from spa_rl.agent.prompts.virtualhome import EXAMPLE_SPLIT, EXAMPLE_TASK, EXAMPLE_TASK_ID, EXAMPLE_TURNS

    env = make_env("virtualhome")
    assert env.reset(task(EXAMPLE_TASK_ID, EXAMPLE_SPLIT)) == EXAMPLE_TASK
    results = [env.step(action) for _, action, _ in EXAMPLE_TURNS]
    assert [r.observation for r in results] == [obs for _, _, obs in EXAMPLE_TURNS]
    assert results[-1].success
    assert get_prompt("virtualhome").example_task == EXAMPLE_TASK


def test_expert_episodes_through_the_agent_runner(tmp_path):
    tasks = [task("600_1"), task("856_1"), load_tasks("virtualhome", "unseen")[3]]
    actions = {t.task_id: list(t.expert_actions) for t in tasks}
    recs = replay_experts("virtualhome", tasks, actions, tmp_path / "e.jsonl")
    assert all(s.grounded for r in recs for s in r.steps)


def test_bad_input_is_a_clear_error(tmp_path, monkeypatch):
    from envs.virtualhome.data import parse_program

    with pytest.raises(ValueError, match=r"file9_9:4: cannot parse script line"):
        parse_program("Drink\nI drink.\n\n[WALK] <kitchen> (oops)\n", "file9_9")
    with pytest.raises(ValueError, match="empty title or no script lines"):
        parse_program("Drink\nI drink.\n", "file9_9")
    monkeypatch.setenv("SPA_DATA_DIR", str(tmp_path))
    with pytest.raises(EnvError, match="run `bash scripts/setup.sh`"):
        load_tasks("virtualhome", "train")
    (tmp_path / "virtualhome").mkdir()
    (tmp_path / "virtualhome" / ".ready").write_text("{}")
    (tmp_path / "virtualhome" / "tasks.json").write_text("[]")
    with pytest.raises(EnvError, match=r"tasks\.json: expected an object with a 'tasks' list"):
        load_tasks("virtualhome", "train")
    (tmp_path / "virtualhome" / "tasks.json").write_text('{"tasks": [{"split": "train", "task_id": "1_1"}]}')
    with pytest.raises(EnvError, match="task record 0 lacks the field 'task_type'"):
        load_tasks("virtualhome", "train")
