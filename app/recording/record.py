"""`affect-monitor record`: record a session without a window.

    affect-monitor record --out DIR [--camera N | --video FILE] [--mic N | --audio FILE]
                          [--seconds N] [--no-media] [--participant ID --session ID]
                          [--condition C] [--notes TEXT] [--model M] [--fast]
                          [--baseline N] [--lsl]

``--video FILE`` takes the file's picture and, unless --mic/--audio is given, its sound;
files play in real time like devices, or with ``--fast`` as fast as the model runs
(nothing dropped). Without any source: camera 0 and the default microphone. Ctrl+C or
SIGTERM stop the recording cleanly.

``--baseline N``: the first N seconds are the neutral baseline (mean/std in
session.json, a ``baseline`` event; the exports add baseline-corrected columns).
``--lsl`` (needs the ``[lsl]`` extra): LSL outlets ``Affect`` (the predictions) and
``Markers`` (every event logged), and other apps' ``Markers`` streams recorded into
events.tsv. Exit status: 0 complete, 1 stopped early by a fault
(the message says which; what was recorded is kept), 2 could not start.
"""
from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import time
from pathlib import Path

from app.pipeline import Engine
from app.provenance import DEFAULT_MODEL
from app.recording import layout, schema
from app.recording.recorder import RecorderError, SessionRecorder
from app.sources import SourceError
from app.sources.choice import (add_model_argument, add_source_arguments, build_sources,
                                choice_from_args, pacing_from_args)
from app.vad import load_voice_detector
from models.faces import FaceDetectorError
from models.media import MediaError
from models.runtime import AffectSession, ModelLoadError


def parse_args(argv: list[str] | None):
    parser = argparse.ArgumentParser(prog="affect-monitor record",
                                     description="Record a session folder without a window.")
    parser.add_argument("--out", type=Path, required=True, metavar="DIR",
                        help="the new session folder")
    add_source_arguments(parser)
    parser.add_argument("--seconds", type=float, metavar="N",
                        help="stop after N seconds (default: until Ctrl+C or the files end)")
    parser.add_argument("--no-media", action="store_true",
                        help="keep no video or audio: predictions, ratings and events only")
    parser.add_argument("--participant", default="", metavar="ID", type=_label,
                        help="participant id, letters and digits (a BIDS label: sub-ID)")
    parser.add_argument("--session", default="", metavar="ID", type=_label,
                        help="session id, letters and digits (a BIDS label: ses-ID)")
    parser.add_argument("--condition", default="", metavar="C",
                        help="experimental condition, kept in session.json")
    parser.add_argument("--notes", default="", metavar="TEXT",
                        help="free-text notes, kept in session.json")
    add_model_argument(parser)
    parser.add_argument("--vad", choices=("silero", "energy"), default="silero",
                        help="voice activity detector (default: silero when installed)")
    parser.add_argument("--baseline", type=float, metavar="N",
                        help="take the first N seconds as the neutral baseline (exports then "
                             "add baseline-corrected arousal_bc/valence_bc)")
    parser.add_argument("--lsl", action="store_true",
                        help="Lab Streaming Layer: outlets 'Affect' and 'Markers', and record "
                             "other apps' Markers streams (needs the [lsl] extra)")
    args = parser.parse_args(argv)
    longest = schema.MAX_SESSION_S  # what the readers accept
    if args.seconds is not None and not 0 < args.seconds <= longest:  # NaN fails too
        parser.error(f"--seconds must be a number of seconds above 0, at most {longest:g} "
                     f"(got {args.seconds:g})")
    if args.baseline is not None and not 0 < args.baseline <= longest:
        parser.error(f"--baseline must be a positive number of seconds, at most {longest:g} "
                     f"(got {args.baseline:g})")
    if args.baseline is not None and args.seconds is not None and args.baseline > args.seconds:
        parser.error("--baseline is longer than --seconds")
    return args


def _label(text: str) -> str:
    """An id as given, if it is a BIDS label (the exports name files ``sub-<id>``)."""
    if text != layout.safe_label(text):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a label: use letters and digits only (e.g. P01)")
    return text


