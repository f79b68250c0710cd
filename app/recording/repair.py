"""`affect-monitor repair DIR`: make an interrupted session folder whole, say what was fixed.

What a killed recorder can leave, and what is done about it:
* a torn last row in a CSV/TSV -> dropped;  events out of order -> sorted;
* ratings.csv out of order or with two ratings at one time -> sorted, the last kept
  (a label track for training needs strictly increasing times);
* audio.wav whose header counts up to the last flush -> counts every whole sample;
* video.mp4 ending in a torn fragment -> rewritten from its whole packets (when that
  decodes); frames.csv rows for frames the video lost -> dropped;
* session.json still saying "recording" -> "interrupted", with the counts of what is
  there and a "repaired" entry listing these fixes.
A folder that is already whole is left untouched ("nothing to repair").
"""
from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from app.recording import layout, schema
from app.recording.tables import rewrite_table, tidy_ratings
from app.recording.video import count_frames, salvage_video
from app.recording.wav import repair_wav
from models.spec import SAMPLE_RATE

STILL_WRITING_S = 3.0  # a "recording" folder touched more recently may still be recording


class RepairError(RuntimeError):
    pass


def repair(folder: str | Path, force: bool = False) -> list[str]:
    """Repair ``folder`` in place; the list of fixes (empty: nothing was wrong)."""
    folder = Path(folder)
    info = layout.read_session_json(folder)
    try:
        lock = layout.lock_folder(folder)  # a recorder holds it while it records
    except layout.FolderBusy as error:
        raise RepairError(str(error)) from None
    except OSError:
        lock = None  # a read-only folder: nothing can write it, repair says what it can't fix
    try:
        return _repair(folder, info, force)
    finally:
        if lock is not None:
            lock.release()


TABLES = {layout.PREDICTIONS: (layout.PREDICTION_COLUMNS, ","),
          layout.RATINGS: (layout.RATING_COLUMNS, ","),
          layout.EVENTS: (layout.EVENT_COLUMNS, "\t"),
          layout.FRAMES: (layout.FRAME_COLUMNS, ",")}


def _repair(folder: Path, info: dict, force: bool) -> list[str]:
    (folder / layout.RESERVE).unlink(missing_ok=True)  # a killed recorder's spare disk
    if info.get("status") == layout.RECORDING and not force:
        newest = max(p.stat().st_mtime for p in folder.iterdir() if p.name != layout.LOCK)
        if time.time() - newest < STILL_WRITING_S:
            raise RepairError(f"{folder} was written {time.time() - newest:.1f} s ago and may "
                              "still be recording; stop it first (or pass --force)")
    fixes: list[str] = []
    step_s = 1.0 / info["rates"]["requested"]["predictions_hz"]
    rows = _read_tables(folder, step_s)
    _fix_tables(folder, rows, fixes)
    audio_s = _fix_audio(folder, fixes)
    video_frames = _fix_video(folder, rows, fixes)
    _fix_counts(info, rows, step_s, audio_s, video_frames, fixes)
    if fixes:
        info.setdefault("repaired", []).append(
            {"utc": datetime.now(timezone.utc).isoformat(timespec="seconds"), "fixes": fixes})
        layout.write_json_atomic(folder / layout.SESSION_JSON, info)
    return fixes


def _read_tables(folder: Path, step_s: float) -> dict[str, list[dict]]:
    """Every table's rows, all checked before anything is changed."""
    rows: dict[str, list[dict]] = {}
    for name, (_, delimiter) in TABLES.items():
        path = folder / name
        if path.exists():
            rows[name] = layout.read_table(path, delimiter)
            schema.check_table(path, rows[name])
    if layout.PREDICTIONS in rows:
        schema.prediction_times(folder / layout.PREDICTIONS, rows[layout.PREDICTIONS], step_s)
    return rows


def _fix_tables(folder: Path, rows: dict[str, list[dict]], fixes: list[str]) -> None:
    """Torn last rows dropped, ratings tidied, events sorted."""
    for name, (columns, delimiter) in TABLES.items():
        path = folder / name
        if not path.exists():
            continue
        raw = path.read_bytes()
        if raw and not raw.endswith(b"\n"):
            _rewrite(path, columns, rows[name], delimiter)
            fixes.append(f"{name}: dropped a torn last row ({len(rows[name])} rows kept)")
    if (folder / layout.RATINGS).exists():
        merged = tidy_ratings(folder / layout.RATINGS)
        rows[layout.RATINGS] = layout.read_table(folder / layout.RATINGS)
        if merged:
            fixes.append(f"{layout.RATINGS}: sorted by time, {merged} rating(s) at an "
                         "already rated time merged (the last one kept)")
    events = rows.get(layout.EVENTS, [])
    ordered = sorted(events, key=lambda r: float(r["onset"]))
    if ordered != events:
        _rewrite(folder / layout.EVENTS, layout.EVENT_COLUMNS, ordered, "\t")
        fixes.append(f"{layout.EVENTS}: sorted by onset")


