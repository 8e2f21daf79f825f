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


def test_estimator_section_shows_in_sample_held_out_and_cross_fit_quality():
    from eval.report import estimator_table

    def rep(n, mse, base, r):
        return {"n": n, "mse": mse, "baseline_mse": base, "beats_baseline": mse < base, "pearson_r": r}

    ev = {"train": rep(12, 0.0002, 0.222, 0.997), "val": rep(4, 0.1, 0.111, None)}
    lines = estimator_table(ev).splitlines()
    assert lines[0] == "| estimate | n | MSE | baseline MSE | beats baseline | Pearson r |"
    assert lines[2] == "| train split (in-sample) | 12 | 0.0002 | 0.2220 | yes | 1.00 |"
    assert lines[3] == "| val split (held-out tasks) | 4 | 0.1000 | 0.1110 | yes | - |"
    assert not any("cross-fit" in ln for ln in lines)
    ev["cross_fit"] = {**rep(16, 0.3, 0.236, 0.72), "folds": 4, "predictions": []}
    table = estimator_table(ev, {"mode": "cross-fit 4", "folds": 4})
    assert "| cross-fit, 4 folds by task (out-of-fold) | 16 | 0.3000 | 0.2360 | no | 0.72 |" in table
    assert "**cross-fit 4** (each rollout scored by the fold estimator that never saw its task)" in table
    assert "**in-sample**" in estimator_table(ev, {"n": 16})  # an info file from before the mode was kept
