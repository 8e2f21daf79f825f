"""The report's main table: rows ordered as the paper's (SFT, sparse PPO, SPA-RL, ablations), one
column group per split, and a score column only where rewards are graded (WebShop)."""

from eval.report import main_table


def _summary(env: str, success: float, reward: float, grounding: float, n: int) -> dict:
    return {
        "env": env,
        "metrics": {"success_rate": success, "avg_reward": reward, "grounding": grounding, "n": n},
    }


def test_binary_rewards_have_no_score_column():
    results = {
        "ppo_offline_progress": {"unseen": _summary("alfworld", 0.5, 0.5, 0.9, 8)},
        "sft": {
            "unseen": _summary("alfworld", 0.25, 0.25, 0.7, 8),
            "seen": _summary("alfworld", 0.0, 0.0, 0.6, 4),
        },
    }
    lines = main_table(results).splitlines()
    assert lines[0] == (
        "| method | mode | unseen success % | unseen grounding % | unseen n "
        "| seen success % | seen grounding % | seen n |"
    )
    assert lines[2] == "| SFT | - | 25.0 | 70.0 | 8 | 0.0 | 60.0 | 4 |"
    assert lines[3] == "| SPA-RL | offline | 50.0 | 90.0 | 8 | - | - | - |"


def test_graded_rewards_get_a_score_column():
    results = {
        "sft": {"test": _summary("webshop", 0.1, 0.62, 0.95, 50)},
        "ppo_online_sparse": {"test": _summary("webshop", 0.12, 0.641, 0.97, 50)},
    }
    lines = main_table(results).splitlines()
    assert lines[0] == "| method | mode | test success % | test score | test grounding % | test n |"
    assert lines[2] == "| SFT | - | 10.0 | 62.0 | 95.0 | 50 |"
    assert lines[3] == "| PPO (sparse reward) | online | 12.0 | 64.1 | 97.0 | 50 |"
