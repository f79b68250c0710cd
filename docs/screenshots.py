"""The README's screenshots: the live window and session review, made from the CREMA-D
clips with the real app, so they can be made again whenever the window changes.

    QT_QPA_PLATFORM=offscreen python docs/screenshots.py [--clips DIR] [--out docs]
                                                         [--model models/default.onnx]

The clips are joined into one video (in a temporary folder), which the real window plays
in real time with the model while recording a session into that folder: at the start of
each clip the script adds an event marker named after the clip's emotion and moves the
self-rating as a participant might (these ratings are the script's, not a person's).
Just before the video ends the window is saved as OUT/live-window.png; then the recorded
session opens in review mode, at the third marker, saved as OUT/session-review.png.
Runs offscreen (no display needed) or under Xvfb; takes about as long as the clips.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
CLIPS = Path(os.environ.get("AFFECT_DATA_DIR", ROOT.parent / "shared" / "data")) / "cremad-sample"
SIZE = (1280, 800)
FPS = 25
RATE = 16_000
# CREMA-D's emotion codes, and a plausible self-rating (valence, arousal) for each.
EMOTIONS = {"NEU": ("neutral", (0.0, -0.1)), "HAP": ("happy", (0.7, 0.4)),
            "ANG": ("angry", (-0.6, 0.7)), "SAD": ("sad", (-0.5, -0.5)),
            "FEA": ("fear", (-0.6, 0.5)), "DIS": ("disgust", (-0.5, 0.2))}


def join_clips(clips: list[Path], path: Path) -> tuple[list[tuple[float, str]], float]:
    """The clips one after another as one H.264 + AAC file: ([(start, emotion code)], seconds)."""
    import numpy as np

    from models.media import read_audio, read_video_frames, write_media

    frames, sound, starts = [], [], []
    for clip in clips:
        starts.append((len(frames) / FPS, clip.stem.split("_")[2]))
        pictures = [f.rgb for f in read_video_frames(clip)]
        audio = read_audio(clip)[:int(len(pictures) / FPS * RATE)]
        frames += pictures
        sound.append(np.pad(audio, (0, int(len(pictures) / FPS * RATE) - audio.size)))
    sound = np.concatenate(sound).astype(np.float32)
    write_media(path, frames, sound, fps=FPS, rate=RATE)
    return starts, len(frames) / FPS


def wait_until(app, condition, timeout_s: float) -> None:
    """Run the Qt event loop until ``condition()`` holds; RuntimeError after the timeout."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError("the window did not get there in time")
        app.processEvents()
        time.sleep(0.01)


def save(widget, path: Path) -> Path:
    if not widget.grab().save(str(path), "PNG"):
        raise OSError(f"cannot write {path}")
    return path


def make_screenshots(clips: list[Path], out: Path, model: Path, work: Path) -> list[Path]:
    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication

    from app.gui.live import load_model
    from app.gui.main import release_opencv_qt_plugins
    from app.gui.main_window import MainWindow
    from app.gui.review import ReviewWindow
    from app.gui.settings import Settings, SourceChoice

    video = work / "clips.mp4"
    starts, duration = join_clips(clips, video)
    release_opencv_qt_plugins()
    app = QApplication.instance() or QApplication([sys.argv[0]])
    store = QSettings(str(work / "settings.ini"), QSettings.Format.IniFormat)  # not the user's
    window = MainWindow(Settings(sources=SourceChoice(video_file=str(video)), model=str(model)),
                        store, load_model(str(model)))
    window.resize(*SIZE)
    window.show()
    if not window.control.start():
        raise RuntimeError("the window could not start on the clips")
    session = work / "session"
    if not window.control.start_recording(session, {"participant_id": "demo",
                                                    "condition": "CREMA-D"}):
        raise RuntimeError("the window could not record")
    window.control.sampler.focused = True  # an offscreen window never has focus; ratings need it
    for start, code in starts:
        name, (valence, arousal) = EMOTIONS.get(code, (code.lower(), (0.0, 0.0)))
        wait_until(app, lambda: window.control.engine_time() is not None
                   and window.control.engine_time() >= start + 0.3, duration + 30)
        window.control.add_marker("stimulus", name)
        window.circumplex.ratingMoved.emit(valence, arousal)  # as a mouse move would
    wait_until(app, lambda: window.control.engine_time() is None
               or window.control.engine_time() >= duration - 0.4, duration + 30)
    shots = [save(window, out / "live-window.png")]
    wait_until(app, lambda: window.control.recording is None, 30)  # the video ended: session saved
    window.close()

    review = ReviewWindow.open(session)
    review.resize(*SIZE)
    review.show()
    review.window_box.setCurrentIndex(review.window_box.findText("whole session"))
    review.jump_to_marker(min(2, len(starts) - 1))
    app.processEvents()
    shots.append(save(review, out / "session-review.png"))
    review.close()
    return shots


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=Path, default=CLIPS, metavar="DIR",
                        help="folder of CREMA-D .flv clips (default: ../shared/data/cremad-sample)")
    parser.add_argument("--count", type=int, default=6, metavar="N",
                        help="use the first N clips (default: 6, about 14 s)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs", metavar="DIR",
                        help="where the PNGs go (default: docs/)")
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "default.onnx",
                        help="ONNX model (default: models/default.onnx)")
    args = parser.parse_args(argv)
    order = list(EMOTIONS)
    clips = sorted(args.clips.glob("*.flv"),
                   key=lambda p: (order.index(p.stem.split("_")[2])
                                  if p.stem.count("_") >= 2 and p.stem.split("_")[2] in order
                                  else len(order), p.name))[:args.count]
    if not clips:
        print(f"screenshots: no CREMA-D clips (*.flv) in {args.clips}; pass --clips DIR",
              file=sys.stderr)
        return 2
    if not args.model.is_file():
        print(f"screenshots: no model at {args.model}; pass --model FILE.onnx", file=sys.stderr)
        return 2
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="affect-screenshots-") as work:
        for shot in make_screenshots(clips, args.out, args.model, Path(work)):
            print(f"{shot} ({shot.stat().st_size // 1024} KB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
