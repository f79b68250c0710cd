"""session.json's content, from what a recording knows (``SessionRecorder.session_info``),
and the one-line description of a write error the recorder reports."""
from __future__ import annotations

import errno
import json
import math
import platform
import time
from datetime import datetime, timedelta, timezone

import av

from app.pipeline import Engine, EngineStats
from app.provenance import software_version
from app.recording import layout
from app.recording.writers import RecordingFiles

CLOCK = ("time 0.0 = audio.wav sample 0; monotonic_s is time.monotonic() at that sample "
         "in the recording process")


def session_json(recorder) -> dict:
    """session.json of ``recorder`` (a ``SessionRecorder``) as it stands now."""
    engine: Engine = recorder.engine
    md, files = recorder.metadata, recorder.files
    stats = engine.stats()
    wall_s = time.monotonic() - recorder.started_wall
    return {
        "format": layout.FORMAT_NAME, "format_version": layout.FORMAT_VERSION,
        "status": recorder.status, "stop_reason": recorder.stop_reason,
        "participant_id": md.get("participant_id", md.get("participant")) or None,
        "session_id": md.get("session_id", md.get("session")) or None,
        "condition": md.get("condition") or None,
        "notes": md.get("notes") or "",
        "metadata": md,
        "start": _start(recorder),
        "duration_s": round(recorder.recorded_s, 3),
        "wall_s": round(wall_s, 3),
        "devices": _devices(engine),
        "rates": _rates(recorder, files, wall_s),
        "model": {"name": engine.spec.name, "file": engine.model.path.name,
                  "sha256": recorder.model_sha, "provider": engine.model.provider,
                  "voice_detector": stats.voice_detector,
                  "spec": json.loads(engine.spec.to_json())},
        "software": _software(),
        "media": (files.media_info(recorder.store_media) if files is not None
                  else {"stored": recorder.store_media, "audio": None, "video": None}),
        "baseline": recorder.baseline,
        "lsl": recorder.bridge.info() if recorder.lsl and recorder.bridge is not None else None,
        "counts": {"predictions": recorder.predictions_written,
                   "ratings": files.rows(layout.RATINGS) if files is not None else 0,
                   "events": files.rows(layout.EVENTS) if files is not None else 0},
        "quality": _quality(recorder, stats, files),
    }


def _start(recorder) -> dict:
    origin = recorder.timeline.to_monotonic(recorder.origin_s)
    start_utc = recorder.started_utc if origin is None else (
        datetime.now(timezone.utc) - timedelta(seconds=time.monotonic() - origin))
    return {"utc": start_utc.isoformat(timespec="milliseconds"), "monotonic_s": origin,
            "engine_time_s": recorder.origin_s, "clock": CLOCK}


def _devices(engine: Engine) -> dict:
    audio, video = engine.audio_source, engine.video_source
    return {"audio": audio.name, "audio_live": audio.live,
            "video": video.name if video is not None else None,
            "video_live": video.live if video is not None else None}


def _rates(recorder, files: RecordingFiles | None, wall_s: float) -> dict:
    has_video = recorder.engine.video_source is not None
    samples = files.audio_samples if files is not None else None
    span = files.frame_span_s() if files is not None else None
    real_frames = files.video_frames - files.placeholder if files is not None else 0
    return {"requested": {"audio_hz": recorder.rate, "predictions_hz": 1 / recorder.step_s,
                          "video_fps": recorder.video_fps if has_video else None},
            "measured": {
                "predictions_per_wall_s": _ratio(recorder.predictions_written, wall_s),
                "audio_samples_per_wall_s": _ratio(samples, wall_s) if samples is not None
                else None,
                "video_fps": _ratio(real_frames - 1, span) if span else None}}


def _software() -> dict:
    import onnxruntime

    return {"affect-monitor": software_version(), "python": platform.python_version(),
            "onnxruntime": onnxruntime.__version__, "av": av.__version__,
            "platform": platform.platform()}


def _quality(recorder, stats: EngineStats, files: RecordingFiles | None) -> dict:
    base, feeds = recorder.stats_at_start, recorder.feeds
    return {
        "dropped_windows": stats.dropped_windows - base.dropped_windows,
        "audio_overflows": stats.device_overflows - base.device_overflows,
        "frames_received": stats.frames_received - base.frames_received,
        "no_face_steps": stats.no_face_steps - base.no_face_steps,
        "predictions_dropped": feeds.predictions.dropped if feeds is not None else 0,
        "frames_dropped": feeds.frames_lost if feeds is not None else 0,
        "frames_before_start": files.frames_before_start if files is not None else 0,
        "frames_out_of_order": files.frames_unordered if files is not None else 0,
        "ratings_merged_same_time": recorder.ratings_merged,
        "audio_samples_dropped": files.audio_dropped if files is not None else 0,
        "audio_samples_filled_with_silence": files.audio_gap if files is not None else 0,
        "faults": list(recorder.faults)}


def _ratio(a: float, b: float | None) -> float | None:
    return round(a / b, 3) if b and b > 0 and math.isfinite(b) else None


def describe_error(error: BaseException) -> str:
    """A write error in words a user can act on."""
    number = getattr(error, "errno", None)
    if number == errno.ENOSPC:
        return "the disk is full"
    if number == errno.EFBIG:
        return "a file reached the size limit allowed for this process"
    if number in (errno.ENODEV, errno.EIO):
        return f"the storage device is gone ({error.strerror})"
    if number in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"the folder is not writable ({error.strerror})"
    if isinstance(error, OSError) and error.strerror:
        where = f" ({error.filename})" if error.filename else ""
        return f"{error.strerror}{where}"
    return str(error) or type(error).__name__
