"""spa_rl.agent.evaluate on a real ALFWorld game with the tiny model: the summary, and what a
rerun in the same folder keeps."""

import json

import pytest
from conftest import TINY

from spa_rl.agent.evaluate import evaluate, parse_args

pytestmark = pytest.mark.usefixtures("alfworld_ready")


def _cfg(out, num_tasks):
    return parse_args(
        ["--env", "alfworld", "--split", "unseen", "--model", str(TINY), "--num-tasks", str(num_tasks),
         "--max-steps", "2", "--max-new-tokens", "6", "--batch-size", "2", "--device", "cpu",
         "--output-dir", str(out), "--no-progress"]
    )  # fmt: skip


def test_rerun_keeps_the_throughput_of_earlier_runs(tmp_path):
    out = tmp_path / "eval"
    first = evaluate(_cfg(out, 1))
    assert first["metrics"]["n"] == 1 and first["this_run"]["episodes"] == 1
    assert first["runs"] == [first["this_run"]]
    # Nothing left to play: the summary still holds the first run's figures.
    again = evaluate(_cfg(out, 1))
    assert again["this_run"]["episodes"] == 0
    assert again["runs"] == [first["this_run"]]
    # One more task: a second run record, metrics over both episodes.
    more = evaluate(_cfg(out, 2))
    assert more["metrics"]["n"] == 2 and more["this_run"]["episodes"] == 1
    assert more["runs"] == [first["this_run"], more["this_run"]]
    assert json.loads((out / "summary.json").read_text())["runs"] == more["runs"]


def test_a_corrupt_summary_is_named_before_any_work(tmp_path):
    out = tmp_path / "eval"
    evaluate(_cfg(out, 1))
    played = (out / "episodes.jsonl").read_text()
    (out / "summary.json").write_text("{not json")
    with pytest.raises(ValueError, match="summary.json: not valid JSON"):
        evaluate(_cfg(out, 2))
    assert (out / "episodes.jsonl").read_text() == played
