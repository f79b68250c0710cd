"""app.gui.rating: 25 Hz sample-and-hold on the engine clock, paused without focus."""
from __future__ import annotations

import pytest

from app.gui.rating import RatingSampler


def test_one_rating_per_40_ms_grid_point_whatever_the_tick_times():
    sampler = RatingSampler()
    sampler.start(now=1.013)  # first grid point at or after 1.013 s: 1.04
    sampler.move_to(0.5, -0.25)
    ratings = sampler.sample(1.1) + sampler.sample(1.1) + sampler.sample(1.207)
    assert [r.t for r in ratings] == pytest.approx([1.04, 1.08, 1.12, 1.16, 1.20])
    assert all((r.valence, r.arousal) == (0.5, -0.25) for r in ratings)


def test_focus_loss_pauses_and_resumes_from_now_not_from_the_past():
    sampler = RatingSampler()
    sampler.start(0.0)
    assert len(sampler.sample(0.2)) == 6  # 0.00 .. 0.20
    sampler.set_focused(False, 0.21)
    assert sampler.sample(1.0) == []
    sampler.set_focused(True, 1.01)
    assert [r.t for r in sampler.sample(1.1)] == pytest.approx([1.04, 1.08])


def test_position_is_clipped_to_the_circumplex_and_stop_ends_sampling():
    sampler = RatingSampler()
    sampler.start(0.0)
    sampler.move_to(3.0, -2.0)
    sampler.nudge(0.1, -0.1)
    assert (sampler.valence, sampler.arousal) == (1.0, -1.0)
    sampler.stop()
    assert sampler.sample(5.0) == []


def test_no_display_is_a_message_and_opencv_qt_plugins_are_released(capsys):
    from app.gui.main import display_problem, release_opencv_qt_plugins

    assert "no display found" in display_problem({})
    assert display_problem({"DISPLAY": ":99"}) is None
    assert display_problem({"QT_QPA_PLATFORM": "offscreen"}) is None
    environ = {"QT_QPA_PLATFORM_PLUGIN_PATH": "/x/site-packages/cv2/qt/plugins"}
    release_opencv_qt_plugins(environ)
    assert "QT_QPA_PLATFORM_PLUGIN_PATH" not in environ
    mine = {"QT_QPA_PLATFORM_PLUGIN_PATH": "/opt/my-qt/plugins"}
    release_opencv_qt_plugins(mine)
    assert mine["QT_QPA_PLATFORM_PLUGIN_PATH"] == "/opt/my-qt/plugins"  # the user's own choice
