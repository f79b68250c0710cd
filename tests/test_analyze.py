"""app.analyze: `affect-monitor analyze` on real CREMA-D clips with a real exported model."""
from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest
import soundfile

from app.analyze import CSV_COLUMNS, analyze_file, main
from models.media import read_audio
from models.runtime import AffectSession


def read_rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_crema_clips_give_a_row_every_40_ms_with_the_face_found(tiny_model_path, cremad_dir,
                                                              tmp_path, capsys):
    clips = sorted(cremad_dir.glob("*.flv"))
    out = tmp_path / "out"
    assert main([*map(str, clips), "--out", str(out), "--model", str(tiny_model_path)]) == 0
    for clip in clips:
        rows = read_rows(out / clip.stem / "predictions.csv")
        assert tuple(rows[0]) == CSV_COLUMNS
        times = np.array([float(r["time_s"]) for r in rows])
        assert np.allclose(np.diff(times), 0.04) and times[0] == 0.0
        audio_s = read_audio(clip).size / 16_000
        assert times[-1] < audio_s <= times[-1] + 0.04  # covers the clip, no more
        assert np.mean([r["face_found"] == "1" for r in rows]) >= 0.95
        assert all(-1.0 <= float(r["arousal"]) <= 1.0 for r in rows)
        summary = json.loads((out / clip.stem / "summary.json").read_text())
        assert summary["steps"] == len(rows)
        assert summary["face_share"] >= 0.95 and 0.2 < summary["voice_share"] <= 1.0
        assert summary["model"]["name"] == "tiny" and len(summary["model"]["sha256"]) == 64
        assert summary["duration_s"] == pytest.approx(audio_s, abs=0.1)
        assert summary["software"]["affect-monitor"]
    assert "Traceback" not in capsys.readouterr().err


def test_a_bad_file_is_reported_and_skipped_and_the_rest_is_analysed(tiny_model_path, cremad_dir,
                                                                     tmp_path, capsys):
    good = cremad_dir / "1001_DFA_ANG_XX.flv"
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(200))
    out = tmp_path / "out"
    code = main([str(broken), str(tmp_path / "missing.wav"), str(good), "--out", str(out),
                 "--model", str(tiny_model_path), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 1
    assert "broken.mp4" in err and "missing.wav" in err and "Traceback" not in err
    assert (out / good.stem / "predictions.csv").is_file()
    assert not (out / "broken").exists()


def test_missing_model_is_a_clear_message(tmp_path, capsys, cremad_dir):
    code = main([str(cremad_dir / "1001_DFA_ANG_XX.flv"), "--out", str(tmp_path),
                 "--model", str(tmp_path / "nope.onnx")])
    err = capsys.readouterr().err
    assert code == 2 and "nope.onnx" in err and "Traceback" not in err


def test_chunk_length_does_not_change_the_numbers(tiny_model_path, cremad_dir):
    session = AffectSession(tiny_model_path)
    clip = cremad_dir / "1001_DFA_DIS_XX.flv"
    stepped = analyze_file(clip, session, chunk_steps=1)  # what live does
    whole = analyze_file(clip, session, chunk_steps=250)
    assert np.abs(stepped.arousal - whole.arousal).max() < 1e-4
    assert np.abs(stepped.valence - whole.valence).max() < 1e-4


def test_audio_only_file_and_duplicate_names(tiny_model_path, ravdess_dir, tmp_path):
    flac = sorted(ravdess_dir.glob("Actor_01/*.flac"))[0]
    (tmp_path / "b").mkdir()
    copy = shutil.copy(flac, tmp_path / "b" / flac.name)
    out = tmp_path / "out"
    assert main([str(flac), str(copy), "--out", str(out), "--model", str(tiny_model_path),
                 "--no-progress"]) == 0
    rows = read_rows(out / flac.stem / "predictions.csv")
    assert len(rows) == -(-soundfile.info(flac).frames // 640)
    assert not any(r["face_found"] == "1" for r in rows)
    assert any(r["voice_active"] == "1" for r in rows)
    assert read_rows(out / f"{flac.stem}_2" / "predictions.csv") == rows
