"""The Sources menu: one camera and one microphone, each a checkable list with "none",
filled from the devices found each time the menu opens."""
from __future__ import annotations

from typing import Callable

from PySide6.QtGui import QActionGroup
from PySide6.QtWidgets import QMenu

from app.sources.choice import SourceChoice


def fill_sources_menu(menu: QMenu, devices, choice: SourceChoice,
                      choose: Callable[[SourceChoice], object],
                      refresh: Callable[[], None]) -> None:
    """``devices``: an ``app.sources.DeviceList``; ``choose(new choice)`` on a click."""
    menu.clear()
    menu.addSection("Camera")
    cameras = [(None, "no camera")] + [(c.index, c.name) for c in devices.cameras]
    _add_group(menu, cameras, lambda index: choice.camera == index and not choice.video_file,
               lambda index: choose(SourceChoice(camera=index, microphone=choice.microphone,
                                                 audio_file=choice.audio_file)))
    menu.addSection("Microphone")
    microphones = [(None, "no microphone")] + [
        (m.index, m.name + (" (default)" if m.is_default else "")) for m in devices.microphones]
    _add_group(menu, microphones,
               lambda index: choice.microphone == index and not choice.audio_file,
               lambda index: choose(SourceChoice(camera=choice.camera,
                                                 video_file=choice.video_file,
                                                 microphone=index)))
    for problem in devices.problems:
        menu.addAction(problem).setEnabled(False)
    menu.addSeparator()
    menu.addAction("Refresh devices").triggered.connect(refresh)


def _add_group(menu: QMenu, entries, checked, chosen) -> None:
    """Checkable, mutually exclusive actions for ``entries`` [(index, name)]."""
    group = QActionGroup(menu)
    for index, name in entries:
        action = menu.addAction(name)
        action.setCheckable(True)
        action.setChecked(checked(index))
        action.triggered.connect(lambda _=False, i=index: chosen(i))
        group.addAction(action)
