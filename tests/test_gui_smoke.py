"""The real app under Xvfb: `python -m app.gui` on a file source for a few seconds,
a screenshot from the X server, and curve pixels where the plots are.

Skipped when Xvfb is not installed (apt install xvfb). The app writes, beside the
screenshot, where its plot areas are; the test looks there for the curves' own colours.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from app.gui.curves import AROUSAL_COLOUR, VALENCE_COLOUR
from app.gui.circumplex import POINT_COLOUR

ROOT = Path(__file__).resolve().parents[1]


def colour_pixels(image: np.ndarray, region, colour, tolerance=40) -> int:
    x, y, w, h = region
    patch = image[y:y + h, x:x + w, :3].astype(int)
    return int((np.abs(patch - np.array(colour)).max(axis=2) <= tolerance).sum())


@pytest.mark.skipif(shutil.which("xvfb-run") is None, reason="Xvfb is not installed")
def test_the_app_draws_curves_under_xvfb(tmp_path, tiny_model_path, cremad_dir):
    from PySide6.QtGui import QImage

    shot = tmp_path / "screen.png"
    env = {k: v for k, v in os.environ.items() if k != "QT_QPA_PLATFORM"}
    env["QT_QPA_PLATFORM"] = "xcb"
    result = subprocess.run(
        ["xvfb-run", "-a", "-s", "-screen 0 1400x900x24", sys.executable, "-m", "app.gui",
         "--video", str(cremad_dir / "1001_DFA_HAP_XX.flv"), "--model", str(tiny_model_path),
         "--settings", str(tmp_path / "settings.ini"), "--screenshot", str(shot),
         "--quit-after", "4"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
    assert shot.is_file(), result.stderr[-2000:]
    info = json.loads(shot.with_suffix(".json").read_text())
    assert info["steps"] >= 25  # the engine really ran (> 1 s of 40 ms steps)

    image = QImage(str(shot)).convertToFormat(QImage.Format.Format_RGB888)
    pixels = np.frombuffer(image.constBits(), np.uint8).reshape(
        image.height(), image.bytesPerLine())[:, :image.width() * 3].reshape(
        image.height(), image.width(), 3)
    regions = info["regions"]
    assert colour_pixels(pixels, regions["arousal"], AROUSAL_COLOUR) > 50
    assert colour_pixels(pixels, regions["valence"], VALENCE_COLOUR) > 50
    assert colour_pixels(pixels, regions["circumplex"], POINT_COLOUR) > 20
    # And not in each other's plot: the colours identify the curves.
    assert colour_pixels(pixels, regions["valence"], AROUSAL_COLOUR) == 0
