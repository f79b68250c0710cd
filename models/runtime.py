"""Run an exported affect model with ONNX Runtime (no torch).

``AffectSession.run`` is pure: inputs and LSTM state in, outputs and new state out.
``AffectStream`` holds the state between 40 ms steps for live use and can ``reset()``.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models.spec import SPEC_METADATA_KEY, ModelSpec, SpecError

log = logging.getLogger(__name__)

CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"


class ModelLoadError(ValueError):
    """The file cannot serve as an affect model (missing, not ONNX, no or bad spec)."""


class InputError(ValueError):
    """An input array does not match the model's spec."""


@dataclass(frozen=True)
class State:
    """LSTM state carried between calls: h and c, each [layers, batch, hidden] float32."""

    h: np.ndarray
    c: np.ndarray


def _import_onnxruntime():
    try:
        import onnxruntime
    except ImportError:
        raise ModelLoadError(
            "ONNX Runtime is not installed: pip install 'affect-monitor[cpu]' "
            "(or 'affect-monitor[gpu]' on a machine with CUDA)") from None
    return onnxruntime


def choose_providers(available: list[str]) -> list[str]:
    """CUDA first when this onnxruntime build offers it, CPU always as fallback."""
    return [CUDA, CPU] if CUDA in available else [CPU]


def read_spec(path: str | Path) -> ModelSpec:
    """Read and check the ModelSpec stored in an ONNX file, without building a session."""
    session = _open(path, providers=[CPU], intra_op_threads=1)
    return _spec_of(session, path)


def _open(path: str | Path, providers: list[str], intra_op_threads: int | None):
    ort = _import_onnxruntime()
    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(f"model file not found: {path}")
    options = ort.SessionOptions()
    if intra_op_threads:
        options.intra_op_num_threads = intra_op_threads
    options.log_severity_level = 3  # keep ORT's own warnings out of the user's console
    try:
        return ort.InferenceSession(str(path), sess_options=options, providers=providers)
    except Exception as error:  # ORT raises several private exception types for bad files
        raise ModelLoadError(
            f"{path} is not a loadable ONNX model ({type(error).__name__}: "
            f"{str(error).splitlines()[0][:200]}); choose a model exported by affect-export"
        ) from None


def _spec_of(session, path) -> ModelSpec:
    metadata = session.get_modelmeta().custom_metadata_map
    if SPEC_METADATA_KEY not in metadata:
        raise ModelLoadError(
            f"{path} is an ONNX model but carries no affect-monitor spec (metadata key "
            f"'{SPEC_METADATA_KEY}'); export it with affect-export")
    try:
        spec = ModelSpec.from_json(metadata[SPEC_METADATA_KEY])
    except SpecError as error:
        raise ModelLoadError(f"{path}: {error}") from None
    graph_inputs = tuple(i.name for i in session.get_inputs())
    graph_outputs = tuple(o.name for o in session.get_outputs())
    if graph_inputs != spec.input_names or graph_outputs != spec.output_names:
        raise ModelLoadError(
            f"{path}: graph has inputs {graph_inputs} and outputs {graph_outputs}, but its "
            f"spec promises {spec.input_names} -> {spec.output_names}")
    check_graph_inputs(session, spec, path)
    return spec


def expected_input_shapes(spec: ModelSpec) -> dict[str, tuple]:
    """Each graph input's shape as the spec describes it; None: any size (batch, steps)."""
    layers, hidden = spec.state_shape
    return {"audio": (None, None, spec.window_samples),
            "face": (None, None, *spec.face_shape),
            "face_mask": (None, None),
            "h": (layers, None, hidden),
            "c": (layers, None, hidden)}


def check_graph_inputs(session, spec: ModelSpec, path) -> None:
    """ModelLoadError when the graph's inputs disagree with the spec (rank, a fixed size or
    the element type): caught when the model is opened, not as an ONNX Runtime error on
    the first step. Inputs the spec does not describe are left to the graph."""
    expected = expected_input_shapes(spec)
    for graph_input in session.get_inputs():
        want = expected.get(graph_input.name)
        if want is None:
            continue
        have = tuple(graph_input.shape)
        wrong = graph_input.type != "tensor(float)" or len(have) != len(want) or any(
            w is not None and isinstance(h, int) and h != w for h, w in zip(have, want))
        if wrong:
            shown = [w if w is not None else "any" for w in want]
            raise ModelLoadError(
                f"{path}: the graph's input {graph_input.name!r} is {graph_input.type} "
                f"{list(have)}, but its spec describes float {shown}; the spec does not "
                "belong to this graph (re-export the model with affect-export)")


