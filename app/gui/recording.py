"""The Record dialog. Recording itself goes through ``app.recording.recorder.SessionRecorder``
(driven by ``app.gui.control.LiveControl``), behind the small interface agreed with it:

    SessionRecorder(out_dir, metadata: dict, engine, baseline_s=None, lsl=False,
                    lsl_marker_outlet=None)
    .start()  .add_event(onset_s, label, value="")  .add_rating(t_s, arousal, valence)
    .record_baseline(seconds)  .baseline  .stop()

The recorder owns its thread and the disk; the control only calls these methods. When the
module is not importable, ``app.gui.control.recorder_class()`` says why and Record is
disabled. The dialog offers what ``affect-monitor record --baseline N --lsl`` offers on
the command line.
"""
from __future__ import annotations

import getpass
from datetime import datetime
from pathlib import Path

from PySide6.QtCore import QRegularExpression
from PySide6.QtGui import QRegularExpressionValidator
from PySide6.QtWidgets import (QCheckBox, QDialog, QDialogButtonBox, QDoubleSpinBox,
                               QFileDialog, QFormLayout, QHBoxLayout, QLineEdit,
                               QPlainTextEdit, QPushButton, QWidget)

from app.gui.control import MAX_BASELINE_S
from app.recording.layout import safe_label
from app.recording.lsl import lsl_not_installed


def default_sessions_dir() -> Path:
    return Path.home() / "affect-monitor-sessions"


class RecordDialog(QDialog):
    """Participant id, session id, condition, notes, where the session folder goes, an
    opening neutral baseline, and whether to stream on LSL."""

    def __init__(self, parent: QWidget | None = None, base_dir: Path | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Record a session")
        form = QFormLayout(self)
        # Ids name the session folder (sub-<id>_ses-<id>): BIDS labels, letters and digits
        # only, so no id can lead outside "Save under". The validator stops typing; out_dir()
        # and metadata() clean what reached the fields otherwise (pasted, set by code).
        label = QRegularExpressionValidator(QRegularExpression("[A-Za-z0-9]*"), self)
        self.participant = QLineEdit()
        self.participant.setValidator(label)
        self.session = QLineEdit(datetime.now().strftime("%Y%m%d%H%M%S"))
        self.session.setValidator(label)
        for field in (self.participant, self.session):
            field.setToolTip("letters and digits only (a BIDS label)")
        self.condition = QLineEdit()
        self.notes = QPlainTextEdit()
        self.notes.setFixedHeight(70)
        self.folder = QLineEdit(str(base_dir or default_sessions_dir()))
        browse = QPushButton("…")
        browse.clicked.connect(self._browse)
        row = QHBoxLayout()
        row.addWidget(self.folder)
        row.addWidget(browse)
        form.addRow("Participant id", self.participant)
        form.addRow("Session id", self.session)
        form.addRow("Condition", self.condition)
        form.addRow("Notes", self.notes)
        form.addRow("Save under", row)
        self.baseline = QDoubleSpinBox()
        self.baseline.setRange(0.0, MAX_BASELINE_S)
        self.baseline.setDecimals(0)
        self.baseline.setSuffix(" s")
        self.baseline.setSpecialValueText("none")  # shown at 0
        self.baseline.setToolTip("the first seconds of the recording are the participant's "
                                 "neutral baseline; exports add baseline-corrected columns")
        form.addRow("Neutral baseline", self.baseline)
        self.lsl = QCheckBox("Stream on LSL (Affect and Markers outlets; record other apps' "
                             "markers)")
        problem = lsl_not_installed()  # no mne-lsl import: that takes seconds
        if problem:
            self.lsl.setEnabled(False)
            self.lsl.setToolTip(problem)
        form.addRow("Lab Streaming Layer", self.lsl)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok
                                   | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)

    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Save sessions under", self.folder.text())
        if folder:
            self.folder.setText(folder)

    def metadata(self) -> dict:
        return {"participant_id": safe_label(self.participant.text()),
                "session_id": safe_label(self.session.text()),
                "condition": self.condition.text().strip(),
                "notes": self.notes.toPlainText().strip(),
                "operator": getpass.getuser(),
                "started_at": datetime.now().astimezone().isoformat(timespec="seconds")}

    def options(self) -> dict:
        """The recorder's keyword arguments chosen here."""
        seconds = self.baseline.value()
        return {"baseline_s": seconds if seconds > 0 else None,
                "lsl": self.lsl.isEnabled() and self.lsl.isChecked()}

    def out_dir(self) -> Path:
        meta = self.metadata()
        parts = [f"sub-{meta['participant_id']}" if meta["participant_id"] else "",
                 f"ses-{meta['session_id']}" if meta["session_id"] else ""]
        name = "_".join(p for p in parts if p) or datetime.now().strftime("ses-%Y%m%d%H%M%S")
        return Path(self.folder.text()).expanduser() / name
