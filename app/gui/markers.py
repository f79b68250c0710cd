"""Event markers: nine labelled buttons (keys 1-9; right-click to rename) and a
free-text marker. The bar only says *what* was marked; the window stamps it with the
engine clock and hands it to the recorder, so the time is taken once, in one place.
"""
from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (QHBoxLayout, QInputDialog, QLineEdit, QPushButton, QWidget)


class MarkerBar(QWidget):
    marked = Signal(str, str)  # (label, value): value is the free text, or ""
    labelsChanged = Signal(list)

    def __init__(self, labels: list[str], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.labels = list(labels)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.buttons: list[QPushButton] = []
        for number in range(1, 10):
            button = QPushButton()
            button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
            button.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
            button.clicked.connect(lambda _=False, n=number: self.mark(n))
            button.customContextMenuRequested.connect(lambda _p, n=number: self.rename(n))
            layout.addWidget(button)
            self.buttons.append(button)
            # Window-wide key; a focused text field still receives digits typed into it.
            shortcut = QShortcut(QKeySequence(str(number)), parent or self)
            shortcut.activated.connect(lambda n=number: self.mark(n))
        self.text = QLineEdit()
        self.text.setPlaceholderText("free-text marker, Enter to add")
        self.text.returnPressed.connect(self.mark_text)
        layout.addWidget(self.text, stretch=2)
        self._refresh()

    def _refresh(self) -> None:
        for number, button in enumerate(self.buttons, start=1):
            label = self.labels[number - 1]
            button.setText(f"{number} {label}")
            button.setToolTip(f"mark '{label}' (key {number}); right-click to rename")

    def mark(self, number: int) -> None:
        self.marked.emit(self.labels[number - 1], "")

    def mark_text(self) -> None:
        text = self.text.text().strip()
        if text:
            self.marked.emit("note", text)
            self.text.clear()

    def set_label(self, number: int, label: str) -> None:
        label = label.strip()
        if label:
            self.labels[number - 1] = label
            self._refresh()
            self.labelsChanged.emit(list(self.labels))

    def rename(self, number: int) -> None:
        label, ok = QInputDialog.getText(self, "Marker label", f"Label for key {number}:",
                                         text=self.labels[number - 1])
        if ok:
            self.set_label(number, label)