class AffectSession:
    """An ONNX Runtime session for one affect model, checked against its spec."""

    def __init__(self, path: str | Path, providers: list[str] | None = None,
                 intra_op_threads: int | None = None):
        ort = _import_onnxruntime()
        self.path = Path(path)
        wanted = providers or choose_providers(ort.get_available_providers())
        self._session = _open(self.path, wanted, intra_op_threads)
        self.spec = _spec_of(self._session, self.path)
        # What ORT actually uses: onnxruntime-gpu silently falls back to CPU without CUDA.
        self.provider = self._session.get_providers()[0]
        if CUDA in wanted and self.provider != CUDA:
            log.warning("CUDA was requested but is unavailable; running on CPU")
        log.info("model %s on %s", self.spec.name, self.provider)

    def initial_state(self, batch: int = 1) -> State:
        layers, hidden = self.spec.state_shape
        zeros = np.zeros((layers, batch, hidden), np.float32)
        return State(zeros, zeros.copy())

    def run(self, audio: np.ndarray, face: np.ndarray, face_mask: np.ndarray,
            state: State) -> tuple[np.ndarray, State]:
        """audio [B,T,640], face [B,T,C,H,W] 0..1, face_mask [B,T] -> ([B,T,2], new state)."""
        audio, face, face_mask = self.check_inputs(audio, face, face_mask, state)
        outputs = self._session.run(None, {
            "audio": audio, "face": face, "face_mask": face_mask, "h": state.h, "c": state.c})
        arousal_valence, h_out, c_out = outputs
        return arousal_valence, State(h_out, c_out)

    def check_inputs(self, audio, face, face_mask, state: State):
        """Return the inputs as contiguous float32, or raise InputError saying what is wrong."""
        spec = self.spec
        audio = _as_float32("audio", audio)
        face = _as_float32("face", face)
        face_mask = _as_float32("face_mask", face_mask)
        if audio.ndim != 3 or audio.shape[2] != spec.window_samples:
            raise InputError(
                f"audio must be [batch, steps, {spec.window_samples}] ({spec.window_samples} "
                f"samples = 40 ms at {spec.sample_rate} Hz per step), got {list(audio.shape)}")
        batch, steps = audio.shape[:2]
        if face.shape != (batch, steps, *spec.face_shape):
            raise InputError(
                f"face must be [batch, steps, C, H, W] = {[batch, steps, *spec.face_shape]} "
                f"for this model ({spec.face.size}x{spec.face.size}, {spec.face.channels} "
                f"channel(s)), got {list(face.shape)}")
        if face_mask.shape != (batch, steps):
            raise InputError(f"face_mask must be [{batch}, {steps}], got {list(face_mask.shape)}")
        layers, hidden = spec.state_shape
        for name, value in (("h", state.h), ("c", state.c)):
            if value.shape != (layers, batch, hidden):
                raise InputError(f"state {name} must be [{layers}, {batch}, {hidden}], got "
                                 f"{list(value.shape)}; start from initial_state({batch})")
        _check_finite("h", state.h)
        _check_finite("c", state.c)
        return audio, face, face_mask


def _as_float32(name: str, value) -> np.ndarray:
    array = np.ascontiguousarray(value, dtype=np.float32)
    _check_finite(name, array)
    return array


def _check_finite(name: str, array: np.ndarray) -> None:
    if not np.isfinite(array).all():
        raise InputError(f"{name} contains NaN or infinite values; check the source feeding it")


class AffectStream:
    """Live use: one 40 ms step at a time, the LSTM state kept between steps."""

    def __init__(self, session: AffectSession):
        self.session = session
        self.state = session.initial_state()
        self._no_face = np.zeros((1, 1, *session.spec.face_shape), np.float32)

    def reset(self) -> None:
        """Forget the past (new speaker, new session)."""
        self.state = self.session.initial_state()

    def step(self, audio_window: np.ndarray, face: np.ndarray | None) -> tuple[float, float]:
        """One 40 ms step: audio [640], face [C,H,W] or None when no face -> (arousal, valence)."""
        audio_window = np.asarray(audio_window, dtype=np.float32)
        if audio_window.shape != (self.session.spec.window_samples,):
            raise InputError(
                f"an audio window must hold exactly {self.session.spec.window_samples} samples "
                f"(40 ms at {self.session.spec.sample_rate} Hz), got shape "
                f"{list(audio_window.shape)}")
        if face is None:
            face_input, mask = self._no_face, np.zeros((1, 1), np.float32)
        else:
            face_input, mask = np.asarray(face, np.float32)[None, None], np.ones((1, 1), np.float32)
        outputs, self.state = self.session.run(audio_window[None, None], face_input, mask,
                                               self.state)
        return float(outputs[0, 0, 0]), float(outputs[0, 0, 1])
