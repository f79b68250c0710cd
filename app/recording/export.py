"""`affect-monitor export DIR --to elan|bids|carma [--out PATH]`: a session folder in the
formats researchers' tools read.

* ``elan``  -> DIR/session.eaf (pympi-ling): the video and audio linked as media,
  predictions.csv linked as a secondary (time-series) file, tiers ``events``,
  ``self-rating`` (one annotation per rating, until the next), ``voice`` and ``face``
  (spans where the voice was active / a face was found).
* ``bids``  -> DIR/bids/sub-P/[ses-S/]beh/sub-P[_ses-S]_task-affect_recording-affect_physio
  .tsv.gz + .json (SamplingFrequency 25, StartTime 0, Columns; no header row, "n/a" for
  steps not recorded), and the same stem's _events.tsv.
* ``carma`` -> DIR/carma.csv: ``second,valence,arousal`` (DARMA's x, y order), the model's
  predictions averaged over 1 s bins and scaled to -100..100; ``second`` is the end of
  the bin (1, 2, ...), only whole seconds. With self-ratings also DIR/carma_self.csv.

Baseline: when session.json holds a ``baseline`` (``record --baseline N``), each export
adds baseline-corrected values beside the raw ones, ``arousal_bc``/``valence_bc`` = raw
minus the baseline's mean: the BIDS physio gets two more columns (after the raw ones, so
the raw columns keep their positions; described in the sidecar with the baseline), the
CARMA file ``valence_bc,arousal_bc`` (same -100..100 scale, not clipped: a corrected
value can reach +-200), ELAN a second linked time series ``predictions_bc.csv``
(time_s, arousal, valence, arousal_bc, valence_bc). Self-ratings are left as given.
"""
from __future__ import annotations

import argparse
import csv
import gzip
import json
import math
import sys
from pathlib import Path

import numpy as np

from app.recording import layout
from app.recording.reader import RecordedSession as Session, read_session

FORMATS = ("elan", "bids", "carma")


# -- ELAN ----------------------------------------------------------------------------------
BC_SERIES = "predictions_bc.csv"


def export_elan(session: Session, out: Path) -> Path:
    try:
        from pympi import Elan
    except ImportError:
        raise RuntimeError("ELAN export needs pympi-ling: pip install pympi-ling") from None
    folder = session.folder
    eaf = Elan.Eaf(author="affect-monitor")
    for name, mime in ((layout.VIDEO, "video/mp4"), (layout.AUDIO, "audio/x-wav")):
        if (folder / name).exists():
            eaf.add_linked_file(str((folder / name).resolve()), relpath=name, mimetype=mime)
    eaf.add_secondary_linked_file(str((folder / layout.PREDICTIONS).resolve()),
                                  relpath=layout.PREDICTIONS, mimetype="text/plain")
    if session.corrected() is not None:
        series = _write_corrected(session, out / BC_SERIES)
        eaf.add_secondary_linked_file(str(series.resolve()), relpath=BC_SERIES,
                                      mimetype="text/plain")
    _add_events(eaf, session)
    _add_ratings(eaf, session)
    _add_flags(eaf, session)
    eaf.remove_tier("default")
    path = out / "session.eaf"
    eaf.to_file(str(path))
    return path


def _ms(seconds: float) -> int:
    return int(round(seconds * 1000))


def _write_corrected(session: Session, path: Path) -> Path:
    """The baseline-corrected series beside the raw one (ELAN links it)."""
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(("time_s", "arousal", "valence", "arousal_bc", "valence_bc"))
        for row in zip(session.time_s, session.arousal, session.valence, *session.corrected()):
            writer.writerow((f"{row[0]:.3f}", *(f"{v:.6f}" for v in row[1:])))
    return path


def _add_events(eaf, session: Session) -> None:
    eaf.add_tier("events")
    for event in session.events:
        onset = float(event["onset"])
        duration = float(event["duration"]) if event["duration"] not in ("", "n/a") else 0.0
        text = event["trial_type"] + (f": {event['value']}" if event["value"] else "")
        eaf.add_annotation("events", _ms(onset), _ms(onset + max(duration, session.step_s)),
                           text)


