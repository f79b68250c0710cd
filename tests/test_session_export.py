"""Exports of a recorded session, read back by the readers researchers use: pympi for
ELAN, gzip + csv/json for BIDS physio (what pandas.read_csv(sep='\\t') reads), csv for
the CARMA/DARMA bins."""
from __future__ import annotations

import csv
import gzip
import json

import numpy as np
import pytest

from app.cli import main as cli_main
from app.pipeline import Engine
from app.recording import layout
from app.recording.recorder import SessionRecorder
from app.sources import Pacing, open_file
from app.vad import EnergyVoiceDetector
from models.runtime import AffectSession


@pytest.fixture(scope="module")
def session_dir(tiny_model_path, tmp_path_factory):
    from conftest import data_path

    clip = data_path("cremad-sample") / "1001_DFA_HAP_XX.flv"
    folder = tmp_path_factory.mktemp("export") / "sub-P 07_ses-2"
    engine = Engine(AffectSession(tiny_model_path), *open_file(clip, Pacing.FAST),
                    vad=EnergyVoiceDetector())
    recorder = SessionRecorder(folder, {"participant_id": "P 07", "session_id": "2"}, engine)
    for t, arousal, valence in ((0.0, 0.1, 0.2), (0.5, 0.3, -0.4), (1.25, -0.5, 0.6)):
        recorder.add_rating(t, arousal, valence)
    recorder.add_event(1.0, "stimulus", "smile", duration=0.5)
    recorder.add_event(0.2, "button")
    recorder.start()
    engine.start()
    assert recorder.wait(30)
    recorder.stop()
    return folder


def read_rows(path, delimiter=","):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle, delimiter=delimiter))


def test_elan_file_opens_in_pympi_with_media_and_tiers(session_dir):
    from pympi import Elan

    assert cli_main(["export", str(session_dir), "--to", "elan"]) == 0
    eaf = Elan.Eaf(str(session_dir / "session.eaf"))
    assert {f["RELATIVE_MEDIA_URL"] for f in eaf.get_linked_files()} == {"video.mp4", "audio.wav"}
    assert [f["RELATIVE_LINK_URL"] for f in eaf.get_secondary_linked_files()] == ["predictions.csv"]
    assert set(eaf.get_tier_names()) == {"events", "self-rating", "voice", "face"}
    events = sorted(eaf.get_annotation_data_for_tier("events"))
    assert events == [(200, 240, "button"), (1000, 1500, "stimulus: smile")]
    ratings = sorted(eaf.get_annotation_data_for_tier("self-rating"))
    assert ratings[1] == (500, 1250, "arousal +0.30, valence -0.40")
    predictions = read_rows(session_dir / layout.PREDICTIONS)
    face_ms = sum(end - begin for begin, end, _ in eaf.get_annotation_data_for_tier("face"))
    assert face_ms == pytest.approx(40 * sum(r["face_found"] == "1" for r in predictions), abs=40)


def test_bids_physio_has_one_row_per_step_and_a_matching_sidecar(session_dir):
    assert cli_main(["export", str(session_dir), "--to", "bids"]) == 0
    folder = session_dir / "bids" / "sub-P07" / "ses-2" / "beh"
    stem = "sub-P07_ses-2_task-affect"
    sidecar = json.loads((folder / f"{stem}_recording-affect_physio.json").read_text())
    assert sidecar["SamplingFrequency"] == 25.0 and sidecar["StartTime"] == 0.0
    with gzip.open(folder / f"{stem}_recording-affect_physio.tsv.gz", "rt") as handle:
        physio = list(csv.reader(handle, delimiter="\t"))
    predictions = read_rows(session_dir / layout.PREDICTIONS)
    assert len(physio) == len(predictions)  # no header row in BIDS physio
    assert all(len(row) == len(sidecar["Columns"]) for row in physio)
    arousal = sidecar["Columns"].index("arousal")
    assert np.allclose([float(r[arousal]) for r in physio],
                       [float(p["arousal"]) for p in predictions], atol=1e-5)
    events = read_rows(folder / f"{stem}_events.tsv", "\t")
    assert [e["trial_type"] for e in events] == ["button", "stimulus"]
    assert events[0]["duration"] == "0" and events[0]["value"] == "n/a"


