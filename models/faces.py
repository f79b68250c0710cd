"""Face detection and tracking, shared by training readers and the app.

MediaPipe BlazeFace (short-range model, shipped inside the mediapipe 0.10.21 wheel, so it
works offline) finds faces; ``FaceTracker`` picks one per frame, smooths its box across
frames and crops it with ``models.face_crop.crop_face`` exactly as the model spec says.
Training and the app both go through ``FaceTracker``, so the model sees the same crops
offline and live. mediapipe is imported only when a detector is created.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from models.face_crop import crop_face
from models.spec import FaceCrop

Box = tuple[float, float, float, float]  # (x, y, w, h) in pixels

# Among faces whose score is within this of the best one, the largest wins: the person
# at the camera is usually the biggest face, and near-equal scores say nothing.
_SCORE_TIE = 0.1
# A new box overlapping the smoothed one less than this is a different face or a cut:
# jump to it instead of gliding across the image.
_MIN_IOU_TO_SMOOTH = 0.3


class FaceDetectorError(RuntimeError):
    """The face detector cannot be created (mediapipe missing or broken)."""


@dataclass(frozen=True)
class Detection:
    score: float  # 0..1 detector confidence
    box: Box


@dataclass(frozen=True)
class FaceResult:
    """One frame's face: ``face`` is float32 [C, H, W] in 0..1, zeros when not found."""

    found: bool
    score: float  # detector confidence of the chosen face; 0.0 when not found
    box: Box | None  # smoothed box in pixels; None when not found
    face: np.ndarray


class FaceDetector:
    """BlazeFace on RGB uint8 frames -> every face it finds, boxes in pixels."""

    def __init__(self, min_confidence: float = 0.5, model_selection: int = 0) -> None:
        try:
            from mediapipe.python.solutions import face_detection
        except ImportError as error:
            raise FaceDetectorError(
                f"face detection needs mediapipe ({error}); install it with "
                "`pip install mediapipe==0.10.21` (the last release that ships BlazeFace)"
            ) from None
        # model_selection 0 = short-range model, for faces within ~2 m of a webcam.
        self._graph = face_detection.FaceDetection(
            model_selection=model_selection, min_detection_confidence=min_confidence)

    def detect(self, rgb: np.ndarray) -> list[Detection]:
        if self._graph is None:
            raise RuntimeError("FaceDetector is closed")
        rgb = _as_rgb(rgb)
        height, width = rgb.shape[:2]
        result = self._graph.process(rgb)
        found = []
        for detection in result.detections or ():
            rel = detection.location_data.relative_bounding_box
            found.append(Detection(
                score=float(detection.score[0]),
                box=(rel.xmin * width, rel.ymin * height, rel.width * width,
                     rel.height * height)))
        return found

    def close(self) -> None:
        if self._graph is not None:
            self._graph.close()
            self._graph = None

    def __enter__(self) -> "FaceDetector":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def pick_face(detections: list[Detection]) -> Detection | None:
    """The most confident face; among near-equally confident ones, the largest."""
    if not detections:
        return None
    best = max(d.score for d in detections)
    candidates = [d for d in detections if d.score >= best - _SCORE_TIE]
    return max(candidates, key=lambda d: (d.box[2] * d.box[3], d.score))


def iou(a: Box, b: Box) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    inter_w = max(0.0, min(ax + aw, bx + bw) - max(ax, bx))
    inter_h = max(0.0, min(ay + ah, by + bh) - max(ay, by))
    inter = inter_w * inter_h
    union = aw * ah + bw * bh - inter
    return inter / union if union > 0 else 0.0


class FaceTracker:
    """Frame-by-frame face crops with an exponentially smoothed box.

    ``smoothing`` in [0, 1): weight of the previous box (0 = no smoothing). The only
    state is the smoothed box; ``reset()`` clears it (call it between clips). A frame
    with no face clears it too, so a face that returns starts from its own box.
    Feed frames in time order, each once: smoothing counts frames, not seconds.
    """

    def __init__(self, crop: FaceCrop, smoothing: float = 0.5, min_confidence: float = 0.5,
                 detector: FaceDetector | None = None) -> None:
        if not 0.0 <= smoothing < 1.0:
            raise ValueError(f"smoothing must be in [0, 1), got {smoothing}")
        self.crop = crop
        self.smoothing = smoothing
        self._detector = detector if detector is not None else FaceDetector(min_confidence)
        self._box: Box | None = None
        self._last: tuple[object, FaceResult] | None = None

    @property
    def box(self) -> Box | None:
        """The current smoothed box, or None."""
        return self._box

    def reset(self) -> None:
        self._box = None
        self._last = None

    def empty(self) -> FaceResult:
        """The result for a step without a usable frame: no face, zeros."""
        shape = (self.crop.channels, self.crop.size, self.crop.size)
        return FaceResult(found=False, score=0.0, box=None, face=np.zeros(shape, np.float32))

    def process(self, rgb: np.ndarray, key: object = None) -> FaceResult:
        """Detect, smooth and crop the face in one RGB uint8 frame (HxWx3, or HxW grey).

        ``key`` (e.g. the frame index): a frame given again with the same key returns
        the previous result instead of smoothing twice, so a frame that serves two
        40 ms steps counts once, live and offline alike.
        """
        if key is not None and self._last is not None and self._last[0] == key:
            return self._last[1]
        rgb = _as_rgb(rgb)
        chosen = pick_face(self._detector.detect(rgb))
        if chosen is None:
            self._box = None
            result = self.empty()
        else:
            self._box = self._smooth(chosen.box)
            result = FaceResult(found=True, score=chosen.score, box=self._box,
                                face=crop_face(rgb, self._box, self.crop))
        self._last = (key, result) if key is not None else None
        return result

    def _smooth(self, box: Box) -> Box:
        previous = self._box
        if previous is None or iou(previous, box) < _MIN_IOU_TO_SMOOTH:
            return tuple(float(v) for v in box)
        k = self.smoothing
        return tuple(k * p + (1.0 - k) * float(n) for p, n in zip(previous, box))

    def close(self) -> None:
        self._detector.close()

    def __enter__(self) -> "FaceTracker":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def _as_rgb(image: np.ndarray) -> np.ndarray:
    """uint8 HxWx3 contiguous, as the detector's graph requires."""
    if image.dtype != np.uint8:
        raise ValueError(f"frames must be uint8, got {image.dtype}")
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"frames must be HxWx3 RGB or HxW grey, got shape {image.shape}")
    return np.ascontiguousarray(image)