def _add_ratings(eaf, session: Session) -> None:
    """Each self-rating holds until the next one (the last for one step)."""
    eaf.add_tier("self-rating")
    times = session.rating_time_s
    for index, (arousal, valence) in enumerate(zip(session.rating_arousal,
                                                   session.rating_valence)):
        until = times[index + 1] if index + 1 < len(times) else times[index] + session.step_s
        if _ms(until) > _ms(times[index]):
            eaf.add_annotation("self-rating", _ms(times[index]), _ms(until),
                               f"arousal {arousal:+.2f}, valence {valence:+.2f}")


def _add_flags(eaf, session: Session) -> None:
    """A "voice" and a "face" tier: one annotation per run of steps with the flag set."""
    end_s = float(session.time_s[-1] + session.step_s) if session.time_s.size else 0.0
    for tier, flags in (("voice", session.voice_active), ("face", session.face_found)):
        eaf.add_tier(tier)
        for begin, end in _runs(flags):
            eaf.add_annotation(tier, _ms(session.time_s[begin]),
                               _ms(min(end_s, session.time_s[end - 1] + session.step_s)), tier)


def _runs(flags: np.ndarray) -> list[tuple[int, int]]:
    """[begin, end) index spans where ``flags`` is True."""
    padded = np.concatenate([[False], flags.astype(bool), [False]])
    edges = np.flatnonzero(np.diff(padded.astype(np.int8)))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist()))


# -- BIDS physio ---------------------------------------------------------------------------
PHYSIO_COLUMNS = ("arousal", "valence", "face_found", "face_score", "voice_active")
BC_COLUMNS = ("arousal_bc", "valence_bc")


def _label(value, fallback: str) -> str:
    return layout.safe_label(value) or fallback


def export_bids(session: Session, out: Path) -> Path:
    subject = _label(session.info.get("participant_id"), "unknown")
    visit = _label(session.info.get("session_id"), "")
    folder = out / "bids" / f"sub-{subject}" / (f"ses-{visit}" if visit else "") / "beh"
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"sub-{subject}" + (f"_ses-{visit}" if visit else "") + "_task-affect"
    steps = np.rint(session.time_s / session.step_s).astype(int)
    count = int(steps.max()) + 1 if steps.size else 0
    corrected = session.corrected()
    columns = PHYSIO_COLUMNS + (BC_COLUMNS if corrected is not None else ())
    grid = np.full((count, len(columns)), np.nan)
    values = np.stack([session.arousal, session.valence, session.face_found,
                       session.face_score, session.voice_active, *(corrected or ())],
                      axis=1).astype(float)
    grid[steps] = values
    physio = folder / f"{stem}_recording-affect_physio.tsv.gz"
    with gzip.open(physio, "wt", newline="") as handle:
        for row in grid:
            handle.write("\t".join("n/a" if math.isnan(v) else _number(v, name)
                                   for v, name in zip(row, columns)) + "\n")
    sidecar = _sidecar(session, columns, corrected is not None)
    (folder / f"{stem}_recording-affect_physio.json").write_text(json.dumps(sidecar, indent=1))
    _write_events(session, folder / f"{stem}_events.tsv")
    return physio


