"""The shell configuration's precedence (scripts/common.sh): command line > scripts/configs/<env>.sh >
scripts/profiles/<profile>.sh > scripts/profiles/base.sh, with the two budget caps applied last."""

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def resolved(
    *names: str, profile: str = "demo", env: str = "alfworld", repo: Path = REPO, **overrides
) -> dict:
    """The values the stage scripts see after load_config (variables in ``overrides`` set on the command line)."""
    script = f"PROFILE={profile}; source scripts/common.sh >/dev/null; load_config {env}; "
    script += "".join(f'printf "%s=%s\\n" {n} "${{{n}-<unset>}}"; ' for n in names)
    clean = {"PATH": "/usr/bin:/bin", "HOME": "/tmp"}
    res = subprocess.run(
        ["bash", "-c", script], cwd=repo, env=clean | overrides, capture_output=True, text=True
    )
    assert res.returncode == 0, res.stderr
    return dict(line.split("=", 1) for line in res.stdout.splitlines())


def test_profile_scale_over_base_and_one_seed_everywhere():
    demo = resolved("NUM_TASKS", "SFT_LR", "PPO_KL", "SEED", "EXPLORE_BATCH", "RUN_DIR")
    assert demo["NUM_TASKS"] == "8" and demo["SFT_LR"] == "1e-4"  # the demo profile
    assert demo["PPO_KL"] == "0.3" and demo["SEED"] == "0"  # base.sh
    assert demo["RUN_DIR"] == "runs/demo/alfworld"
    tiny = resolved("EXPLORE_BATCH", "BATCH_SIZE", profile="tiny")
    assert tiny["EXPLORE_BATCH"] == tiny["BATCH_SIZE"] == "2"  # base derives it from the profile's value
    for stage in ("sft/run_sft.sh", "prm/run_prm.sh", "exploration/run_explore.sh", "ppo/run_ppo.sh"):
        text = (REPO / stage).read_text()
        assert '"$SEED"' in text and "SEED:-" not in text, stage


def test_command_line_wins_and_empty_means_all():
    got = resolved("NUM_TASKS", "SFT_LR", "MAX_STEPS", NUM_TASKS="", SFT_LR="3e-4", MAX_STEPS="12")
    assert got == {"NUM_TASKS": "", "SFT_LR": "3e-4", "MAX_STEPS": "12"}


def test_environment_facts_with_the_profile_caps():
    # The demo evaluates the first of each environment's splits with at most 15 steps.
    assert resolved("EVAL_SPLITS", "MAX_STEPS") == {"EVAL_SPLITS": "unseen", "MAX_STEPS": "15"}
    assert resolved("EVAL_SPLITS", "MAX_STEPS", env="webshop") == {"EVAL_SPLITS": "test", "MAX_STEPS": "10"}
    # gpu leaves them alone; tiny caps the steps of every environment at 4.
    assert resolved("EVAL_SPLITS", "MAX_STEPS", profile="gpu") == {
        "EVAL_SPLITS": "unseen seen",
        "MAX_STEPS": "40",
    }
    assert resolved("MAX_STEPS", profile="tiny", env="webshop") == {"MAX_STEPS": "4"}


def test_per_environment_values_of_a_profile_are_explicit():
    alf = resolved("SFT_TASK_TYPES", "EVAL_TASK_TYPES", "ICL_EXAMPLES")
    assert alf == {"SFT_TASK_TYPES": "pick", "EVAL_TASK_TYPES": "pick", "ICL_EXAMPLES": "0"}
    ws = resolved("SFT_TASK_TYPES", "EXPLORE_TASK_TYPES", "ICL_EXAMPLES", env="webshop")
    assert ws == {"SFT_TASK_TYPES": "", "EXPLORE_TASK_TYPES": "", "ICL_EXAMPLES": "1"}


def test_a_line_uncommented_in_the_environment_config_beats_the_profile(tmp_path):
    shutil.copytree(REPO / "scripts", tmp_path / "scripts")
    cfg = tmp_path / "scripts" / "configs" / "alfworld.sh"
    cfg.write_text(cfg.read_text() + ': "${ICL_EXAMPLES:=1}"\n: "${NUM_TASKS=20}"\n')
    got = resolved("ICL_EXAMPLES", "NUM_TASKS", repo=tmp_path)
    assert got == {"ICL_EXAMPLES": "1", "NUM_TASKS": "20"}
    assert resolved("NUM_TASKS", repo=tmp_path, NUM_TASKS="3") == {"NUM_TASKS": "3"}


def test_environment_options_reach_every_stage_that_plays():
    # WebShop's reward mode: the config's default, WEBSHOP_REWARD or ENV_OPTIONS on the command line.
    assert resolved("ENV_OPTIONS", env="webshop") == {"ENV_OPTIONS": "reward=original"}
    assert resolved("ENV_OPTIONS", env="webshop", WEBSHOP_REWARD="corrected") == {
        "ENV_OPTIONS": "reward=corrected"
    }
    assert resolved("ENV_OPTIONS", env="webshop", ENV_OPTIONS="reward=legacy") == {
        "ENV_OPTIONS": "reward=legacy"
    }
    assert resolved("ENV_OPTIONS") == {"ENV_OPTIONS": ""}  # alfworld takes none
    for stage in ("eval/run_eval.sh", "exploration/run_explore.sh", "ppo/run_ppo.sh", "prm/run_prm.sh"):
        assert (
            "for o in $ENV_OPTIONS; do" in (REPO / stage).read_text()
            and "--env-option" in (REPO / stage).read_text()
        ), stage


def test_unknown_profile_and_environment_are_named():
    for profile, env, word in (("nope", "alfworld", "unknown PROFILE=nope"), ("base", "alfworld", "unknown PROFILE=base"),
                               ("demo", "nowhere", "no config")):  # fmt: skip
        res = subprocess.run(
            ["bash", "-c", f"PROFILE={profile}; source scripts/common.sh; load_config {env}"],
            cwd=REPO, capture_output=True, text=True,
        )  # fmt: skip
        assert res.returncode == 2 and word in res.stderr, res.stderr


@pytest.mark.parametrize("profile", ["tiny", "demo", "study", "gpu"])
@pytest.mark.parametrize("env", ["alfworld", "webshop", "virtualhome"])
def test_every_profile_sets_what_the_stages_read(profile, env):
    """Under ``set -u`` a stage script stops on a variable nobody set: each profile with base.sh sets all."""
    names = [
        "MAX_STEPS", "EVAL_SPLITS", "TEMPERATURE", "BACKEND", "API_BASE", "ICL_EXAMPLES", "SEED", "DTYPE",
        "SFT_SAVE_STEPS", "EXPLORE_SPLIT", "EXPLORE_BATCH", "PRM_LOG_STEPS", "MC_K", "ALPHA", "PPO_STEP_WEIGHTING",
        "PPO_PROBE_EVERY", "PPO_PROBE_TASKS", "PPO_SAVE_EVERY", "HELDOUT_TASKS", "NUM_GPUS", "ENV_OPTIONS",
    ]  # fmt: skip
    got = resolved(*names, profile=profile, env=env)
    assert "<unset>" not in got.values(), got
