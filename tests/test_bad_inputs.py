"""Inputs a careless or hostile user gives `affect-monitor record`: each is one line and
the right exit status, or a correct recording; never a traceback, never a recording that
says "complete" when the model did not run."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from models.media import write_media
from app.cli import main as cli_main
from app.recording import layout
from models.runtime import AffectSession, ModelLoadError
from models.spec import SPEC_METADATA_KEY

PROJECT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def record(*argv):
    result = subprocess.run([sys.executable, "-m", "app.cli", "record", *map(str, argv)],
                            cwd=PROJECT, capture_output=True, text=True, timeout=120)
    assert "Traceback" not in result.stderr, result.stderr
    return result


def with_spec(model, tmp_path, name, change) -> str:
    """A copy of ``model`` whose stored spec is changed by ``change(dict)``."""
    onnx = pytest.importorskip("onnx")
    proto = onnx.load(str(model))
    for prop in proto.metadata_props:
        if prop.key == SPEC_METADATA_KEY:
            spec = json.loads(prop.value)
            change(spec)
            prop.value = json.dumps(spec)
    path = tmp_path / name
    onnx.save(proto, str(path))
    return path


def one_pixel_video(path, seconds=3, size=1, options=None):
    """A real H.264 + AAC MP4: ``size`` x ``size`` grey noise and a tone."""
    rng = np.random.default_rng(0)
    pixels = (rng.integers(0, 255, (size, size, 3), np.uint8) for _ in range(25 * seconds))
    tone = (0.1 * np.sin(np.arange(16000 * seconds) / 10)).astype(np.float32)
    write_media(path, pixels, tone, fps=25, rate=16000, pix_fmt="yuv444p",
                container_options=options)
    return path


@pytest.mark.parametrize("seconds", ["nan", "inf", "-inf", "0", "-3", "1e12"])
def test_seconds_that_are_not_a_duration_are_refused(seconds, tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        cli_main(["record", "--out", str(tmp_path / "s"), "--no-media", f"--seconds={seconds}"])
    assert stop.value.code == 2
    assert "--seconds must be a number of seconds above 0" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()


def test_a_one_pixel_video_is_recorded(tiny_model_path, tmp_path):
    out = tmp_path / "s"
    result = record("--out", out, "--video", one_pixel_video(tmp_path / "one.mp4"), "--fast",
                    "--vad", "energy", "--model", tiny_model_path)
    assert result.returncode == 0, result.stderr
    info = json.loads((out / layout.SESSION_JSON).read_text())
    assert info["status"] == layout.COMPLETE and info["counts"]["predictions"] >= 75
    assert info["media"]["video"]["frames"] == 75  # padded to 2x2, every frame kept


@pytest.mark.parametrize("change, says", [
    (lambda spec: spec["face"].update(size=spec["face"]["size"] + 16), "input 'face'"),
    (lambda spec: spec.update(lstm_hidden=spec["lstm_hidden"] * 2), "input 'h'"),
    (lambda spec: spec.update(lstm_hidden=10**12), "lstm_hidden 1000000000000"),
    (lambda spec: spec.update(lstm_layers="2"), "lstm_layers '2'"),
    (lambda spec: spec.update(lstm_hidden=True), "lstm_hidden True"),
], ids=["face-size", "state-size", "huge-state", "text-layers", "bool-hidden"])
def test_a_spec_that_disagrees_with_its_graph_is_refused_when_opened(
        change, says, tiny_model_path, tmp_path):
    model = with_spec(tiny_model_path, tmp_path, "bad.onnx", change)
    with pytest.raises(ModelLoadError, match="bad.onnx") as error:
        AffectSession(model)
    assert says in str(error.value)
    result = record("--out", tmp_path / "s", "--no-media", "--model", model, "--seconds", "1")
    assert result.returncode == 2 and says in result.stderr
    assert result.stderr.strip().count("\n") == 0  # one line
    assert not (tmp_path / "s").exists()


def failing_model(tiny_model_path, tmp_path):
    """A real ONNX graph with the spec's inputs and outputs that fails on its first step
    (a Reshape of the 640 audio samples into rows of 7), as a broken export would."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    spec = json.loads(next(p.value for p in onnx.load(str(tiny_model_path)).metadata_props
                           if p.key == SPEC_METADATA_KEY))
    layers, hidden, face = spec["lstm_layers"], spec["lstm_hidden"], spec["face"]
    floats = lambda name, shape: helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)  # noqa: E731
    graph = helper.make_graph(
        [helper.make_node("Constant", [], ["rows"], value=helper.make_tensor(
            "rows", TensorProto.INT64, [2], [-1, 7])),
         helper.make_node("Reshape", ["audio", "rows"], ["broken"]),
         helper.make_node("ReduceMean", ["broken"], ["arousal_valence"], keepdims=1),
         helper.make_node("Identity", ["h"], ["h_out"]),
         helper.make_node("Identity", ["c"], ["c_out"])],
        "broken",
        [floats("audio", ["batch", "steps", 640]),
         floats("face", ["batch", "steps", face["channels"], face["size"], face["size"]]),
         floats("face_mask", ["batch", "steps"]), floats("h", [layers, "batch", hidden]),
         floats("c", [layers, "batch", hidden])],
        [floats("arousal_valence", None), floats("h_out", [layers, "batch", hidden]),
         floats("c_out", [layers, "batch", hidden])])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    proto.ir_version = 8
    helper.set_model_props(proto, {SPEC_METADATA_KEY: json.dumps(spec)})
    path = tmp_path / "failing.onnx"
    onnx.save(proto, str(path))
    return path


