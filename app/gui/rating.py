"""Continuous self-rating (after CARMA/DARMA): a position on the circumplex, sampled at
25 Hz on the engine's sample clock, paused while the window is not focused.

Sampling is sample-and-hold on the 40 ms grid of the engine clock: each GUI tick asks
``sample(now)`` and gets one rating for every grid point passed since the last tick,
so the rate is exactly 25 Hz whatever the timer's jitter, and a rating's time lines up
with the prediction of the same step. Qt-free, so it is tested without a window.

The input is the circumplex (both dimensions) or a 1-D slider (``RATING_MODES``).
ratings.csv has no way to say "not rated": every row needs a finite arousal and valence
(the recorder refuses NaN, and the training label reader and exporters expect numbers).
So the dimension a slider does not rate is written as ``UNRATED`` (0.0), and the
recording's session.json says which dimension was rated (``metadata.self_rating``,
see ``rating_metadata``); review mode reads it and plots only the rated dimension.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from models.spec import STEP_SECONDS

ARROW_STEP = 0.05  # how far one arrow key press moves the rating
DIMENSIONS = ("arousal", "valence")
CIRCUMPLEX = "circumplex"
RATING_MODES = (CIRCUMPLEX, *DIMENSIONS)  # what the self-rating input can be
UNRATED = 0.0  # written for the dimension a 1-D rating leaves out (see module doc)


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


def rating_metadata(mode: str) -> dict:
    """session.json's ``self_rating``: which input made ratings.csv."""
    if mode == CIRCUMPLEX:
        return {"input": "circumplex", "dimensions": list(DIMENSIONS)}
    return {"input": "slider", "dimensions": [mode],
            "unrated": {"dimension": other_dimension(mode), "value": UNRATED}}


def rated_dimensions(info: dict) -> tuple[str, ...]:
    """The dimensions a recorded session's ratings.csv really holds (both when unsaid)."""
    if not isinstance(info, dict):
        return DIMENSIONS
    metadata = info.get("metadata") if isinstance(info.get("metadata"), dict) else {}
    rating = metadata.get("self_rating", info.get("self_rating"))
    dims = rating.get("dimensions") if isinstance(rating, dict) else None
    if isinstance(dims, list) and dims and all(d in DIMENSIONS for d in dims):
        return tuple(dims)
    return DIMENSIONS


def other_dimension(dimension: str) -> str:
    return "valence" if dimension == "arousal" else "arousal"


def set_slider_rating(sampler: RatingSampler, dimension: str, value: float) -> None:
    """Point the shared sampler at ``value`` on ``dimension``; the other holds UNRATED."""
    if dimension == "arousal":
        sampler.move_to(UNRATED, value)
    else:
        sampler.move_to(value, UNRATED)


def slider_rating(sampler: RatingSampler, dimension: str) -> float:
    return sampler.arousal if dimension == "arousal" else sampler.valence


def drawn_dimensions(mode: str) -> tuple[str, ...]:
    """The dimensions a rating ``mode`` rates (and the curves draw)."""
    return DIMENSIONS if mode == CIRCUMPLEX else (mode,)
