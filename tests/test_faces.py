"""models.faces: BlazeFace on real CREMA-D frames, box smoothing, crops as the spec says."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from models.face_crop import crop_face
from models.faces import Detection, FaceDetector, FaceTracker, pick_face
from models.media import read_video_frames
from models.spec import FaceCrop

CROP = FaceCrop(size=64, channels=3, margin=0.15)


@pytest.fixture(scope="module")
def detector():
    with FaceDetector() as detector:
        yield detector


@pytest.fixture
def crema_frames(cremad_dir):
    return [f.rgb for f in read_video_frames(cremad_dir / "1001_DFA_HAP_XX.flv")]


def test_finds_the_face_on_every_frame_of_a_real_clip(detector, crema_frames):
    tracker = FaceTracker(CROP, smoothing=0.5, detector=detector)
    results = [tracker.process(rgb) for rgb in crema_frames]
    assert all(r.found for r in results)
    assert min(r.score for r in results) > 0.7
    for r in results:
        x, y, w, h = r.box
        # The actor sits in the middle of a 480x360 frame, face ~100 px wide.
        assert 120 < x + w / 2 < 360 and 60 < y + h / 2 < 300 and 60 < w < 200
        assert r.face.shape == (3, 64, 64) and r.face.dtype == np.float32
        assert 0.0 <= r.face.min() and r.face.max() <= 1.0 and r.face.std() > 0.05
    # The crop is exactly crop_face on the smoothed box: training and app agree.
    assert np.array_equal(results[-1].face, crop_face(crema_frames[-1], results[-1].box, CROP))


def test_smoothing_steadies_the_box(detector, crema_frames):
    def centre_jitter(smoothing):
        tracker = FaceTracker(CROP, smoothing=smoothing, detector=detector)
        boxes = np.array([tracker.process(rgb).box for rgb in crema_frames])
        centres = boxes[:, :2] + boxes[:, 2:] / 2
        return np.abs(np.diff(centres, axis=0)).mean()

    assert centre_jitter(0.8) < 0.7 * centre_jitter(0.0)


def test_no_face_gives_zeros_and_clears_state_and_reset_restarts(detector, crema_frames):
    tracker = FaceTracker(CROP, detector=detector)
    assert tracker.process(crema_frames[0]).found
    blank = tracker.process(np.zeros((360, 480, 3), np.uint8))
    assert not blank.found and blank.score == 0.0 and blank.box is None
    assert blank.face.shape == (3, 64, 64) and not blank.face.any()
    assert tracker.box is None
    first = tracker.process(crema_frames[10])
    tracker.reset()
    assert tracker.box is None
    again = tracker.process(crema_frames[10])
    assert again.box == first.box  # after reset, the same frame gives the same crop


def test_a_face_that_moves_far_is_followed_at_once(detector, crema_frames):
    tracker = FaceTracker(CROP, smoothing=0.9, detector=detector)
    frame = crema_frames[0]
    canvas = np.zeros((360, 960, 3), np.uint8)
    canvas[:, :480] = frame
    left = tracker.process(canvas).box
    canvas = np.zeros_like(canvas)
    canvas[:, 480:] = frame
    right = tracker.process(canvas).box
    assert right[0] == pytest.approx(left[0] + 480, abs=8)  # no glide across the image


def test_prefers_the_largest_of_equally_confident_faces(detector, crema_frames):
    face = crema_frames[0][60:300, 120:360]  # 240x240 around the actor's face
    small = cv2.resize(face, (180, 180), interpolation=cv2.INTER_AREA)
    canvas = np.zeros((480, 480, 3), np.uint8)
    canvas[:240, :240] = face
    canvas[240:420, 240:420] = small
    found = detector.detect(canvas)
    assert len(found) == 2
    chosen = pick_face(found)
    assert chosen.box[0] < 240 and chosen.box[1] < 240  # the big one, top left
    # A clearly more confident face beats a bigger one.
    assert pick_face([Detection(0.55, (0, 0, 200, 200)), Detection(0.95, (0, 0, 50, 50))]
                     ).score == 0.95
    assert pick_face([]) is None


def test_grey_model_crop_and_grey_frames(detector, crema_frames):
    tracker = FaceTracker(FaceCrop(size=48, channels=1), detector=detector)
    grey = crema_frames[0].mean(axis=2).astype(np.uint8)
    result = tracker.process(grey)
    assert result.found and result.face.shape == (1, 48, 48)
    with pytest.raises(ValueError, match="uint8"):
        tracker.process(crema_frames[0].astype(np.float32))
    with pytest.raises(ValueError, match="smoothing"):
        FaceTracker(CROP, smoothing=1.0, detector=detector)


def test_a_frame_given_twice_with_its_key_is_tracked_once(detector, crema_frames):
    smoothed = FaceTracker(CROP, smoothing=0.8, detector=detector)
    once = FaceTracker(CROP, smoothing=0.8, detector=detector)
    for index, rgb in enumerate(crema_frames[:10]):
        first = smoothed.process(rgb, key=index)
        assert smoothed.process(rgb, key=index) is first  # same key: same result
        once.process(rgb)
    assert smoothed.box == once.box  # repeats did not pull the box further
