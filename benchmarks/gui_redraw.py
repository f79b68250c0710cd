"""Cost of one GUI redraw tick: 30 Hz ticks, a full 5-minute window (7,500 points per
curve, plus the self-rating curves), new predictions arriving at 25 Hz.

A tick is what ``MainWindow.tick`` does for the plots: append the new points, one
setData per curve, move the x range, update the circumplex trail, and paint the
widgets synchronously (``repaint``), so painting is inside the measured time.

    QT_QPA_PLATFORM=offscreen python benchmarks/gui_redraw.py [--window 300] [--ticks 600]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--window", type=int, default=300, choices=(10, 60, 300))
    parser.add_argument("--ticks", type=int, default=600, help="timed ticks (30 per second)")
    parser.add_argument("--size", default="1280x800", help="window size in pixels")
    args = parser.parse_args(argv)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

    from PySide6.QtWidgets import QApplication, QHBoxLayout, QWidget

    from app.gui.circumplex import CircumplexView
    from app.gui.curves import CurvePanel

    app = QApplication.instance() or QApplication([])
    width, height = (int(v) for v in args.size.split("x"))
    root = QWidget()
    layout = QHBoxLayout(root)
    circumplex = CircumplexView()
    curves = CurvePanel(args.window)
    layout.addWidget(circumplex, 2)
    layout.addWidget(curves, 3)
    root.resize(width, height)
    root.show()
    app.processEvents()

    rng = np.random.default_rng(0)
    step = 0.04

    def points(first: int, n: int):
        t = (first + np.arange(n)) * step
        walk = np.clip(np.cumsum(rng.normal(0, 0.03, n)) * 0.1 + 0.5 * np.sin(t / 7), -1, 1)
        return t, walk, -walk * 0.7

    # Fill the whole window first: the worst case is a full 5-minute view.
    filled = args.window * 25
    t, a, v = points(0, filled)
    curves.add_predictions(t, a, v)
    curves.add_ratings(t, a * 0.5, v * 0.5)
    circumplex.add_predictions(a, v)
    curves.redraw(filled * step)
    app.processEvents()

    made, costs = filled, []
    for tick in range(args.ticks + 30):  # 30 warm-up ticks
        now = filled * step + (tick + 1) / 30.0
        due = int(now / step) - made
        began = time.perf_counter()
        if due > 0:
            t, a, v = points(made, due)
            curves.add_predictions(t, a, v)
            curves.add_ratings(t, a * 0.5, v * 0.5)
            circumplex.add_predictions(a, v)
            made += due
        curves.redraw(now)
        circumplex.redraw()
        root.repaint()  # paint now, inside the timed span
        costs.append((time.perf_counter() - began) * 1000.0)
        app.processEvents()
    costs = np.array(costs[30:])
    print(f"window {args.window} s ({filled} points per curve), {args.size}, "
          f"{args.ticks} ticks, platform {app.platformName()}")
    print(f"redraw per tick: mean {costs.mean():.2f} ms, p50 {np.percentile(costs, 50):.2f} ms, "
          f"p95 {np.percentile(costs, 95):.2f} ms, max {costs.max():.2f} ms")
    root.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
