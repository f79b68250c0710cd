"""What the main window shows of the live session: the video with the face box and the
circumplex (or the 1-D rating slider) on the left, the readouts, the curve-window choice
and the scrolling curves on the right. Display only: it is told what to draw."""
from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QSplitter, QVBoxLayout, QWidget

from app.gui.circumplex import CircumplexView
from app.gui.curves import AROUSAL_COLOUR, VALENCE_COLOUR, CurvePanel
from app.gui.live import LiveEngine
from app.gui.rating import CIRCUMPLEX, Rating, RatingSampler, drawn_dimensions, slider_rating
from app.gui.rating_slider import RatingSlider
from app.gui.settings import WINDOW_CHOICES_S
from app.gui.video_view import VideoView
from app.pipeline import Prediction

WINDOW_NAMES = {10: "10 s", 60: "60 s", 300: "5 min"}


class LivePanel(QWidget):
    def __init__(self, window_s: int, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.video = VideoView()
        self.circumplex = CircumplexView()
        self.curves = CurvePanel(window_s)
        self.arousal_value = _readout("arousal", AROUSAL_COLOUR)
        self.valence_value = _readout("valence", VALENCE_COLOUR)
        self.face_value = QLabel("face –")
        self.voice_value = QLabel("voice –")
        self._last_face = False  # the newest prediction's: colours the face box
        readouts = QHBoxLayout()
        for widget in (self.arousal_value, self.valence_value, self.face_value,
                       self.voice_value):
            readouts.addWidget(widget)
        readouts.addStretch(1)
        self.window_box = QComboBox()
        for seconds in WINDOW_CHOICES_S:
            self.window_box.addItem(WINDOW_NAMES[seconds], seconds)
        self.window_box.setCurrentIndex(WINDOW_CHOICES_S.index(window_s))
        self.window_box.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        readouts.addWidget(QLabel("window"))
        readouts.addWidget(self.window_box)

        self.rating_slider = RatingSlider()
        self.rating_slider.hide()  # shown when the self-rating input is a slider
        rating_panel = QWidget()
        rating_layout = QHBoxLayout(rating_panel)
        rating_layout.setContentsMargins(0, 0, 0, 0)
        rating_layout.addWidget(self.circumplex, stretch=1)
        rating_layout.addWidget(self.rating_slider)
        left = QSplitter(Qt.Orientation.Vertical)
        left.addWidget(self.video)
        left.addWidget(rating_panel)
        right = QWidget()
        right_layout = QVBoxLayout(right)
        right_layout.setContentsMargins(0, 0, 0, 0)
        right_layout.addLayout(readouts)
        right_layout.addWidget(self.curves, stretch=1)
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(left)
        split.addWidget(right)
        split.setStretchFactor(0, 2)
        split.setStretchFactor(1, 3)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(split)

    # -- the engine ---------------------------------------------------------------------------
    def restart(self, has_video: bool) -> None:
        """A new engine: what was drawn belonged to the previous one."""
        self.curves.clear()
        self.circumplex.clear_trail()
        if not has_video:
            self.video.clear("no camera: predictions use audio only")

    def show_predictions(self, predictions: list[Prediction]) -> None:
        if not predictions:
            return
        n = len(predictions)
        t = np.fromiter((p.t for p in predictions), np.float64, n)
        arousal = np.fromiter((p.arousal for p in predictions), np.float64, n)
        valence = np.fromiter((p.valence for p in predictions), np.float64, n)
        self.curves.add_predictions(t, arousal, valence)
        self.circumplex.add_predictions(arousal, valence)
        last = predictions[-1]
        self._last_face = last.face_found
        self.arousal_value.setText(f"arousal {last.arousal:+.2f}")
        self.valence_value.setText(f"valence {last.valence:+.2f}")
        self.face_value.setText(f"face {'yes' if last.face_found else 'no'} "
                                f"({last.face_score:.2f})")
        self.voice_value.setText(f"voice {'yes' if last.voice_active else 'no'}")

    def show_frame(self, live: LiveEngine) -> None:
        """The newest camera/video frame with the tracker's face box, if one came."""
        frame = live.latest_frame()
        if frame is not None:
            self.video.show_frame(frame.index, frame.rgb, live.face_box(), self._last_face)

    def redraw(self, now: float | None) -> None:
        self.curves.redraw(now)
        self.circumplex.redraw()

    # -- self-rating --------------------------------------------------------------------------
    def show_ratings(self, ratings: list[Rating], mode: str) -> None:
        """Sampled self-ratings on the curves (only the dimensions ``mode`` rates)."""
        if ratings:
            self.curves.add_ratings(np.array([r.t for r in ratings]),
                                    np.array([r.arousal for r in ratings]),
                                    np.array([r.valence for r in ratings]),
                                    drawn_dimensions(mode))

    def show_rating_input(self, mode: str, rating: bool) -> None:
        """The circumplex or a slider as the input; enabled while ``rating``."""
        slider = mode != CIRCUMPLEX
        if slider:
            self.rating_slider.set_dimension(mode)
        self.rating_slider.setVisible(slider)
        self.circumplex.set_rating_enabled(rating and not slider)
        self.rating_slider.set_rating_enabled(rating and slider)

    def show_rating(self, sampler: RatingSampler, mode: str) -> None:
        """Where the rater points, bright while ratings are taken (window focused)."""
        if mode == CIRCUMPLEX:
            self.circumplex.show_rating(sampler.valence, sampler.arousal, sampler.active)
        else:
            self.rating_slider.show_rating(slider_rating(sampler, mode), sampler.active)


def _readout(name: str, colour) -> QLabel:
    label = QLabel(f"{name} –")
    label.setStyleSheet(f"font-size: 18px; font-weight: bold; color: rgb{tuple(colour)}")
    label.setMinimumWidth(150)
    return label
