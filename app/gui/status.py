"""The status bar: sources, model, provider, steps/s, latency, dropped windows, audio
level, voice activity, and the recording indicator with its elapsed time (and the
countdown of a neutral baseline being taken)."""
from __future__ import annotations

from PySide6.QtWidgets import QLabel, QProgressBar, QStatusBar

from models.spec import STEPS_PER_SECOND


class StatusPanel:
    def __init__(self, bar: QStatusBar) -> None:
        self.bar = bar
        self.sources = self._label("no sources", "video source; audio source")
        self.model = self._label("no model", "model name and execution provider")
        self.rate = self._label("– steps/s", "model steps per second "
                                               f"({STEPS_PER_SECOND} = real time)")
        self.latency = self._label("– ms", "step latency, p50 over the last second")
        self.dropped = self._label("dropped 0", "40 ms audio windows lost because the "
                                                "engine fell behind")
        self.level = QProgressBar()
        self.level.setRange(-60, 0)
        self.level.setValue(-60)
        self.level.setTextVisible(False)
        self.level.setFixedWidth(80)
        self.level.setToolTip("audio level (dBFS, -60..0)")
        bar.addPermanentWidget(self.level)
        self.voice = self._label("voice –", "voice activity in the newest step")
        self.recording = self._label("", "recording")
        self.recording.setStyleSheet("color: rgb(240, 60, 60); font-weight: bold")

    def _label(self, text: str, tip: str) -> QLabel:
        label = QLabel(text)
        label.setToolTip(tip)
        self.bar.addPermanentWidget(label)
        return label

    def set_sources(self, video: str, audio: str) -> None:
        self.sources.setText(f"{video} · {audio}")

    def set_model(self, name: str, provider: str) -> None:
        short = provider.replace("ExecutionProvider", "") if provider else "–"
        self.model.setText(f"{name} on {short}")

    def set_rates(self, steps_per_s: float, latency_ms: float | None, dropped: int) -> None:
        self.rate.setText(f"{steps_per_s:.1f} steps/s")
        self.latency.setText("– ms" if latency_ms is None else f"{latency_ms:.1f} ms")
        self.dropped.setText(f"dropped {dropped}")
        self.dropped.setStyleSheet("color: rgb(240, 60, 60)" if dropped else "")

    def set_level(self, dbfs: float) -> None:
        self.level.setValue(int(dbfs))

    def set_voice(self, active: bool | None) -> None:
        self.voice.setText("voice –" if active is None else ("voice ●" if active else "voice ○"))
        self.voice.setStyleSheet("color: rgb(80, 220, 100)" if active else "")

    def set_recording(self, elapsed_s: float | None,
                      baseline_left_s: float | None = None) -> None:
        """The REC indicator; while a neutral baseline is being taken, its countdown too."""
        if elapsed_s is None:
            self.recording.setText("")
            return
        minutes, seconds = divmod(int(elapsed_s), 60)
        text = f"● REC {minutes:02d}:{seconds:02d}"
        if baseline_left_s is not None:
            text += f" · baseline: keep neutral, {baseline_left_s:.0f} s left"
        self.recording.setText(text)

    def message(self, text: str, ms: int = 8000) -> None:
        self.bar.showMessage(text, ms)


__all__ = ["StatusPanel"]