def _fix_audio(folder: Path, fixes: list[str]) -> float | None:
    """audio.wav's header made to count every whole sample; its duration (None: none)."""
    if not (folder / layout.AUDIO).exists():
        return None
    fixed = repair_wav(folder / layout.AUDIO)
    if fixed:
        fixes.append(fixed)
    import soundfile

    return soundfile.info(str(folder / layout.AUDIO)).duration


def _fix_video(folder: Path, rows: dict[str, list[dict]], fixes: list[str]) -> int | None:
    """video.mp4 without its torn tail, frames.csv without the frames it lost; its frames."""
    if not (folder / layout.VIDEO).exists():
        return None
    video_frames, fixed = salvage_video(folder / layout.VIDEO)
    if fixed:
        fixes.append(fixed)
    frames = rows.get(layout.FRAMES, [])
    kept = [r for r in frames if float(r["frame"]) < video_frames]
    if len(kept) < len(frames):
        _rewrite(folder / layout.FRAMES, layout.FRAME_COLUMNS, kept, ",")
        fixes.append(f"{layout.FRAMES}: dropped {len(frames) - len(kept)} row(s) of "
                     f"frames the video lost in the crash")
    return video_frames


def _fix_counts(info: dict, rows: dict[str, list[dict]], step_s: float, audio_s: float | None,
                video_frames: int | None, fixes: list[str]) -> None:
    """session.json's status and counts made to say what is on disk."""
    predictions = len(rows.get(layout.PREDICTIONS, []))
    counted = (info.get("counts") or {}).get("predictions")
    if info.get("status") != layout.RECORDING and counted is not None and counted != predictions:
        # Stopped by a full disk: session.json counted rows that never reached it.
        info["duration_s"] = round(predictions * step_s, 3)
        info["counts"]["predictions"] = predictions
        fixes.append(f"{layout.SESSION_JSON}: {predictions} predictions on disk, not "
                     f"{counted} (duration_s {info['duration_s']:.2f} s)")
    if info.get("status") != layout.RECORDING:
        return
    info["status"] = layout.INTERRUPTED
    info["duration_s"] = round(predictions * step_s, 3)
    info["counts"] = {"predictions": predictions,
                      "ratings": len(rows.get(layout.RATINGS, [])),
                      "events": len(rows.get(layout.EVENTS, []))}
    _media_counts(info, rows, audio_s, video_frames)
    fixes.append(f"{layout.SESSION_JSON}: status 'recording' -> 'interrupted' "
                 f"({info['duration_s']:.2f} s of predictions kept"
                 + (f", {audio_s:.2f} s of audio" if audio_s is not None else "")
                 + (f", {video_frames} video frames" if video_frames is not None else "")
                 + ")")


def _media_counts(info: dict, rows: dict[str, list[dict]], audio_s: float | None,
                  video_frames: int | None) -> None:
    media = info.get("media") or {}
    if media.get("audio") and audio_s is not None:
        rate = info["rates"]["requested"].get("audio_hz") or SAMPLE_RATE
        media["audio"].update(seconds=audio_s, samples=round(audio_s * rate))
    if media.get("video") is not None or video_frames is not None:
        listed = rows.get(layout.FRAMES, [])
        media["video"] = {**(media.get("video") or {}), "file": layout.VIDEO,
                          "codec": "h264", "frames": video_frames,
                          "placeholder_frame_at_0": bool(listed) and listed[0]["frame"] == "1"}


def check(folder: str | Path) -> list[str]:
    """Problems a reader would meet in ``folder`` (empty: whole). Reads, changes nothing."""
    folder = Path(folder)
    problems = []
    info = layout.read_session_json(folder)
    if info.get("status") == layout.RECORDING:
        problems.append("session.json still says 'recording'")
    for name in (layout.PREDICTIONS, layout.RATINGS, layout.EVENTS, layout.FRAMES):
        path = folder / name
        if path.exists() and path.stat().st_size and not path.read_bytes().endswith(b"\n"):
            problems.append(f"{name} ends in a torn row")
    if (folder / layout.VIDEO).exists() and not count_frames(folder / layout.VIDEO)[1]:
        problems.append("video.mp4 does not decode to its end")
    return problems


def _rewrite(path: Path, columns, rows: list[dict], delimiter: str) -> None:
    rewrite_table(path, columns, ([r.get(c, "") for c in columns] for r in rows), delimiter)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="affect-monitor repair",
                                     description="Make an interrupted session folder whole.")
    parser.add_argument("folder", type=Path, metavar="DIR",
                        help="the session folder of a recording that did not stop cleanly")
    parser.add_argument("--force", action="store_true",
                        help="repair even if the folder was written in the last seconds")
    args = parser.parse_args(argv)
    try:
        fixes = repair(args.folder, force=args.force)
    except (layout.SessionFormatError, RepairError, ValueError) as error:
        print(f"affect-monitor repair: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        print(f"affect-monitor repair: cannot repair {args.folder}: {error}", file=sys.stderr)
        return 2
    if not fixes:
        print(f"{args.folder}: nothing to repair")
    for fix in fixes:
        print(f"fixed {fix}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
