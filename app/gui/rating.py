"""Continuous self-rating (after CARMA/DARMA): a position on the circumplex, sampled at
25 Hz on the engine's sample clock, paused while the window is not focused.

Sampling is sample-and-hold on the 40 ms grid of the engine clock: each GUI tick asks
``sample(now)`` and gets one rating for every grid point passed since the last tick,
so the rate is exactly 25 Hz whatever the timer's jitter, and a rating's time lines up
with the prediction of the same step. Qt-free, so it is tested without a window.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from models.spec import STEP_SECONDS

ARROW_STEP = 0.05  # how far one arrow key press moves the rating


@dataclass(frozen=True)
class Rating:
    t: float  # seconds on the engine clock (a multiple of 40 ms)
    arousal: float
    valence: float


class RatingSampler:
    def __init__(self) -> None:
        self.valence = 0.0
        self.arousal = 0.0
        self.running = False  # rating switched on (while recording, or by the user)
        self.focused = True  # the window has focus; ratings pause without it
        self._next_step: int | None = None  # index of the next grid point to emit

    @property
    def active(self) -> bool:
        return self.running and self.focused

    def start(self, now: float) -> None:
        self.running = True
        self._next_step = math.ceil(now / STEP_SECONDS - 1e-9)

    def stop(self) -> None:
        self.running = False
        self._next_step = None

    def set_focused(self, focused: bool, now: float) -> None:
        if focused and not self.focused and self.running:
            # Resume from now: the time without focus has no ratings, not stale ones.
            self._next_step = math.ceil(now / STEP_SECONDS - 1e-9)
        self.focused = focused

    def move_to(self, valence: float, arousal: float) -> None:
        self.valence = min(1.0, max(-1.0, valence))
        self.arousal = min(1.0, max(-1.0, arousal))

    def nudge(self, d_valence: float, d_arousal: float) -> None:
        self.move_to(self.valence + d_valence, self.arousal + d_arousal)

    def sample(self, now: float) -> list[Rating]:
        """Ratings for every 40 ms grid point in [last sample, now]; [] when paused."""
        if not self.active or self._next_step is None:
            return []
        last = math.floor(now / STEP_SECONDS + 1e-9)
        out = [Rating(round(k * STEP_SECONDS, 6), self.arousal, self.valence)
               for k in range(self._next_step, last + 1)]
        self._next_step = max(self._next_step, last + 1)
        return out
