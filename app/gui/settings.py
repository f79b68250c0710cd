"""What persists between runs (QSettings): sources, model, curve window, marker labels,
whether predictions stream on LSL.

One small typed wrapper, so the rest of the GUI never spells a settings key or a
QSettings type conversion itself. Tests pass their own ``QSettings`` (an ini file).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from PySide6.QtCore import QByteArray, QSettings

from app.sources.choice import SourceChoice

ORGANISATION = "affect-monitor"
APPLICATION = "affect-monitor"
WINDOW_CHOICES_S = (10, 60, 300)  # curve window: 10 s, 60 s, 5 min
DEFAULT_MARKER_LABELS = tuple(f"event {n}" for n in range(1, 10))


@dataclass
class Settings:
    sources: SourceChoice = field(default_factory=SourceChoice)
    model: str = ""
    window_s: int = 10
    marker_labels: list[str] = field(default_factory=lambda: list(DEFAULT_MARKER_LABELS))
    geometry: QByteArray | None = None
    lsl_stream: bool = False  # Session > Stream on LSL, chosen by the user


def open_settings() -> QSettings:
    return QSettings(QSettings.Format.IniFormat, QSettings.Scope.UserScope, ORGANISATION,
                     APPLICATION)


def load(store: QSettings) -> Settings:
    def optional_int(key: str) -> int | None:
        value = store.value(key)
        try:
            return None if value in (None, "") else int(value)
        except (TypeError, ValueError):
            return None

    def text(key: str) -> str:
        value = store.value(key)
        return str(value) if value not in (None, "") else ""

    window = optional_int("curves/window_s")
    labels = [text(f"markers/label{n}") or DEFAULT_MARKER_LABELS[n - 1] for n in range(1, 10)]
    geometry = store.value("window/geometry")
    return Settings(
        sources=SourceChoice(camera=optional_int("sources/camera"),
                             video_file=text("sources/video_file") or None,
                             microphone=optional_int("sources/microphone"),
                             audio_file=text("sources/audio_file") or None),
        model=text("model/path"),
        window_s=window if window in WINDOW_CHOICES_S else WINDOW_CHOICES_S[0],
        marker_labels=labels,
        lsl_stream=text("lsl/stream") == "true",
        geometry=geometry if isinstance(geometry, QByteArray) else None)


def save(store: QSettings, settings: Settings) -> None:
    sources = settings.sources
    store.setValue("sources/camera", "" if sources.camera is None else sources.camera)
    store.setValue("sources/video_file", sources.video_file or "")
    store.setValue("sources/microphone", "" if sources.microphone is None else sources.microphone)
    store.setValue("sources/audio_file", sources.audio_file or "")
    store.setValue("model/path", settings.model)
    store.setValue("curves/window_s", settings.window_s)
    for n, label in enumerate(settings.marker_labels, start=1):
        store.setValue(f"markers/label{n}", label)
    store.setValue("lsl/stream", "true" if settings.lsl_stream else "false")
    if settings.geometry is not None:
        store.setValue("window/geometry", settings.geometry)
    store.sync()
