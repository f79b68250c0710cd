"""`affect-monitor [--camera N | --video FILE] [--mic N | --audio FILE] [--model M]`

Opens the window on those sources; with no flags, on the devices chosen last time, else
the default camera and microphone. Without a usable model the window still opens and
says to choose one.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from app.provenance import DEFAULT_MODEL

NO_SOURCES = ("No camera and no microphone found. Open a video or audio file "
              "(File ▸ Open, Ctrl+O).")


def build_parser(epilog: str | None = None) -> argparse.ArgumentParser:
    """The window's options (`affect-monitor --help` adds the subcommands as ``epilog``)."""
    parser = argparse.ArgumentParser(prog="affect-monitor", description=__doc__.split("\n\n")[1],
                                     epilog=epilog,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    video = parser.add_mutually_exclusive_group()
    video.add_argument("--camera", type=int, metavar="N", help="camera index")
    video.add_argument("--video", metavar="FILE", help="video file (its sound too, unless "
                                                       "--mic/--audio)")
    audio = parser.add_mutually_exclusive_group()
    audio.add_argument("--mic", type=int, metavar="N", help="microphone device index")
    audio.add_argument("--audio", metavar="FILE", help="audio file")
    parser.add_argument("--model", metavar="M", help=f"ONNX model (default: last used, "
                                                     f"else {DEFAULT_MODEL.name})")
    parser.add_argument("--quit-after", type=float, metavar="S",
                        help="close the window after S seconds (scripts, smoke tests)")
    parser.add_argument("--screenshot", metavar="PNG",
                        help="save the window as PNG at --quit-after (default 3 s)")
    parser.add_argument("--settings", metavar="INI",
                        help="read and save settings in this file instead of the user's")
    return parser


def parse_args(argv: list[str]) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def choose_sources(args, remembered, devices):
    """Flags win; then what was chosen last time; then the default devices."""
    from app.sources.choice import SourceChoice

    flags = any(v is not None for v in (args.camera, args.video, args.mic, args.audio))
    if flags:
        return SourceChoice(camera=args.camera, video_file=args.video, microphone=args.mic,
                            audio_file=args.audio)
    if not remembered.empty:
        return remembered
    camera = devices.cameras[0].index if devices.cameras else None
    default_mics = [m.index for m in devices.microphones if m.is_default]
    microphone = default_mics[0] if default_mics else (
        devices.microphones[0].index if devices.microphones else None)
    return SourceChoice(camera=camera, microphone=microphone)


def display_problem(environ=os.environ) -> str | None:
    """Why no window can open here (no display and no Qt platform chosen), else None."""
    if environ.get("QT_QPA_PLATFORM") or environ.get("DISPLAY") or environ.get(
            "WAYLAND_DISPLAY"):
        return None
    return ("no display found (DISPLAY and WAYLAND_DISPLAY are unset). Run it in a desktop "
            "session, under `xvfb-run`, or use `affect-monitor analyze` / `affect-monitor "
            "record` without a window.")


def release_opencv_qt_plugins(environ=os.environ) -> None:
    """opencv-contrib-python (the one mediapipe needs) points Qt at its own bundled Qt 5
    plugins when cv2 is imported; PySide6 (Qt 6) must use its own."""
    import cv2  # noqa: F401  (sets the variable on import)

    path = environ.get("QT_QPA_PLATFORM_PLUGIN_PATH", "")
    if "cv2" in Path(path).parts:
        del environ["QT_QPA_PLATFORM_PLUGIN_PATH"]


def run_gui(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    problem = display_problem()
    if problem:
        print(f"affect-monitor: {problem}", file=sys.stderr)
        return 2
    release_opencv_qt_plugins()
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from app.gui import settings as settings_store

    app = QApplication.instance() or QApplication([sys.argv[0]])
    app.setOrganizationName(settings_store.ORGANISATION)
    app.setApplicationName(settings_store.APPLICATION)
    window = open_window(args)
    if args.screenshot or args.quit_after:
        # One timer, so the screenshot always comes before the close: two single-shot timers
        # of 3.8 and 4 s are coarse timers (5% slack) and may fire in either order.
        QTimer.singleShot(int(1000 * (args.quit_after or 3.0)), lambda: finish(window, args))
    return app.exec()


def open_window(args):
    """The main window, shown and started on the sources and model that the flags, else
    the last run, else the defaults chose; what is missing said in the status bar."""
    from PySide6.QtCore import QSettings

    from app.gui import settings as settings_store
    from app.gui.live import ModelLoadError, load_model
    from app.gui.main_window import MainWindow
    from app.sources import DeviceList, list_devices

    store = (QSettings(args.settings, QSettings.Format.IniFormat) if args.settings
             else settings_store.open_settings())
    settings = settings_store.load(store)
    uses_files = args.video is not None or args.audio is not None
    devices = DeviceList((), (), ()) if uses_files else list_devices()
    settings.sources = choose_sources(args, settings.sources, devices)

    model_path = args.model or settings.model or str(DEFAULT_MODEL)
    session, problem = None, None
    try:
        session = load_model(model_path)
        settings.model = model_path
    except ModelLoadError as error:
        problem = f"{error}. Choose a model (Model ▸ Choose model…)."
    window = MainWindow(settings, store, session, problem, devices=None if not uses_files
                        else devices)
    window.show()
    if session is not None and not settings.sources.empty:
        window.control.start()
    elif settings.sources.empty:
        window.status.message(NO_SOURCES, 0)
        if session is not None:
            window.video.clear(NO_SOURCES)
    for reason in devices.problems:
        window.status.message(reason, 0)
    return window


def finish(window, args) -> None:
    """--screenshot, then --quit-after: say what the engine did and close."""
    if args.screenshot:
        save_screenshot(window, Path(args.screenshot))
    if args.quit_after:
        # For smoke tests and benchmarks: what the engine did while the window ran.
        live = window.control.live
        if live is not None:
            stats = live.stats()
            print(f"affect-monitor: {stats.steps} steps, {stats.dropped_windows} "
                  f"dropped windows, provider {stats.provider}", file=sys.stderr, flush=True)
        window.close()


def save_screenshot(window, path: Path) -> None:
    """The window as the screen shows it, plus where the plots are (for the smoke test)."""
    screen = window.screen()
    pixmap = screen.grabWindow(window.winId())
    if pixmap.isNull():
        pixmap = window.grab()
    pixmap.save(str(path))
    regions = {}
    for name, widget in (("arousal", window.curves.arousal_plot),
                         ("valence", window.curves.valence_plot),
                         ("circumplex", window.circumplex)):
        view = widget.getPlotItem().getViewBox()
        rect = view.mapRectToScene(view.boundingRect())  # plot area inside the axes
        top_left = widget.mapTo(window, widget.mapFromScene(rect.topLeft()))
        ratio = pixmap.width() / max(1, window.width())
        regions[name] = [round(top_left.x() * ratio), round(top_left.y() * ratio),
                         round(rect.width() * ratio), round(rect.height() * ratio)]
    live = window.control.live
    info = {"regions": regions, "predictions": int(window.curves.traces["arousal"].size),
            "steps": live.stats().steps if live else 0,
            "dropped_windows": live.stats().dropped_windows if live else 0,
            "queue_dropped": live.subscription.dropped if live else 0}
    path.with_suffix(".json").write_text(json.dumps(info))


def main() -> int:
    return run_gui()
