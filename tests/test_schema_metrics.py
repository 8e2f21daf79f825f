import json

import pytest

from spa_rl.agent.metrics import length_bucket, summarize
from spa_rl.agent.schema import RecordError, StepRecord, TrajectoryRecord, read_records


def make_record(task_id="t1", rollout=0, steps=((True, 0.0), (False, 0.0), (True, 1.0)), task_type="pick"):
    msgs = [{"role": "user", "content": "task"}]
    recs = []
    for i, (g, rew) in enumerate(steps):
        msgs.append({"role": "assistant", "content": f"Thought: x\nAction: a{i}"})
        recs.append(
            StepRecord(
                reply=f"Thought: x\nAction: a{i}", action=f"a{i}", observation="o", grounded=g, reward=rew
            )
        )
        if i < len(steps) - 1:
            msgs.append({"role": "user", "content": "o"})
    success = bool(steps) and steps[-1][1] == 1.0
    return TrajectoryRecord(
        env="alfworld",
        split="unseen",
        task_id=task_id,
        task_type=task_type,
        rollout=rollout,
        messages=msgs,
        prefix_len=1,
        steps=recs,
        reward=1.0 if success else 0.0,
        success=success,
        n_steps=len(recs),
        finish_reason="success" if success else "max_steps",
    )


def write(path, lines):
    path.write_text("".join(line + "\n" for line in lines))


def test_roundtrip(tmp_path):
    p = tmp_path / "ep.jsonl"
    write(p, [make_record("a").to_json(), make_record("b").to_json()])
    recs = read_records(p)
    assert [r.task_id for r in recs] == ["a", "b"] and recs[0].steps[1].grounded is False


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: d.pop("reward"), "missing field 'reward'"),
        (lambda d: d.update(success="yes"), "field 'success' must be bool"),
        (lambda d: d.update(rollout=True), "field 'rollout' must be int"),
        (lambda d: d.update(n_steps=7), "field 'n_steps' is 7"),
        (lambda d: d["steps"][1].pop("grounded"), "steps[1]: missing field 'grounded'"),
        (lambda d: d.update(finish_reason="crashed"), "finish_reason"),
        (lambda d: d.update(prefix_len=3), "prefix_len"),
        (lambda d: d["messages"].append({"role": "bot", "content": "x"}), "messages[6]"),
    ],
)
def test_malformed_record_names_file_line_and_field(tmp_path, mutate, message):
    good = json.loads(make_record("a").to_json())
    bad = json.loads(make_record("b").to_json())
    mutate(bad)
    p = tmp_path / "ep.jsonl"
    write(p, [json.dumps(good), json.dumps(bad)])
    with pytest.raises(RecordError) as e:
        read_records(p)
    assert str(e.value).startswith(f"{p}:2: ") and message in str(e.value)


def test_invalid_json_and_duplicates(tmp_path):
    p = tmp_path / "ep.jsonl"
    write(p, [make_record("a").to_json(), "{not json"])
    with pytest.raises(RecordError, match=r":2: not valid JSON"):
        read_records(p)
    write(p, [make_record("a").to_json(), make_record("a").to_json()])
    with pytest.raises(RecordError, match=r":2: duplicate record"):
        read_records(p)


def test_torn_tail(tmp_path):
    p = tmp_path / "ep.jsonl"
    p.write_text(make_record("a").to_json() + "\n" + make_record("b").to_json()[:50])
    with pytest.raises(RecordError, match=r":2: incomplete last line"):
        read_records(p)
    assert [r.task_id for r in read_records(p, repair_torn_tail=True)] == ["a"]
    assert p.read_text().endswith("\n") and len(p.read_text().splitlines()) == 1


def test_summarize():
    recs = [
        make_record("a", steps=((True, 0.0), (True, 1.0))),  # success, 2/2 grounded
        make_record("b", steps=((False, 0.0),) * 6, task_type="heat"),  # failure, 0/6 grounded
    ]
    s = summarize(recs)
    assert s["n"] == 2 and s["success_rate"] == 0.5 and s["avg_reward"] == 0.5
    assert s["grounding"] == pytest.approx(2 / 8)
    assert s["by_task_type"]["pick"]["success_rate"] == 1.0 and s["by_task_type"]["heat"]["grounding"] == 0.0
    assert set(s["by_length"]) == {"1-5", "6-10"}
    assert s["finish_reasons"] == {"max_steps": 1, "success": 1}
    assert [length_bucket(n) for n in (1, 5, 6, 40)] == ["1-5", "1-5", "6-10", "36-40"]