def test_carma_bins_are_whole_seconds_on_the_minus_100_to_100_scale(session_dir):
    assert cli_main(["export", str(session_dir), "--to", "carma"]) == 0
    bins = read_rows(session_dir / "carma.csv")
    predictions = read_rows(session_dir / layout.PREDICTIONS)
    duration = len(predictions) * 0.04
    assert [int(b["second"]) for b in bins] == list(range(1, int(duration) + 1))
    first = [float(p["valence"]) for p in predictions if float(p["time_s"]) < 1.0 - 1e-9]
    assert float(bins[0]["valence"]) == pytest.approx(100 * np.mean(first), abs=0.06)
    assert all(-100 <= float(b[k]) <= 100 for b in bins for k in ("valence", "arousal"))
    own = read_rows(session_dir / "carma_self.csv")
    assert float(own[0]["valence"]) == pytest.approx(100 * np.mean([0.2, -0.4]), abs=0.06)


def test_export_of_a_folder_that_is_not_a_session_is_a_clear_message(tmp_path, capsys):
    assert cli_main(["export", str(tmp_path), "--to", "bids"]) == 2
    assert "not a session folder" in capsys.readouterr().err


# -- baseline calibration --------------------------------------------------------------------
@pytest.fixture(scope="module")
def baseline_dir(tiny_model_path, tmp_path_factory):
    """`affect-monitor record --baseline 1`: the first second is the neutral baseline."""
    from conftest import data_path

    clip = data_path("cremad-sample") / "1001_DFA_HAP_XX.flv"
    folder = tmp_path_factory.mktemp("baseline") / "sub-B1"
    assert cli_main(["record", "--out", str(folder), "--video", str(clip), "--fast",
                     "--baseline", "1", "--no-media", "--vad", "energy", "--participant", "B1",
                     "--model", str(tiny_model_path)]) == 0
    return folder


def test_baseline_is_stored_in_session_json_and_events(baseline_dir):
    info = json.loads((baseline_dir / layout.SESSION_JSON).read_text())
    predictions = read_rows(baseline_dir / layout.PREDICTIONS)
    first = predictions[:25]  # the 40 ms windows of 0..1 s
    baseline = info["baseline"]
    assert baseline["start_s"] == 0.0 and baseline["duration_s"] == 1.0
    assert baseline["steps"] == 25 and baseline["complete"] is True
    for name in ("arousal", "valence"):
        values = np.array([float(p[name]) for p in first])
        assert baseline[name]["mean"] == pytest.approx(values.mean(), abs=1e-5)
        assert baseline[name]["std"] == pytest.approx(values.std(), abs=1e-5)
    events = read_rows(baseline_dir / layout.EVENTS, "\t")
    assert [(e["onset"], e["duration"], e["trial_type"]) for e in events] == [
        ("0.000", "1", "baseline")]
    assert f"{baseline['arousal']['mean']:+.4f}" in events[0]["value"]


