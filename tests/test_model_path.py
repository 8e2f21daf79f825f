"""A model path that looks local is checked as a local path: a typo fails at once naming the folder,
instead of a minute of Hub retries ending in "check your internet connection" (or a download of
whatever Hub repo the typo happens to name). Only a bare ``org/name`` goes to the Hub."""

import json
import subprocess
import sys
import time
from dataclasses import asdict

import pytest
from conftest import TINY, load_recipe

from envs.paths import REPO_ROOT
from spa_rl.agent.backends import make_policy
from spa_rl.agent.backends.hf import HFPolicy, load_tokenizer
from spa_rl.estimator.model import EstimatorConfig, ProgressEstimator
from spa_rl.models.paths import ModelPathError, resolve_model_path

TYPOS = [
    "models/tiny-lama",
    f"{TINY}x",
    "./no-such-model",
    "~/no-such-model-folder",
    "runs/x/sft/model",
    "a\\b",
]


@pytest.fixture(autouse=True)
def _at_repo_root(monkeypatch):
    monkeypatch.chdir(REPO_ROOT)  # 'models/...' names the repo's models folder


@pytest.mark.parametrize("value", TYPOS)
def test_typo_fails_fast_naming_the_path(value):
    for load in (resolve_model_path, load_tokenizer, lambda v: HFPolicy(v, device="cpu"), make_policy_hf):
        t0 = time.perf_counter()
        with pytest.raises(ModelPathError, match="no model folder") as e:
            load(value)
        assert time.perf_counter() - t0 < 1.0
        assert value in str(e.value) and "--model" in str(e.value)


def make_policy_hf(value):
    return make_policy("hf", value, device="cpu")


def test_bare_name_is_not_a_hub_id():
    with pytest.raises(ModelPathError, match="no model folder tiny-llama .*org/name"):
        resolve_model_path("tiny-llama")


def test_folder_without_config_is_refused(tmp_path):
    with pytest.raises(ModelPathError, match=f"{tmp_path} is not a model folder \\(no config.json in it\\)"):
        load_tokenizer(tmp_path)
    (tmp_path / "f").write_text("x")
    with pytest.raises(ModelPathError, match="f is a file, not a model folder"):
        resolve_model_path(tmp_path / "f", "--base")


def test_real_folder_works(tmp_path, monkeypatch):
    assert resolve_model_path(TINY) == str(TINY)
    assert resolve_model_path("models/tiny-llama") == "models/tiny-llama"  # as given (fingerprints)
    assert load_tokenizer("models/tiny-llama").padding_side == "left"
    monkeypatch.setenv("HOME", str(REPO_ROOT))
    assert resolve_model_path("~/models/tiny-llama") == str(TINY)  # ~ expanded: transformers does not


def test_org_name_passes_through_untouched(tmp_path, monkeypatch):
    assert resolve_model_path("HuggingFaceTB/SmolLM2-135M-Instruct") == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert resolve_model_path("org/name") == "org/name"
    monkeypatch.chdir(tmp_path)
    (tmp_path / "org").mkdir()  # now 'org/name' can only mean a folder under ./org
    with pytest.raises(ModelPathError, match="no model folder org/name"):
        resolve_model_path("org/name")


def test_estimator_with_a_moved_base_model(tmp_path):
    cfg = EstimatorConfig(base_model="runs/gone/sft/model")
    (tmp_path / "estimator_config.json").write_text(json.dumps(asdict(cfg)))
    with pytest.raises(
        ModelPathError, match="estimator_config.json \\(base_model\\): no model folder runs/gone"
    ):
        ProgressEstimator.load(tmp_path)


def test_merge_checks_model_and_adapter(tmp_path):
    merge = load_recipe("ppo/merge.py").merge
    with pytest.raises(ModelPathError, match="--model: no model folder models/tiny-lama"):
        merge("models/tiny-lama", str(tmp_path), str(tmp_path / "out"))
    with pytest.raises(ModelPathError, match="--adapter: no model folder runs/typo/adapter"):
        merge(str(TINY), "runs/typo/adapter", str(tmp_path / "out"))
    with pytest.raises(ModelPathError, match="--adapter: .* \\(no adapter_config.json in it\\)"):
        merge(str(TINY), str(tmp_path), str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "recipe, argv",
    [
        ("sft/train.py", ["--data", "x.json", "--output_dir", "{out}"]),
        ("prm/train.py", ["--data_dir", "x", "--output_dir", "{out}"]),
        ("ppo/train.py", ["--mode", "online", "--output-dir", "{out}"]),
    ],
)
def test_recipes_refuse_a_typo_before_any_work(recipe, argv, tmp_path, monkeypatch):
    out = tmp_path / "out"
    argv = [a.format(out=out) for a in argv] + ["--model", "models/tiny-lama"]
    monkeypatch.setattr(sys, "argv", [recipe, *argv])
    t0 = time.perf_counter()
    with pytest.raises(ModelPathError, match="no model folder models/tiny-lama"):
        load_recipe(recipe).main()
    assert time.perf_counter() - t0 < 1.0 and not out.exists()


def test_serve_cli_typo_exits_without_network():
    """End to end: the command that took ~50 s of Hub retries before."""
    t0 = time.time()
    res = subprocess.run(
        [sys.executable, "-m", "spa_rl.agent.serve", "--model", "models/tiny-lama", "--port", "0"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO_ROOT,
    )
    assert res.returncode != 0
    assert "--model: no model folder models/tiny-lama" in res.stderr
    assert "huggingface.co" not in res.stderr and time.time() - t0 < 30
