"""Rewrite the observations of WebShop's in-context example (spa_rl/agent/prompts/webshop.py) with what
the engine shows now: replays the example's actions on the live engine and replaces each observation
literal (and EXAMPLE_TASK) in place. Run from the repository root after any change to the pages or the
search ranking, then check the thoughts still fit (the product must stay on results page 1):

    .venv/bin/python tools/regen_webshop_example.py && .venv/bin/ruff format spa_rl/agent/prompts/webshop.py
"""

import ast
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from envs import make_env
from envs.base import Task
from spa_rl.agent.prompts import webshop as prompt

PATH = Path("spa_rl/agent/prompts/webshop.py")

env = make_env("webshop")
first = env.reset(Task(env="webshop", task_id=prompt.EXAMPLE_GOAL_ID, split="train"))
observations = []
for _, action, _ in prompt.EXAMPLE_TURNS:
    r = env.step(action)
    assert r.grounded, action
    observations.append(r.observation)
assert r.done and r.success, "the example no longer ends in a successful purchase"

src = PATH.read_text()
tree = ast.parse(src)
spans = []  # (node, new text)
for node in tree.body:
    if isinstance(node, ast.Assign) and node.targets[0].id == "EXAMPLE_TASK":
        spans.append((node.value, first))
    if isinstance(node, ast.Assign) and node.targets[0].id == "EXAMPLE_TURNS":
        for turn, obs in zip(node.value.elts, observations, strict=True):
            spans.append((turn.elts[2], obs))
lines = src.splitlines(keepends=True)
offsets = [0]
for line in lines:
    offsets.append(offsets[-1] + len(line.encode()))
data = src.encode()
for node, new in sorted(spans, key=lambda x: (x[0].lineno, x[0].col_offset), reverse=True):
    start = offsets[node.lineno - 1] + node.col_offset
    end = offsets[node.end_lineno - 1] + node.end_col_offset
    data = data[:start] + json.dumps(new, ensure_ascii=False).encode() + data[end:]
PATH.write_bytes(data)
changed = sum(old[2] != new for old, new in zip(prompt.EXAMPLE_TURNS, observations, strict=True)) + (
    first != prompt.EXAMPLE_TASK
)
print(f"{PATH}: {changed} observation(s) rewritten")
