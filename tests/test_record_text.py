"""Model text cannot break the files it is written to: a lone UTF-16 surrogate in a reply (an
OpenAI-compatible server may send ``"\\ud800"``) is replaced by U+FFFD, said on stderr once per record
and counted in the record's meta, instead of crashing the writer and losing the episodes in flight."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from envs import load_tasks
from spa_rl.agent.backends import GenerationConfig
from spa_rl.agent.backends.openai_api import OpenAIPolicy
from spa_rl.agent.runner import RolloutConfig, run_rollouts
from spa_rl.agent.schema import (
    SURROGATES_FIELD,
    RecordError,
    RecordWriter,
    StepRecord,
    TrajectoryRecord,
    fix_surrogates,
    read_records,
    record_from_dict,
    write_json_atomic,
    write_jsonl_atomic,
)
from spa_rl.rewards import PPORecord

BAD = "look \ud800 around"  # a lone high surrogate, as json.loads gives it for "\ud800"


def _record(reply: str, task_id: str = "t1") -> TrajectoryRecord:
    return TrajectoryRecord(
        env="alfworld",
        split="dev",
        task_id=task_id,
        task_type=None,
        rollout=0,
        messages=[{"role": "user", "content": "task"}, {"role": "assistant", "content": reply}],
        prefix_len=1,
        steps=[StepRecord(reply=reply, action=None, observation="o", grounded=False, reward=0.0)],
        reward=0.0,
        success=False,
        n_steps=1,
        finish_reason="max_steps",
    )


def test_fix_surrogates_replaces_lone_ones_and_joins_pairs():
    assert fix_surrogates("plain \ufffd text") == ("plain \ufffd text", 0)
    assert fix_surrogates("a\ud800b\udc00") == ("a\ufffdb\ufffd", 2)
    assert fix_surrogates("\ud83d\ude00") == ("\U0001f600", 0)  # a split pair is one character


def test_record_writer_survives_a_lone_surrogate(tmp_path, capsys):
    out = tmp_path / "episodes.jsonl"
    with RecordWriter(out) as w:
        w.write(_record(BAD, "task-a"))
        w.write(_record("fine", "task-b"))
    out.read_bytes().decode("utf-8")  # strict UTF-8 throughout
    a, b = read_records(out)
    assert a.steps[0].reply == a.messages[1]["content"] == "look \ufffd around"
    assert a.meta[SURROGATES_FIELD] == 2  # the reply and its copy in the conversation
    assert SURROGATES_FIELD not in b.meta
    err = capsys.readouterr().err
    assert err.count("warning:") == 1  # once per record, only for the record that had one
    assert "'task-a'" in err and "steps[0].reply" in err and "messages[1].content" in err


def test_json_files_with_model_text_are_written(tmp_path, capsys):
    write_json_atomic(tmp_path / "s.json", {"examples": [BAD], BAD: 1})
    assert json.loads((tmp_path / "s.json").read_text(encoding="utf-8")) == {
        "examples": ["look \ufffd around"],
        "look \ufffd around": 1,
    }
    # PPO records (prm/fuse_rewards.py) dump messages with ensure_ascii=False.
    rec = PPORecord(env="alfworld", task_id="t1", rollout=0, messages=_record(BAD).messages, prefix_len=1,
                    n_steps=1, reward=0.0, success=False, values=[0.0], grounding=[0.0], step_rewards=[0.0],
                    variant="spa", alpha=1.0, beta=1.0, temperature=0.0)  # fmt: skip
    write_jsonl_atomic(tmp_path / "f.jsonl", [rec.to_json()])
    line = json.loads((tmp_path / "f.jsonl").read_text(encoding="utf-8"))
    assert line["messages"][1]["content"] == "look \ufffd around"
    err = capsys.readouterr().err
    assert "s.json" in err and "examples[0]" in err and "f.jsonl" in err


def test_read_checks_the_meta_count(tmp_path):
    d = json.loads(_record("ok").to_json())
    d["meta"] = {SURROGATES_FIELD: 1}
    assert record_from_dict(d, "x:1").meta[SURROGATES_FIELD] == 1
    for bad in (-1, "2", True):
        d["meta"] = {SURROGATES_FIELD: bad}
        with pytest.raises(RecordError, match=f"x:1: field 'meta.{SURROGATES_FIELD}'"):
            record_from_dict(d, "x:1")
    d["meta"] = ["not", "an", "object"]
    with pytest.raises(RecordError, match="x:1: field 'meta' must be dict"):
        record_from_dict(d, "x:1")


@pytest.fixture()
def surrogate_server():
    """An OpenAI-compatible endpoint whose every reply holds an escaped lone surrogate (valid JSON)."""
    bodies = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            bodies.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            reply = {"choices": [{"message": {"content": "Thought: \ud800 hmm.\nAction: look"}}]}
            body = json.dumps(reply).encode()  # ASCII: the surrogate travels as \\ud800
            assert b"\\ud800" in body
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1", bodies
    server.shutdown()


def test_openai_episodes_with_a_surrogate_reply_are_kept(tmp_path, capsys, alfworld_ready, surrogate_server):
    """Through the real runner and openai backend: before, the second turn's request (httpx encodes
    UTF-8) or the record writer raised UnicodeEncodeError and the whole batch was lost."""
    url, bodies = surrogate_server
    tasks = load_tasks("alfworld", "unseen", limit=2)
    out = tmp_path / "episodes.jsonl"
    cfg = RolloutConfig(batch_size=2, max_steps=2, generation=GenerationConfig(max_new_tokens=8))
    recs, stats = run_rollouts(tasks, OpenAIPolicy(url, "m", concurrency=2), out, cfg, progress=False)
    assert stats.episodes == 2 and len(bodies) == 4  # both turns of both episodes reached the server
    on_disk = read_records(out)
    assert [r.key for r in on_disk] == [r.key for r in recs]
    for r in on_disk:
        assert r.n_steps == 2 and r.meta[SURROGATES_FIELD] == 2
        assert all(s.reply.startswith("Thought: \ufffd hmm.") and s.action == "look" for s in r.steps)
    # The conversation sent back on the second turn already held the cleaned reply.
    assert [m for m in bodies[-1]["messages"] if m["role"] == "assistant"][-1]["content"] == r.steps[0].reply
    err = capsys.readouterr().err
    assert err.count("lone surrogate") == 2  # one line per record, naming task and steps
    for t in tasks:
        assert f"task {t.task_id!r} rollout 0" in err
    assert "steps[0].reply, steps[1].reply" in err
