"""docs/screenshots.py, which makes the README's screenshots, runs: the real window on
CREMA-D clips with the shipped model, recording, then review of that session. Written to
tmp_path (two clips, ~5 s), never over docs/."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from app.gui.curves import AROUSAL_COLOUR, VALENCE_COLOUR
from app.gui.review import MARKER_COLOUR

ROOT = Path(__file__).resolve().parents[1]


def pixels(path: Path) -> np.ndarray:
    from PySide6.QtGui import QImage

    image = QImage(str(path)).convertToFormat(QImage.Format.Format_RGB888)
    assert not image.isNull(), path
    rows = np.frombuffer(image.constBits(), np.uint8).reshape(image.height(),
                                                              image.bytesPerLine())
    return rows[:, :image.width() * 3].reshape(image.height(), image.width(), 3).copy()


def count(image: np.ndarray, colour, tolerance=40) -> int:
    return int((np.abs(image.astype(int) - np.array(colour)).max(axis=2) <= tolerance).sum())


def test_the_screenshot_script_draws_the_live_window_and_session_review(tmp_path, cremad_dir):
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, str(ROOT / "docs" / "screenshots.py"), "--clips", str(cremad_dir),
         "--count", "2", "--out", str(tmp_path)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-2000:]
    live, review = tmp_path / "live-window.png", tmp_path / "session-review.png"
    assert f"{live} (" in result.stdout and f"{review} (" in result.stdout
    for shot in (live, review):
        image = pixels(shot)
        assert image.shape[:2] == (800, 1280)
        # The curves were drawn from the model's predictions (not an empty window).
        assert count(image, AROUSAL_COLOUR) > 200 and count(image, VALENCE_COLOUR) > 200
    assert count(pixels(review), MARKER_COLOUR) > 100  # the clips' markers, in review


def test_without_clips_it_says_where_it_looked(tmp_path):
    result = subprocess.run(
        [sys.executable, str(ROOT / "docs" / "screenshots.py"), "--clips", str(tmp_path),
         "--out", str(tmp_path / "out")], cwd=tmp_path, capture_output=True, text=True,
        timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 2
    assert result.stderr.strip() == (f"screenshots: no CREMA-D clips (*.flv) in {tmp_path}; "
                                     "pass --clips DIR")
    assert not (tmp_path / "out").exists()
