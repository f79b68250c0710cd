"""Recording through ``app.session.recorder.SessionRecorder`` (the recording issue's
module), behind the small interface agreed with it:

    SessionRecorder(out_dir, metadata: dict, engine)
    .start()  .add_event(onset_s, label, value="")  .add_rating(t_s, arousal, valence)  .stop()

The recorder owns its thread and the disk; the window only calls these methods. When the
module is not importable, ``recorder_class()`` says why and Record is disabled.
"""
from __future__ import annotations

import getpass
import time
from datetime import datetime
from pathlib import Path

from PySide6.QtWidgets import (QDialog, QDialogButtonBox, QFileDialog, QFormLayout,
                               QHBoxLayout, QLineEdit, QPlainTextEdit, QPushButton, QWidget)


def recorder_class():
    """(SessionRecorder, None), or (None, the reason recording is unavailable)."""
    try:
        from app.session.recorder import SessionRecorder
    except ImportError as error:
        return None, f"recording is not available in this build ({error})"
    return SessionRecorder, None


def default_sessions_dir() -> Path:
    return Path.home() / "affect-monitor-sessions"


class RecordDialog(QDialog):
    """Participant id, session id, condition, notes, and where the session folder goes."""

    def __init__(self, parent: QWidget | None = None, base_dir: Path | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Record a session")
        form = QFormLayout(self)
        self.participant = QLineEdit()
        self.session = QLineEdit(datetime.now().strftime("%Y%m%d-%H%M%S"))
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
        return {"participant_id": self.participant.text().strip(),
                "session_id": self.session.text().strip(),
                "condition": self.condition.text().strip(),
                "notes": self.notes.toPlainText().strip(),
                "operator": getpass.getuser(),
                "started_at": datetime.now().astimezone().isoformat(timespec="seconds")}

    def out_dir(self) -> Path:
        meta = self.metadata()
        name = "_".join(p for p in (f"sub-{meta['participant_id']}" if meta["participant_id"]
                                    else "", f"ses-{meta['session_id']}") if p)
        return Path(self.folder.text()).expanduser() / name


class Recording:
    """A running recorder and when it started (for the elapsed-time indicator)."""

    def __init__(self, recorder, out_dir: Path) -> None:
        self.recorder = recorder
        self.out_dir = out_dir
        self.started = time.monotonic()

    @property
    def elapsed_s(self) -> float:
        return time.monotonic() - self.started