def test_a_model_that_fails_makes_the_recording_say_so_and_exit_1(tiny_model_path, tmp_path):
    out = tmp_path / "s"
    clip = one_pixel_video(tmp_path / "one.mp4")
    result = record("--out", out, "--video", clip, "--fast", "--vad", "energy",
                    "--model", failing_model(tiny_model_path, tmp_path))
    assert result.returncode == 1, result.stderr
    assert "the model failed after 0 steps" in result.stderr
    info = json.loads((out / layout.SESSION_JSON).read_text())
    assert info["status"] == layout.STOPPED and "the model failed" in info["stop_reason"]
    assert info["counts"]["predictions"] == 0


def test_a_truncated_video_says_what_was_read(tiny_model_path, tmp_path):
    """The first 30% of a fast-start MP4 (its header still says the full length)."""
    whole = one_pixel_video(tmp_path / "whole.mp4", seconds=10, size=64,
                            options={"movflags": "faststart"})
    data = whole.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[:int(len(data) * 0.3)])
    out = tmp_path / "analysis"
    result = subprocess.run([sys.executable, "-m", "app.cli", "analyze", str(cut), "--out",
                             str(out), "--model", str(tiny_model_path), "--vad", "energy",
                             "--no-progress"], cwd=PROJECT, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    said = result.stdout + result.stderr
    assert "cut.mp4: the file ended early: its audio stopped at" in said
    assert "of the 10.0 s its header announces" in said
    summary = json.loads((out / "cut" / "summary.json").read_text())
    assert summary["duration_s"] < 5 and summary["duration_s"] == summary["steps"] * 0.04
    assert "ended early" in summary["ended_early"]
    whole_out = tmp_path / "whole-analysis"
    assert subprocess.run([sys.executable, "-m", "app.cli", "analyze", str(whole), "--out",
                           str(whole_out), "--model", str(tiny_model_path), "--vad", "energy",
                           "--no-progress"], cwd=PROJECT, capture_output=True,
                          timeout=120).returncode == 0
    assert json.loads((whole_out / "whole" / "summary.json").read_text())["ended_early"] is None

    recorded = record("--out", tmp_path / "s", "--video", cut, "--fast", "--vad", "energy",
                      "--model", tiny_model_path)
    assert recorded.returncode == 0 and "the file ended early" in recorded.stderr
    events = (tmp_path / "s" / layout.EVENTS).read_text()
    assert "fault\taudio file cut.mp4: the file ended early" in events
