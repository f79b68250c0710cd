"""The session folder: file names, columns, and session.json.

One folder per recording, every file readable on its own, every time in seconds on one
clock: sample 0 of ``audio.wav`` is 0.0 s, and the predictions, frames, ratings and
events are on that clock too::

    session.json      who, when, devices, rates, model, software, quality counters
    predictions.csv   time_s, arousal, valence, face_found, face_score, voice_active,
                      latency_ms (one row per 40 ms; the columns of `affect-monitor
                      analyze` plus the live latency)
    ratings.csv       time_s, arousal, valence (self-ratings, -1..1; the training reader's
                      label format)
    events.tsv        onset, duration, trial_type, value (BIDS events)
    audio.wav         16 kHz mono 16-bit PCM          } absent with --no-media;
    video.mp4         H.264, fragmented MP4            } video only with a camera/video
    frames.csv        frame, time_s, source_frame      } (frame = index in video.mp4)

``video.mp4`` starts at 0.0 s like the audio: when the first real frame came later, a
black placeholder frame is put at 0.0 s (video frame 0, not listed in frames.csv), so a
reader that takes a file's first frame as its time zero stays aligned with the audio.
"""
from __future__ import annotations

import json
import os
import re
import unicodedata
from pathlib import Path

SESSION_JSON = "session.json"
PREDICTIONS = "predictions.csv"
RATINGS = "ratings.csv"
EVENTS = "events.tsv"
AUDIO = "audio.wav"
VIDEO = "video.mp4"
FRAMES = "frames.csv"
FILES = (SESSION_JSON, PREDICTIONS, RATINGS, EVENTS, AUDIO, VIDEO, FRAMES)
LOCK = ".affect-monitor.lock"  # an OS lock: held while a process records into or repairs
RESERVE = ".affect-monitor.reserve"  # disk kept while recording, for the last session.json

FORMAT_NAME = "affect-monitor-session"
FORMAT_VERSION = 1

# The first six are app.analyze.CSV_COLUMNS (checked by a test), so a recorded session
# and an offline analysis of the same media can be compared column for column.
PREDICTION_COLUMNS = ("time_s", "arousal", "valence", "face_found", "face_score",
                      "voice_active", "latency_ms")
RATING_COLUMNS = ("time_s", "arousal", "valence")
EVENT_COLUMNS = ("onset", "duration", "trial_type", "value")
FRAME_COLUMNS = ("frame", "time_s", "source_frame")

# session.json "status"
RECORDING = "recording"  # still running, or killed (repair tells which)
COMPLETE = "complete"
STOPPED = "stopped"  # ended early by a fault; "stop_reason" says which
INTERRUPTED = "interrupted"  # killed, then repaired

FLUSH_S = 0.5  # rows and audio reach the OS at least this often (a crash loses less)


class SessionFormatError(ValueError):
    """A folder is not a session folder, or a file in it cannot be read."""


class FolderBusy(RuntimeError):
    """Another process holds the folder's lock (it is recording into it, or repairing it)."""


def lock_folder(folder: Path):
    """Take the folder's exclusive OS lock (``filelock``: flock on POSIX, LockFileEx on
    Windows) without waiting; release it with ``.release()``. The OS drops it when the
    process dies, so a crash never leaves a folder locked. FolderBusy if it is held."""
    from filelock import FileLock, Timeout

    lock = FileLock(Path(folder) / LOCK, timeout=0, thread_local=False)
    try:
        lock.acquire()
    except Timeout:
        raise FolderBusy(f"{folder} is in use by another affect-monitor process (recording "
                         "or repair); wait for it to finish or choose another folder") from None
    return lock


def safe_label(text) -> str:
    """``text`` as a BIDS label: ASCII letters and digits only, so an id typed by a user can
    name a folder or file (``sub-<label>``) and never reach outside it (no ``/``, ``..``)."""
    return re.sub(r"[^A-Za-z0-9]", "", str(text or ""))


def clean_text(text) -> str:
    """One line without tabs or control characters (a NUL is not allowed in XML, so it
    would make ELAN's .eaf unreadable), fit for a TSV cell and a one-channel marker."""
    text = "".join(c for c in str(text) if unicodedata.category(c) not in ("Cc", "Cs")
                   or c in "\t\n\r")
    return " ".join(text.replace("\ufffe", "").replace("\uffff", "").split())


def prediction_row(time_s: float, arousal: float, valence: float, face_found: bool,
                   face_score: float, voice_active: bool, latency_ms: float) -> tuple:
    """One predictions.csv row, formatted as ``app.analyze.write_predictions`` does."""
    return (f"{time_s:.3f}", f"{arousal:.6f}", f"{valence:.6f}", int(face_found),
            f"{face_score:.4f}", int(voice_active), f"{latency_ms:.2f}")


def write_json_atomic(path: Path, data: dict) -> None:
    """Replace ``path`` in one step: a crash leaves the old or the new file, never half."""
    temporary = path.with_name(path.name + ".tmp")
    try:
        with open(temporary, "w") as handle:
            handle.write(json.dumps(data, indent=1, default=str) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)  # a full disk leaves no half-written .tmp behind
        raise


def read_session_json(folder: Path) -> dict:
    """session.json, validated against ``app.recording.schema`` (SessionFormatError)."""
    from app.recording.schema import parse_session_json

    path = Path(folder) / SESSION_JSON
    if not path.is_file():
        raise SessionFormatError(f"{folder}: not a session folder (no {SESSION_JSON})")
    try:
        return parse_session_json(path)
    except OSError as error:
        raise SessionFormatError(f"{path}: cannot be read ({error.strerror})") from None


def read_table(path: Path, delimiter: str = ",") -> list[dict[str, str]]:
    """Rows of a CSV/TSV written by the recorder; a torn last line is ignored."""
    import csv

    if not path.is_file():
        return []
    text = path.read_text(errors="replace")
    if text and not text.endswith("\n"):
        text = text[:text.rfind("\n") + 1]  # the row being written when it stopped
    try:
        return list(csv.DictReader(text.split("\n")[:-1], delimiter=delimiter))
    except csv.Error as error:  # e.g. a field over csv's size limit: not our writing
        raise SessionFormatError(f"{path}: not a table this app wrote ({error})") from None