class PoliteStop:
    """Ctrl+C (SIGINT) and SIGTERM only set a flag, which the main loop reads, so a polite
    stop ends the recording exactly as the time limit does (every row written, session.json
    final, exit 0). The handler must not raise: a KeyboardInterrupt landing inside
    ``Thread.join`` can mark the writer thread finished while it still runs (Python 3.11),
    and the daemon writer then dies with the process before its last rows and session.json."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.requested = False  # a plain flag: Event.set() in a handler can deadlock
        self._previous: dict = {}

    def __enter__(self) -> "PoliteStop":
        if threading.current_thread() is not threading.main_thread():
            return self  # only the main thread may handle signals (a caller's own thread)
        for number in self.SIGNALS:
            self._previous[number] = signal.signal(number, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)

    def _handle(self, signum, frame) -> None:
        self.requested = True  # nothing else here: no locks, no I/O in a signal handler


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with PoliteStop() as polite:
        return _record(args, argv, polite)


def _say(text: str) -> None:
    print(f"affect-monitor record: {text}", file=sys.stderr)


def _record(args, argv, polite: PoliteStop) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    engine = _open_engine(args)
    if engine is None:
        return 2
    metadata = {"participant_id": args.participant, "session_id": args.session,
                "condition": args.condition, "notes": args.notes,
                "command": "affect-monitor record " + " ".join(argv or sys.argv[1:])}
    if polite.requested:
        _say("stopped before the recording began; nothing was recorded")
        return 0
    recorder = SessionRecorder(args.out, metadata, engine, store_media=not args.no_media,
                               duration_s=args.seconds, baseline_s=args.baseline,
                               lsl=args.lsl)
    started = _start(args, engine, recorder)
    if started is None:
        return 2
    affect = started[0]
    if args.baseline:
        print(f"baseline: the first {args.baseline:g} s (keep the participant neutral)",
              file=sys.stderr, flush=True)
    print(f"recording into {args.out} (Ctrl+C to stop)", file=sys.stderr, flush=True)
    while not polite.requested and recorder.running:
        time.sleep(0.1)
    if polite.requested:
        print("stopping...", file=sys.stderr, flush=True)
    try:
        info = recorder.stop()
    except RecorderError as error:  # the disk stopped answering; what reached it stays
        engine.stop()
        _say(str(error))
        return 1
    engine.stop()
    if affect is not None:
        affect.stop()
    _summarise(info, args)
    if recorder.error:
        _say(recorder.error)
        return 1
    return 0


def _open_engine(args) -> Engine | None:
    """The model and sources the flags ask for, or None after saying why not."""
    if args.model == DEFAULT_MODEL and not DEFAULT_MODEL.is_file():
        _say(f"no --model given and the default model ({DEFAULT_MODEL}) is not installed; "
             "pass --model FILE.onnx")
        return None
    if args.lsl:
        from app.recording.lsl import lsl_missing

        missing = lsl_missing()
        if missing:
            _say(f"--lsl: {missing}")
            return None
    try:
        model = AffectSession(args.model)
        audio, video = build_sources(choice_from_args(args, devices_by_default=True),
                                     pacing_from_args(args))
        return Engine(model, audio, video, vad=load_voice_detector(args.vad))
    except (ModelLoadError, MediaError, SourceError, FaceDetectorError) as error:
        _say(str(error))
        return None


def _start(args, engine: Engine, recorder: SessionRecorder) -> tuple | None:
    """Start the recorder, the LSL Affect outlet (``--lsl``) and the engine, in that
    order; (the outlet or None,), or None after undoing what started and saying why."""
    try:
        recorder.start()
    except RecorderError as error:
        _say(str(error))
        return None
    affect = None
    if args.lsl:
        from app.recording.lsl import AffectOutlet

        try:
            affect = AffectOutlet(engine)
            affect.start()
        except (RuntimeError, OSError) as error:
            recorder.stop()
            _say(f"cannot open the LSL Affect outlet: {error}")
            return None
    try:
        engine.start()
    except SourceError as error:
        recorder.stop()
        if affect is not None:
            affect.stop()
        _say(f"{error}; nothing was recorded")
        return None
    return (affect,)


def _summarise(info: dict, args) -> None:
    media = info["media"]
    parts = [f"{info['duration_s']:.2f} s", f"{info['counts']['predictions']} predictions"]
    if media["audio"]:
        parts.append(f"{media['audio']['seconds']:.2f} s of audio")
    if media["video"]:
        parts.append(f"{media['video']['frames']} video frames")
    print(f"{info['status']}: " + ", ".join(parts) + f" in {args.out}", file=sys.stderr)
    baseline = info.get("baseline")
    if baseline:
        end = baseline["start_s"] + baseline["duration_s"]
        print(f"baseline {baseline['start_s']:.1f}-{end:.1f}"
              f" s: arousal {baseline['arousal']['mean']:+.3f} (sd {baseline['arousal']['std']:.3f}),"
              f" valence {baseline['valence']['mean']:+.3f} (sd {baseline['valence']['std']:.3f})",
              file=sys.stderr)
    elif args.baseline:
        _say("no baseline was stored (the recording ended before any of it)")


if __name__ == "__main__":
    sys.exit(main())
