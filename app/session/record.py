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

from app.provenance import DEFAULT_MODEL
from app.pipeline import Engine
from app.session import layout, schema
from app.session.recorder import RecorderError, SessionRecorder
from app.sources import (AudioFileSource, CameraSource, MicrophoneSource, Pacing, SourceError,
                         VideoFileSource)
from app.vad import load_voice_detector
from models.faces import FaceDetectorError
from models.media import MediaError, probe
from models.runtime import AffectSession, ModelLoadError


def parse_args(argv: list[str] | None):
    parser = argparse.ArgumentParser(prog="affect-monitor record",
                                     description="Record a session folder without a window.")
    parser.add_argument("--out", type=Path, required=True, metavar="DIR",
                        help="the new session folder")
    picture = parser.add_mutually_exclusive_group()
    picture.add_argument("--camera", type=int, metavar="N", help="camera index")
    picture.add_argument("--video", type=Path, metavar="FILE",
                         help="a video file (its sound too, unless --mic/--audio)")
    sound = parser.add_mutually_exclusive_group()
    sound.add_argument("--mic", metavar="N", help="microphone index or name")
    sound.add_argument("--audio", type=Path, metavar="FILE", help="an audio file")
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
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL,
                        help=f"exported .onnx model (default: {DEFAULT_MODEL.name})")
    parser.add_argument("--fast", action="store_true",
                        help="read files as fast as the model runs instead of in real time")
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


def build_sources(args):
    """(audio, video) sources; SourceError/MediaError with a message when unusable."""
    pacing = Pacing.FAST if args.fast else Pacing.REALTIME
    nothing = args.camera is None and args.video is None and args.mic is None and args.audio is None
    video = audio = None
    if args.video is not None:
        info = probe(args.video)
        if info.has_video:
            video = VideoFileSource(args.video, pacing)
        if info.has_audio and args.mic is None and args.audio is None:
            audio = AudioFileSource(args.video, pacing)
    elif args.camera is not None or nothing:
        video = CameraSource(args.camera or 0)
    if args.audio is not None:
        audio = AudioFileSource(args.audio, pacing)
    elif args.mic is not None or nothing:
        device = int(args.mic) if args.mic is not None and args.mic.isdigit() else args.mic
        audio = MicrophoneSource(device)
    return audio, video


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


def _record(args, argv, polite: PoliteStop) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    say = lambda text: print(f"affect-monitor record: {text}", file=sys.stderr)  # noqa: E731
    if args.model == DEFAULT_MODEL and not DEFAULT_MODEL.is_file():
        say(f"no --model given and the default model ({DEFAULT_MODEL}) is not installed; "
            "pass --model FILE.onnx")
        return 2
    if args.lsl:
        from app.session.lsl import lsl_missing

        missing = lsl_missing()
        if missing:
            say(f"--lsl: {missing}")
            return 2
    try:
        session = AffectSession(args.model)
        audio, video = build_sources(args)
        engine = Engine(session, audio, video, vad=load_voice_detector(args.vad))
    except (ModelLoadError, MediaError, SourceError, FaceDetectorError) as error:
        say(str(error))
        return 2
    metadata = {"participant_id": args.participant, "session_id": args.session,
                "condition": args.condition, "notes": args.notes,
                "command": "affect-monitor record " + " ".join(argv or sys.argv[1:])}
    if polite.requested:
        say("stopped before the recording began; nothing was recorded")
        return 0
    recorder = SessionRecorder(args.out, metadata, engine, store_media=not args.no_media,
                               duration_s=args.seconds, baseline_s=args.baseline,
                               lsl=args.lsl)
    try:
        recorder.start()
    except RecorderError as error:
        say(str(error))
        return 2
    affect = None
    if args.lsl:
        from app.session.lsl import AffectOutlet

        try:
            affect = AffectOutlet(engine)
            affect.start()
        except (RuntimeError, OSError) as error:
            recorder.stop()
            say(f"cannot open the LSL Affect outlet: {error}")
            return 2
    try:
        engine.start()
    except SourceError as error:
        recorder.stop()
        if affect is not None:
            affect.stop()
        say(f"{error}; nothing was recorded")
        return 2
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
        say(str(error))
        return 1
    engine.stop()
    if affect is not None:
        affect.stop()
    media = info["media"]
    parts = [f"{info['duration_s']:.2f} s", f"{info['counts']['predictions']} predictions"]
    if media["audio"]:
        parts.append(f"{media['audio']['seconds']:.2f} s of audio")
    if media["video"]:
        parts.append(f"{media['video']['frames']} video frames")
    print(f"{info['status']}: " + ", ".join(parts) + f" in {args.out}", file=sys.stderr)
    baseline = info.get("baseline")
    if baseline:
        print(f"baseline {baseline['start_s']:.1f}-{baseline['start_s'] + baseline['duration_s']:.1f}"
              f" s: arousal {baseline['arousal']['mean']:+.3f} (sd {baseline['arousal']['std']:.3f}),"
              f" valence {baseline['valence']['mean']:+.3f} (sd {baseline['valence']['std']:.3f})",
              file=sys.stderr)
    elif args.baseline:
        say("no baseline was stored (the recording ended before any of it)")
    if recorder.error:
        say(recorder.error)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
