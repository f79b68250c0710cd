"""The desktop window: live curves, circumplex, video with the face box, markers,
self-rating and recording. PySide6 + pyqtgraph; imported only by the GUI entry
(``app.gui.main.run_gui``), so the headless subcommands never load Qt.

The live session's state and commands (engine, recording, LSL, baseline, self-rating,
markers) are ``control.LiveControl``, which has no Qt; ``main_window.MainWindow`` lays out
the widgets and wires them to it. ``live``, ``rating``, ``control`` and ``review_data``
are Qt-free. The GUI thread never runs inference or touches the disk while live: the
engine steps on its own thread and the window drains its ``Subscription`` on a ~30 Hz
``QTimer``.
"""
