"""The contract between training and the app: constants with units and the ModelSpec.

A ModelSpec is written as JSON into every exported ONNX file (metadata key
``SPEC_METADATA_KEY``) and checked when the file is opened, so a model carries
everything needed to feed it: sample rate, window, face crop and state shape.
Imports numpy-free, torch-free: both sides of the project read it.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields

SAMPLE_RATE = 16_000  # Hz: audio fed to the model is mono float32 in [-1, 1]
STEP_SECONDS = 0.040  # one prediction every 40 ms
WINDOW_SAMPLES = 640  # samples per step = SAMPLE_RATE * STEP_SECONDS
STEPS_PER_SECOND = 25

SPEC_METADATA_KEY = "affect_monitor_spec"
SPEC_FORMAT_VERSION = 1

# Graph input and output names: one graph serves live (T=1) and offline (long T).
INPUT_NAMES = ("audio", "face", "face_mask", "h", "c")
OUTPUT_NAMES = ("arousal_valence", "h_out", "c_out")
OUTPUT_DIMENSIONS = ("arousal", "valence")


class SpecError(ValueError):
    """A model file's spec is missing, malformed or inconsistent with its graph."""


@dataclass(frozen=True)
class FaceCrop:
    """How a detected face box becomes the model's face input.

    The box is widened by ``margin`` (fraction of its larger side, on each side),
    made square around its centre, resized to ``size`` x ``size``, converted to
    ``channels`` (1 = grey, 3 = RGB) and scaled from 0..255 to 0..1.
    """

    size: int = 96
    channels: int = 3
    margin: float = 0.15
    scale: str = "0..1"  # pixel value range after normalisation


@dataclass(frozen=True)
class ModelSpec:
    """Everything a consumer needs to feed the model and interpret its output."""

    name: str
    preset: str
    face: FaceCrop
    lstm_layers: int
    lstm_hidden: int
    sample_rate: int = SAMPLE_RATE
    window_samples: int = WINDOW_SAMPLES
    step_seconds: float = STEP_SECONDS
    input_names: tuple[str, ...] = INPUT_NAMES
    output_names: tuple[str, ...] = OUTPUT_NAMES
    output_dimensions: tuple[str, ...] = OUTPUT_DIMENSIONS
    output_range: tuple[float, float] = (-1.0, 1.0)  # label scale of arousal and valence
    training_data: tuple[str, ...] = ()
    metrics: dict = field(default_factory=dict)  # {"dataset/split": {"arousal": {"ccc":..}, ...}}
    licence: str = "unspecified"
    description: str = ""
    # Every architectural choice of the exported network (training.network.NetworkConfig),
    # so a card describes the model itself, not its preset's defaults. {} in older models.
    network: dict = field(default_factory=dict)
    format_version: int = SPEC_FORMAT_VERSION

    @property
    def state_shape(self) -> tuple[int, int]:
        """(layers, hidden); the runtime state is [layers, batch, hidden] for h and for c."""
        return (self.lstm_layers, self.lstm_hidden)

    @property
    def face_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one face input."""
        return (self.face.channels, self.face.size, self.face.size)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "ModelSpec":
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as error:
            raise SpecError(f"model spec is not valid JSON: {error}") from None
        if not isinstance(raw, dict):
            raise SpecError("model spec must be a JSON object")
        version = raw.get("format_version")
        if version != SPEC_FORMAT_VERSION:
            raise SpecError(
                f"model spec format {version!r} is not supported (this build reads "
                f"format {SPEC_FORMAT_VERSION}); re-export the model with this version"
            )
        known = {f.name for f in fields(cls)}
        missing = {"name", "preset", "face", "lstm_layers", "lstm_hidden"} - raw.keys()
        if missing:
            raise SpecError(f"model spec lacks {sorted(missing)}")
        try:
            face = FaceCrop(**raw["face"])
            values = {k: v for k, v in raw.items() if k in known and k != "face"}
            for key in ("input_names", "output_names", "output_dimensions", "output_range",
                        "training_data"):
                if key in values:
                    values[key] = tuple(values[key])
            spec = cls(face=face, **values)
        except TypeError as error:
            raise SpecError(f"model spec is malformed: {error}") from None
        spec.validate()
        return spec

    def validate(self) -> None:
        """Raise SpecError when the spec contradicts the fixed contract."""
        problems = []
        sizes = {"lstm_layers": (self.lstm_layers, 64), "lstm_hidden": (self.lstm_hidden, 65_536),
                 "face size": (self.face.size, 512), "face channels": (self.face.channels, 3)}
        wrong = [f"{name} {value!r}" for name, (value, most) in sizes.items()
                 if type(value) is not int or not 1 <= value <= most]  # bool is no size
        if wrong:  # checked first: the state is allocated from these sizes
            raise SpecError("model spec is inconsistent: " + ", ".join(wrong) +
                            " must be whole numbers within bounds")
        if self.sample_rate != SAMPLE_RATE:
            problems.append(f"sample_rate {self.sample_rate} != {SAMPLE_RATE}")
        if self.window_samples != WINDOW_SAMPLES:
            problems.append(f"window_samples {self.window_samples} != {WINDOW_SAMPLES}")
        if self.face.channels not in (1, 3):
            problems.append(f"face channels must be 1 or 3, not {self.face.channels}")
        if not 8 <= self.face.size <= 512:
            problems.append(f"face size {self.face.size} is outside 8..512")
        if self.lstm_layers < 1 or self.lstm_hidden < 1:
            problems.append("LSTM layers and hidden size must be positive")
        if tuple(self.input_names) != INPUT_NAMES or tuple(self.output_names) != OUTPUT_NAMES:
            problems.append(f"graph names must be {INPUT_NAMES} -> {OUTPUT_NAMES}")
        if problems:
            raise SpecError("model spec is inconsistent: " + "; ".join(problems))
