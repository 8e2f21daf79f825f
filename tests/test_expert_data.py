"""Expert SFT data: the builder's ShareGPT output validates, matches the evaluation prompt, and its
actions replay to a win in the real game."""

import json
import subprocess
import sys

import pytest

from envs import load_tasks, make_env
from spa_rl.agent.experts import expert_messages
from spa_rl.agent.experts.alfworld import thoughts
from spa_rl.agent.prompts import get_prompt
from spa_rl.agent.react import parse_reply
from spa_rl.agent.schema import RecordError
from spa_rl.agent.sharegpt import read_sharegpt, to_messages

pytestmark = pytest.mark.usefixtures("alfworld_ready")
REPO = __import__("envs.paths", fromlist=["REPO_ROOT"]).REPO_ROOT


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("sft") / "alfworld_sft.json"
    cmd = [
        sys.executable,
        "sft/build_expert_data.py",
        "--env",
        "alfworld",
        "--num-tasks",
        "40",
        "--output",
        str(out),
    ]
    subprocess.run(cmd, cwd=REPO, check=True, capture_output=True)
    return out


def test_builder_output_validates_and_matches_eval_prompt(built):
    records = read_sharegpt(built)
    assert len(records) == 40
    stats = json.loads(built.with_suffix(".stats.json").read_text())
    assert stats["trajectories"] == 40 and stats["source"].startswith("built")
    for r in records:
        msgs, start = to_messages(r)
        first_obs = msgs[start - 1]["content"].split(get_prompt("alfworld").next_task_intro + "\n", 1)[1]
        assert msgs[:start] == get_prompt("alfworld").build(first_obs)  # what the agent sees at evaluation
        expert = [parse_reply(m["content"]) for m in msgs[start:] if m["role"] == "assistant"]
        assert all(p.action and p.thought for p in expert)
        assert msgs[-1]["role"] == "assistant"


def test_built_actions_replay_to_a_win(built):
    """Every action of a built record is accepted by the game, its observations are the game's own,
    and the episode is won. Three short records of different task types keep this fast."""
    records = read_sharegpt(built)
    picked, types = [], set()
    for r in sorted(records, key=lambda r: len(r["conversations"])):
        if r["task_type"] not in types:
            picked.append(r)
            types.add(r["task_type"])
        if len(picked) == 3:
            break
    tasks = {t.task_id: t for t in load_tasks("alfworld", "train")}
    env = make_env("alfworld", max_steps=60)
    for r in picked:
        msgs, start = to_messages(r)
        first = env.reset(tasks[r["id"]])
        assert msgs[start - 1]["content"].endswith(first)
        turns = msgs[start:]
        for k in range(0, len(turns), 2):
            res = env.step(parse_reply(turns[k]["content"]).action)
            assert res.grounded, (r["id"], turns[k]["content"], res.observation)
            if k + 1 < len(turns):
                assert turns[k + 1]["content"] == res.observation
        assert res.done and res.success, r["id"]
    env.close()


def test_thoughts_follow_the_plan():
    first = "You are in the middle of a room.\n\nYour task is to: put a hot apple in fridge."
    actions = [
        "go to countertop 1",
        "take apple 1 from countertop 1",
        "go to microwave 1",
        "heat apple 1 with microwave 1",
        "go to fridge 1",
        "open fridge 1",
        "put apple 1 in/on fridge 1",
    ]
    th = thoughts(first, actions)
    assert len(th) == len(actions)
    assert th[0].startswith("My task is to put a hot apple in fridge. First I need to find an apple")
    assert "heat it with the microwave" in th[0]
    assert "apple 1" in th[1] and "heat" in th[2] and "finish the task" in th[-1]


def test_expert_messages_end_with_the_experts_last_action():
    task = load_tasks("alfworld", "train", limit=1)[0]
    msgs, start = expert_messages(task)
    acts = [parse_reply(m["content"]).action for m in msgs[start:] if m["role"] == "assistant"]
    assert tuple(acts) == task.expert_actions


@pytest.mark.parametrize(
    "payload, message",
    [
        ({"conversations": [{"from": "human", "value": "x"}]}, "record 0: field 'id'"),
        ({"id": "a", "conversations": [{"from": "bot", "value": "x"}]}, r"conversations\[0\]"),
        ({"id": "a", "conversations": [{"from": "human", "value": "x"}]}, "no gpt turn"),
        (
            {"id": "a", "context_turns": 5, "conversations": [{"from": "gpt", "value": "x"}]},
            "context_turns",
        ),
    ],
)
def test_malformed_sharegpt_names_file_record_and_field(tmp_path, payload, message):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps([payload]))
    with pytest.raises(RecordError, match=message) as e:
        read_sharegpt(path)
    assert str(path) in str(e.value)
