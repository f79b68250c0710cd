"""Voice activity per 40 ms step: Silero VAD's ONNX model, or a plainly named energy gate.

Silero VAD (MIT) ships ``silero_vad/data/silero_vad.onnx`` in its PyPI wheel, but the
package itself requires torch, which the app never imports. So the file is located
through the installed distribution's metadata (the package is never imported) and run
with onnxruntime directly, in its own 512-sample chunks with its state carried, as
Silero's ``OnnxWrapper`` does. Install it without its dependencies:
``pip install --no-deps silero-vad==6.2.3``. Without it, ``EnergyVoiceDetector``
takes over and says so.
"""
from __future__ import annotations

import importlib.metadata
import logging
from pathlib import Path
from typing import Protocol

import numpy as np

from models.spec import SAMPLE_RATE

log = logging.getLogger(__name__)

SILERO_CHUNK = 512  # samples Silero's 16 kHz model takes per call (32 ms)
SILERO_CONTEXT = 64  # samples of the previous chunk prepended to each call
SILERO_MODEL = "silero_vad/data/silero_vad.onnx"


class VoiceDetector(Protocol):
    name: str

    def process(self, samples: np.ndarray) -> bool:
        """Feed the next samples (any length); True while someone is speaking."""

    def reset(self) -> None:
        """Forget everything heard so far."""


def find_silero_model() -> Path | None:
    """Path of the Silero ONNX model in the installed ``silero-vad`` wheel, or None."""
    try:
        distribution = importlib.metadata.distribution("silero-vad")
    except importlib.metadata.PackageNotFoundError:
        return None
    path = Path(distribution.locate_file(SILERO_MODEL))
    return path if path.is_file() else None


class SileroVoiceDetector:
    """Silero VAD v5/v6 through onnxruntime; speech probability with hysteresis."""

    name = "silero-vad"

    def __init__(self, model_path: str | Path, threshold: float = 0.5,
                 release: float = 0.35) -> None:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        # Tiny graph: one thread each is fastest and leaves the cores to the affect model.
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self._session = onnxruntime.InferenceSession(
            str(model_path), sess_options=options, providers=["CPUExecutionProvider"])
        self.threshold = threshold
        self.release = release  # speech ends only when probability drops below this
        self._rate = np.array(SAMPLE_RATE, np.int64)
        self.reset()

    def reset(self) -> None:
        self._state = np.zeros((2, 1, 128), np.float32)
        self._context = np.zeros(SILERO_CONTEXT, np.float32)
        self._pending = np.zeros(0, np.float32)
        self.active = False
        self.probability = 0.0

    def process(self, samples: np.ndarray) -> bool:
        self._pending = np.concatenate([self._pending, np.asarray(samples, np.float32)])
        while self._pending.size >= SILERO_CHUNK:
            chunk, self._pending = self._pending[:SILERO_CHUNK], self._pending[SILERO_CHUNK:]
            self.probability = self._run(chunk)
            if self.probability >= self.threshold:
                self.active = True
            elif self.probability < self.release:
                self.active = False
        return self.active

    def _run(self, chunk: np.ndarray) -> float:
        x = np.concatenate([self._context, chunk])[None]
        output, self._state = self._session.run(
            None, {"input": x, "state": self._state, "sr": self._rate})
        self._context = chunk[-SILERO_CONTEXT:].copy()
        return float(output[0, 0])


class EnergyVoiceDetector:
    """Fallback when Silero is not installed: loudness gate, not a speech detector.

    Any sound above ``threshold_db`` dBFS (RMS over the fed samples) counts as voice,
    held for ``hangover`` quiet calls so that gaps between syllables stay active.
    """

    name = "energy-gate"

    def __init__(self, threshold_db: float = -40.0, hangover: int = 5) -> None:
        self.threshold_db = threshold_db
        self.hangover = hangover
        self.reset()

    def reset(self) -> None:
        self._hold = 0

    def process(self, samples: np.ndarray) -> bool:
        samples = np.asarray(samples, np.float32)
        rms = float(np.sqrt(np.mean(samples.astype(np.float64) ** 2))) if samples.size else 0.0
        if 20.0 * np.log10(max(rms, 1e-10)) >= self.threshold_db:
            self._hold = self.hangover
            return True
        if self._hold > 0:  # still inside the hangover after a loud call
            self._hold -= 1
            return True
        return False


def load_voice_detector(prefer: str = "silero") -> VoiceDetector:
    """Silero when its model is installed (and ``prefer`` is "silero"), else the gate."""
    if prefer == "silero":
        path = find_silero_model()
        if path is not None:
            return SileroVoiceDetector(path)
        log.warning("silero-vad is not installed, so voice activity is a loudness gate; "
                    "for real voice detection: pip install --no-deps silero-vad==6.2.3")
    elif prefer != "energy":
        raise ValueError(f"unknown voice detector {prefer!r}; use 'silero' or 'energy'")
    return EnergyVoiceDetector()


def voice_detector_name(prefer: str = "silero") -> str:
    """The ``name`` ``load_voice_detector(prefer)`` would give, without loading a model."""
    if prefer not in ("silero", "energy"):
        raise ValueError(f"unknown voice detector {prefer!r}; use 'silero' or 'energy'")
    if prefer == "silero" and find_silero_model() is not None:
        return SileroVoiceDetector.name
    return EnergyVoiceDetector.name
