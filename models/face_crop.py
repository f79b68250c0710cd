"""Face box -> model-ready face tensor, shared by training readers and the live app.

One function decides the crop so that the model sees the same geometry and the same
normalisation in training and in use (see ``FaceCrop`` in ``spec.py``).
"""
from __future__ import annotations

import cv2
import numpy as np

from models.spec import FaceCrop


def square_box(box: tuple[float, float, float, float], margin: float) -> tuple[int, int, int]:
    """(x, y, w, h) in pixels -> (x0, y0, side) of the square crop widened by ``margin``."""
    x, y, w, h = box
    side = max(w, h) * (1.0 + 2.0 * margin)
    cx, cy = x + w / 2.0, y + h / 2.0
    return int(round(cx - side / 2.0)), int(round(cy - side / 2.0)), max(1, int(round(side)))


def crop_face(image: np.ndarray, box: tuple[float, float, float, float] | None,
              crop: FaceCrop) -> np.ndarray:
    """Cut, resize and normalise one face.

    ``image`` is HxW (grey) or HxWx3 (RGB, uint8). ``box`` is (x, y, w, h) in pixels,
    or None to use the whole image (already-cropped datasets such as FER+).
    Parts of the square crop outside the image are filled by edge replication, so a
    face at the border keeps its size and position instead of being stretched.
    Returns float32 [C, size, size] in 0..1.
    """
    if image.ndim not in (2, 3):
        raise ValueError(f"image must be HxW or HxWx3, got shape {image.shape}")
    if box is None:
        height, width = image.shape[:2]
        box = (0.0, 0.0, float(width), float(height))
        margin = 0.0
    else:
        margin = crop.margin
    x0, y0, side = square_box(box, margin)
    height, width = image.shape[:2]
    pad = max(0, -x0, -y0, x0 + side - width, y0 + side - height)
    if pad:
        image = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
        x0, y0 = x0 + pad, y0 + pad
    patch = image[y0:y0 + side, x0:x0 + side]
    interpolation = cv2.INTER_AREA if side > crop.size else cv2.INTER_LINEAR
    patch = cv2.resize(patch, (crop.size, crop.size), interpolation=interpolation)
    patch = to_channels(patch, crop.channels)
    return (patch.astype(np.float32) / 255.0).transpose(2, 0, 1).copy()


def to_channels(image: np.ndarray, channels: int) -> np.ndarray:
    """HxW or HxWx3 (RGB) uint8 -> HxWxC with C = ``channels`` (1 grey or 3 RGB)."""
    if image.ndim == 2:
        image = image[:, :, None]
    if image.shape[2] == channels:
        return image
    if channels == 1:
        return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)[:, :, None]
    return np.repeat(image, 3, axis=2)
