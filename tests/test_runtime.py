import numpy as np
import onnx
import pytest

from models.runtime import AffectSession, AffectStream, InputError, ModelLoadError, State, read_spec
from models.spec import SPEC_METADATA_KEY, ModelSpec, SpecError


@pytest.fixture(scope="module")
def session(tiny_model_path):
    return AffectSession(tiny_model_path, intra_op_threads=1)


def inputs(session, steps=4, batch=1):
    c, h, w = session.spec.face_shape
    return (np.zeros((batch, steps, 640), np.float32), np.zeros((batch, steps, c, h, w), np.float32),
            np.ones((batch, steps), np.float32))


def test_runs_on_cpu_and_reports_it(session):
    assert session.provider == "CPUExecutionProvider"
    output, state = session.run(*inputs(session, steps=7, batch=2), session.initial_state(2))
    assert output.shape == (2, 7, 2) and state.h.shape == (2, 2, 32)
    assert np.isfinite(output).all()


def test_run_is_pure(session):
    start = session.initial_state()
    first = session.run(*inputs(session), start)[0]
    second = session.run(*inputs(session), start)[0]
    assert np.array_equal(first, second) and not start.h.any()


def test_stream_steps_match_offline_and_reset_restarts(session):
    rng = np.random.default_rng(5)
    audio = rng.standard_normal((1, 12, 640)).astype(np.float32) * 0.1
    face = rng.random((1, 12, 1, 32, 32), dtype=np.float32)
    mask = np.ones((1, 12), np.float32)
    mask[0, 4:7] = 0
    offline = session.run(audio, face, mask, session.initial_state())[0][0]
    stream = AffectStream(session)
    live = [stream.step(audio[0, t], face[0, t] if mask[0, t] else None) for t in range(12)]
    assert np.allclose(live, offline, atol=1e-5)
    stream.reset()
    assert stream.step(audio[0, 0], face[0, 0]) == pytest.approx(tuple(offline[0]), abs=1e-5)


@pytest.mark.parametrize("change, message", [
    (lambda a, f, m, s: (a[:, :, :320], f, m, s), "640 samples"),
    (lambda a, f, m, s: (a, f[..., :16, :16], m, s), "32x32"),
    (lambda a, f, m, s: (a, f, m[:, :2], s), "face_mask"),
    (lambda a, f, m, s: (a, f, m, State(s.h[:1], s.c)), "state h"),
    (lambda a, f, m, s: (a * np.nan, f, m, s), "NaN"),
])
def test_bad_inputs_are_named(session, change, message):
    audio, face, mask = inputs(session)
    with pytest.raises(InputError, match=message):
        session.run(*change(audio, face, mask, session.initial_state()))


def test_stream_rejects_a_window_of_the_wrong_length(session):
    with pytest.raises(InputError, match="exactly 640 samples"):
        AffectStream(session).step(np.zeros(512, np.float32), None)


def test_not_onnx_missing_and_specless_files_are_rejected(tmp_path, tiny_model_path):
    (tmp_path / "photo.onnx").write_bytes(b"\x89PNG not a model")
    with pytest.raises(ModelLoadError, match="not a loadable ONNX model"):
        AffectSession(tmp_path / "photo.onnx")
    with pytest.raises(ModelLoadError, match="not found"):
        AffectSession(tmp_path / "missing.onnx")
    graph = onnx.load(str(tiny_model_path))
    del graph.metadata_props[:]
    onnx.save(graph, str(tmp_path / "bare.onnx"))
    with pytest.raises(ModelLoadError, match="carries no affect-monitor spec"):
        AffectSession(tmp_path / "bare.onnx")


def test_spec_round_trip_and_inconsistent_spec(tiny_model_path, tmp_path):
    spec = read_spec(tiny_model_path)
    assert ModelSpec.from_json(spec.to_json()) == spec
    graph = onnx.load(str(tiny_model_path))
    for entry in graph.metadata_props:
        if entry.key == SPEC_METADATA_KEY:
            entry.value = entry.value.replace('"window_samples": 640', '"window_samples": 512')
    onnx.save(graph, str(tmp_path / "odd.onnx"))
    with pytest.raises(ModelLoadError, match="window_samples 512"):
        AffectSession(tmp_path / "odd.onnx")
    with pytest.raises(SpecError, match="not valid JSON"):
        ModelSpec.from_json("{oops")
