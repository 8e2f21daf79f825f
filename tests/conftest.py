"""Shared fixtures. Tests use the real ALFWorld data and real (tiny) models prepared by
``scripts/setup.sh``; run ``bash scripts/test.sh`` to set up and test in one go."""

from __future__ import annotations

import importlib.util
import sys

import pytest

from envs.paths import data_dir, models_dir


def load_recipe(relpath: str):
    """Import a stage recipe (e.g. ``prm/train.py``) under a unique module name: the stage folders are
    not packages and several recipes are called ``train.py``."""
    from envs.paths import REPO_ROOT

    name = "recipe_" + relpath.replace("/", "_").removesuffix(".py")
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, REPO_ROOT / relpath)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


SMOL = models_dir() / "smollm2-135m-instruct"
TINY = models_dir() / "tiny-llama"


def _require(path, what):
    if not path.exists():
        pytest.exit(
            f"{what} missing at {path}: run `bash scripts/setup.sh` (or `bash scripts/test.sh`)", returncode=2
        )


@pytest.fixture(scope="session")
def alfworld_ready():
    _require(data_dir() / "alfworld" / ".ready", "ALFWorld data")


@pytest.fixture(scope="session")
def virtualhome_ready():
    _require(data_dir() / "virtualhome" / ".ready", "VirtualHome tasks")


@pytest.fixture(scope="session")
def webshop_ready():
    _require(data_dir() / "webshop" / ".ready", "WebShop data")


@pytest.fixture(scope="session")
def catalog(webshop_ready):
    """WebShop's product catalogue and goals (loaded once: about 1 s)."""
    from envs.webshop.catalog import load_catalog

    return load_catalog()


@pytest.fixture(scope="session")
def smol_tokenizer():
    _require(SMOL, "SmolLM2 model folder")
    from spa_rl.models.loading import load_tokenizer

    return load_tokenizer(SMOL)


@pytest.fixture(scope="session")
def tiny_policy():
    _require(TINY, "tiny test model")
    from spa_rl.agent.backends.hf import HFPolicy

    return HFPolicy(TINY, device="cpu", batch_size=4)


def _find_chromium() -> str | None:
    import shutil

    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    return None


@pytest.fixture(scope="session")
def screenshot(tmp_path_factory):
    """``screenshot(html_path, png_path, width, height)``: render a page in headless Chromium.
    ``scripts/test.sh`` installs Debian's chromium where it can; without one the test is skipped, except
    under CI, where a missing browser is a failure."""
    import os
    import subprocess

    exe = _find_chromium()
    if exe is None:
        msg = "no chromium on PATH (scripts/test.sh installs Debian's chromium when run as root)"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)

    def shoot(page, png, width: int = 1200, height: int = 1600):
        profile = tmp_path_factory.mktemp("chromium-profile")
        # The background-networking flags keep Chromium from reaching out on a closed network.
        cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               "--hide-scrollbars", f"--user-data-dir={profile}", f"--window-size={width},{height}",
               f"--screenshot={png}", page.resolve().as_uri()]  # fmt: skip
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        assert res.returncode == 0 and png.exists(), f"chromium failed: {res.stderr[-2000:]}"
        import matplotlib.image

        return matplotlib.image.imread(png)  # (height, width, channels) floats in [0, 1]

    return shoot


class ExpertReplay:
    """A real, deterministic policy for the rollout runner: replies to each episode with its task's
    next expert action in the ReAct format (``actions``: task id -> the expert's actions)."""

    name = "replay"

    def __init__(self, env: str, actions: dict[str, list[str]], icl_examples: int = 1):
        from spa_rl.agent.prompts import get_prompt

        self.actions = actions
        self.prefix = len(get_prompt(env).build("", icl_examples))  # messages before the agent's first reply

    def generate(self, conversations, cfg, keys=None):
        from spa_rl.agent.backends.base import Generation

        out = []
        for msgs, (task_id, _) in zip(conversations, keys, strict=True):
            done = sum(m["role"] == "assistant" for m in msgs[self.prefix :])
            out.append(
                Generation(f"Thought: next step.\nAction: {self.actions[task_id][done]}", 1, 1, "stop")
            )
        return out

    def release(self, keys):
        pass


def replay_experts(env: str, tasks, actions: dict[str, list[str]], out, batch_size: int = 2, icl_examples=1):
    """Run ``tasks`` through the rollout runner with :class:`ExpertReplay`; every episode must win with
    reward 1 in exactly its expert's number of steps. Returns the episode records."""
    from spa_rl.agent.runner import RolloutConfig, run_rollouts

    recs, _ = run_rollouts(
        tasks,
        ExpertReplay(env, actions, icl_examples),
        out,
        RolloutConfig(batch_size=batch_size),
        progress=False,
        icl_examples=icl_examples,
    )
    assert all(r.success and r.reward == 1.0 and r.finish_reason == "success" for r in recs)
    assert {r.task_id: r.n_steps for r in recs} == {k: len(v) for k, v in actions.items()}
    return recs