def _sidecar(session: Session, columns: tuple[str, ...], corrected: bool) -> dict:
    """The physio file's JSON sidecar (BIDS: what each column is, the sampling rate)."""
    spec = session.info.get("model", {})
    sidecar = {
        "SamplingFrequency": 1.0 / session.step_s,
        "StartTime": 0.0,
        "Columns": list(columns),
        "arousal": {"Description": "model-estimated arousal for the 40 ms window starting "
                                   "at this sample", "Units": "a.u. (-1..1)"},
        "valence": {"Description": "model-estimated valence", "Units": "a.u. (-1..1)"},
        "face_found": {"Description": "1 if a face was found in the frame used", "Units": "n/a"},
        "face_score": {"Description": "face detector confidence", "Units": "a.u. (0..1)"},
        "voice_active": {"Description": "1 if voice activity was detected", "Units": "n/a"},
        "Manufacturer": "affect-monitor",
        "SoftwareVersions": (session.info.get("software") or {}).get("affect-monitor", ""),
        "ModelName": spec.get("name"), "ModelSHA256": spec.get("sha256"),
        "RecordingStartUTC": (session.info.get("start") or {}).get("utc"),
    }
    if corrected:
        baseline = session.baseline
        span = (f"the neutral baseline {baseline['start_s']:g}-"
                f"{baseline['start_s'] + baseline['duration_s']:g} s")
        for name in ("arousal", "valence"):
            mean = baseline[name]["mean"]
            sidecar[f"{name}_bc"] = {
                "Description": f"{name} minus its mean over {span} ({mean:+.6f})",
                "Units": "a.u. (-2..2)"}
        sidecar["Baseline"] = baseline
    return sidecar


def _write_events(session: Session, path: Path) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle, delimiter="\t", lineterminator="\n")
        writer.writerow(layout.EVENT_COLUMNS)
        for event in session.events:
            writer.writerow([event[c] or "n/a" for c in layout.EVENT_COLUMNS])


def _number(value: float, name: str) -> str:
    return str(int(value)) if name in ("face_found", "voice_active") else f"{value:.6g}"


# -- CARMA / DARMA ---------------------------------------------------------------------------
def export_carma(session: Session, out: Path) -> Path:
    path = out / "carma.csv"
    _write_bins(path, session.time_s, session.valence, session.arousal, session.step_s,
                session.corrected())
    if session.rating_time_s.size:
        _write_bins(out / "carma_self.csv", session.rating_time_s, session.rating_valence,
                    session.rating_arousal, 0.0)
    return path


def _write_bins(path: Path, time_s: np.ndarray, valence: np.ndarray, arousal: np.ndarray,
                step_s: float, corrected: tuple[np.ndarray, np.ndarray] | None = None) -> None:
    end = float(time_s[-1] + step_s) if time_s.size else 0.0
    seconds = int(math.floor(end + 1e-9))
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(("second", "valence", "arousal")
                        + (("valence_bc", "arousal_bc") if corrected is not None else ()))
        blank = ("", "") if corrected is None else ("", "", "", "")
        for second in range(1, seconds + 1):
            inside = (time_s >= second - 1 - 1e-9) & (time_s < second - 1e-9)
            if not inside.any():
                writer.writerow((second, *blank))
                continue
            row = [second, _scale(valence[inside]), _scale(arousal[inside])]
            if corrected is not None:
                arousal_bc, valence_bc = corrected
                row += [_scale(valence_bc[inside], clip=False),
                        _scale(arousal_bc[inside], clip=False)]
            writer.writerow(row)


def _scale(values: np.ndarray, clip: bool = True) -> str:
    mean = float(values.mean())
    return f"{(float(np.clip(mean, -1.0, 1.0)) if clip else mean) * 100:.1f}"


EXPORTERS = {"elan": export_elan, "bids": export_bids, "carma": export_carma}


def export(folder: str | Path, to: str, out: str | Path | None = None) -> Path:
    session = read_session(folder)
    out = Path(out) if out is not None else Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    return EXPORTERS[to](session, out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="affect-monitor export",
                                     description="Export a session folder for ELAN, BIDS or "
                                                 "CARMA/DARMA.")
    parser.add_argument("folder", type=Path, metavar="DIR", help="a recorded session folder")
    parser.add_argument("--to", choices=FORMATS, required=True, action="append",
                        help="format (repeat for several)")
    parser.add_argument("--out", type=Path, metavar="DIR",
                        help="where to write (default: the session folder)")
    args = parser.parse_args(argv)
    try:
        for to in args.to:
            print(f"{to}: {export(args.folder, to, args.out)}")
    except (layout.SessionFormatError, RuntimeError, KeyError, ValueError) as error:
        print(f"affect-monitor export: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        print(f"affect-monitor export: cannot write: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