def test_exports_offer_baseline_corrected_columns_beside_the_raw_ones(baseline_dir):
    from pympi import Elan

    info = json.loads((baseline_dir / layout.SESSION_JSON).read_text())
    mean = {name: info["baseline"][name]["mean"] for name in ("arousal", "valence")}
    predictions = read_rows(baseline_dir / layout.PREDICTIONS)
    raw = {name: np.array([float(p[name]) for p in predictions]) for name in mean}
    assert cli_main(["export", str(baseline_dir), "--to", "bids", "--to", "carma",
                     "--to", "elan"]) == 0
    # BIDS physio: the raw columns where they were, the corrected ones after them.
    folder = baseline_dir / "bids" / "sub-B1" / "beh"
    sidecar = json.loads((folder / "sub-B1_task-affect_recording-affect_physio.json")
                         .read_text())
    assert sidecar["Columns"] == ["arousal", "valence", "face_found", "face_score",
                                  "voice_active", "arousal_bc", "valence_bc"]
    assert "baseline" in sidecar["arousal_bc"]["Description"]
    assert sidecar["Baseline"]["steps"] == 25
    with gzip.open(folder / "sub-B1_task-affect_recording-affect_physio.tsv.gz", "rt") as handle:
        physio = np.array(list(csv.reader(handle, delimiter="\t")), float)
    for name in mean:
        column = sidecar["Columns"].index(name)
        corrected = sidecar["Columns"].index(f"{name}_bc")
        assert np.allclose(physio[:, column], raw[name], atol=1e-5)
        assert np.allclose(physio[:, corrected], raw[name] - mean[name], atol=1e-5)
    assert abs(physio[:25, sidecar["Columns"].index("arousal_bc")].mean()) < 1e-4
    # CARMA: the corrected pair after the raw pair, same scale.
    bins = read_rows(baseline_dir / "carma.csv")
    assert list(bins[0]) == ["second", "valence", "arousal", "valence_bc", "arousal_bc"]
    for b in bins:
        assert float(b["valence_bc"]) == pytest.approx(
            float(b["valence"]) - 100 * mean["valence"], abs=0.11)
    assert abs(float(bins[0]["arousal_bc"])) < 0.06  # the baseline second itself
    # ELAN: a second linked time series with raw and corrected values.
    eaf = Elan.Eaf(str(baseline_dir / "session.eaf"))
    assert [f["RELATIVE_LINK_URL"] for f in eaf.get_secondary_linked_files()] == [
        "predictions.csv", "predictions_bc.csv"]
    series = read_rows(baseline_dir / "predictions_bc.csv")
    assert len(series) == len(predictions)
    assert np.allclose([float(r["valence_bc"]) for r in series], raw["valence"] - mean["valence"],
                       atol=1e-5)
    assert sorted(eaf.get_annotation_data_for_tier("events"))[0][:2] == (0, 1000)


def test_record_baseline_api_takes_any_span_and_keeps_a_short_one(tiny_model_path, cremad_dir,
                                                                  tmp_path):
    clip = cremad_dir / "1001_DFA_HAP_XX.flv"

    def record(folder, **options):
        engine = Engine(AffectSession(tiny_model_path), *open_file(clip, Pacing.FAST),
                        vad=EnergyVoiceDetector())
        recorder = SessionRecorder(folder, {}, engine, store_media=False, **options)
        return recorder, engine

    recorder, engine = record(tmp_path / "span")
    recorder.record_baseline(0.8, onset_s=0.4)  # on the engine's clock
    with pytest.raises(ValueError):
        recorder.record_baseline(0)
    recorder.start()
    engine.start()
    assert recorder.wait(30)
    info = recorder.stop()
    rows = read_rows(tmp_path / "span" / layout.PREDICTIONS)
    inside = [float(r["arousal"]) for r in rows if 0.4 - 1e-6 <= float(r["time_s"]) < 1.2 - 1e-6]
    assert info["baseline"]["steps"] == len(inside) == 20 and info["baseline"]["complete"]
    assert info["baseline"]["arousal"]["mean"] == pytest.approx(np.mean(inside), abs=1e-5)
    events = read_rows(tmp_path / "span" / layout.EVENTS, "\t")
    assert [(e["onset"], e["duration"], e["trial_type"]) for e in events] == [
        ("0.400", "0.8", "baseline")]

    recorder, engine = record(tmp_path / "short", baseline_s=600)  # longer than the clip
    recorder.start()
    engine.start()
    assert recorder.wait(30)
    info = recorder.stop()
    rows = read_rows(tmp_path / "short" / layout.PREDICTIONS)
    assert info["baseline"]["complete"] is False and info["baseline"]["steps"] == len(rows)
    assert info["baseline"]["requested_s"] == 600
