"""The report's trajectory page, rendered in a real browser: rows are coloured by each step's
contribution c_t (green for positive, red for negative), on a real ALFWorld expert episode."""

import numpy as np
import pytest

from envs import expert_trajectory, load_tasks
from spa_rl.agent.schema import StepRecord, TrajectoryRecord

pytestmark = pytest.mark.usefixtures("alfworld_ready")


def _expert_record() -> TrajectoryRecord:
    task = load_tasks("alfworld", "train", limit=1)[0]
    _, pairs = expert_trajectory(task)
    steps = [StepRecord(f"Action: {a}", a, o, True, 0.0) for a, o in pairs]
    steps[-1].reward = 1.0
    return TrajectoryRecord("alfworld", "train", task.task_id, task.task_type, 0, [], 0, steps, 1.0, True,
                            len(steps), "success")  # fmt: skip


def _share(img: np.ndarray, rgb: tuple[int, int, int], tol: float = 0.08) -> float:
    """Fraction of pixels within ``tol`` of colour ``rgb``."""
    target = np.array(rgb, dtype=float) / 255
    return float((np.abs(img[..., :3] - target).max(axis=-1) < tol).mean())


def test_trajectory_page_renders_contribution_colours(tmp_path, screenshot):
    from eval.report import trajectory_page

    rec = _expert_record()
    n = rec.n_steps
    assert n >= 4
    # The first half of the steps helped, the second half hurt, at full strength (|c_t| = scale).
    values = {rec.key: [1.0 if t < n // 2 else -1.0 for t in range(n)]}
    page = tmp_path / "page.html"
    page.write_text(trajectory_page("expert episode", [rec], values))
    img = screenshot(page, tmp_path / "page.png", 1000, 1400)
    assert img.shape[0] == 1400 and img.shape[1] == 1000
    green, red = _share(img, (40, 160, 60)), _share(img, (210, 50, 50))
    assert green > 0.02 and red > 0.02, (green, red)
    # Rows are drawn in step order: the green rows are above the red ones.
    rows_green = np.nonzero((np.abs(img[..., :3] - np.array([40, 160, 60]) / 255).max(-1) < 0.08).any(1))[0]
    rows_red = np.nonzero((np.abs(img[..., :3] - np.array([210, 50, 50]) / 255).max(-1) < 0.08).any(1))[0]
    assert rows_green.max() < rows_red.min()


def test_trajectory_page_without_values_has_no_colour(tmp_path, screenshot):
    from eval.report import trajectory_page

    page = tmp_path / "plain.html"
    page.write_text(trajectory_page("expert episode", [_expert_record()]))
    img = screenshot(page, tmp_path / "plain.png", 1000, 1400)
    assert _share(img, (40, 160, 60)) < 0.001 and _share(img, (210, 50, 50)) < 0.001
    assert (img[..., :3] < 0.5).any()  # but there is text on the page


def test_trajectory_page_shows_the_task_and_each_raw_reply_beside_its_action():
    import html

    from eval.report import trajectory_page
    from spa_rl.agent.schema import StepRecord

    rec = _expert_record()
    rec.steps[0] = StepRecord("Thought: I should look around.", None, "Invalid format.", False, 0.0)
    rec.messages = [{"role": "user", "content": "Your task is to: put a <mug> on the desk."}]
    for s in rec.steps:
        rec.messages += [
            {"role": "assistant", "content": s.reply},
            {"role": "user", "content": s.observation},
        ]
    rec.prefix_len = 1
    page = trajectory_page("episode", [rec])
    assert "<summary>task</summary>" in page
    assert html.escape(rec.messages[rec.prefix_len - 1]["content"]) in page
    # A reply without a parsable action is shown as written, next to "(no action)".
    assert "<td><pre>Thought: I should look around.</pre></td><td><pre>(no action)</pre></td>" in page
    assert all(html.escape(s.reply) in page for s in rec.steps)
