"""Alignment crop, paste-back and colour matching on real face frames."""

from __future__ import annotations

import cv2
import numpy as np

from streamer.core.types import Image
from streamer.stages.anonymize.diffusion import crop as C
from streamer.stages.detect import CenterFaceDetector


def _faces(demo_frames: list[tuple[Image, np.ndarray]], detector: CenterFaceDetector) -> tuple[Image, np.ndarray, np.ndarray]:
    image = demo_frames[0][0]
    dets = detector.detect(image)
    assert dets.landmarks is not None and len(dets) == 2
    return image, dets.xyxy, dets.landmarks


def test_aligned_crop_puts_landmarks_on_the_template(demo_frames: list, detector: CenterFaceDetector) -> None:
    image, _, landmarks = _faces(demo_frames, detector)
    for lm in landmarks:
        m = C.crop_matrix(lm, 128)
        warped = C.transform_points(m, lm) / 128
        assert float(np.abs(warped - C.FACE_TEMPLATE).max()) < 0.06
        assert C.warp_crop(image, m, 128).shape == (128, 128, 3)


def test_mask_covers_real_detections(demo_frames: list, detector: CenterFaceDetector) -> None:
    _, boxes, landmarks = _faces(demo_frames, detector)
    for box, lm in zip(boxes, landmarks):
        assert C.covers(box, C.crop_matrix(lm, 64), 64)
    # a box twice as large as the landmarks say is not covered: the caller blurs
    big = boxes[0] + np.array([-1, -1, 1, 1], np.float32) * (boxes[0][2] - boxes[0][0])
    assert not C.covers(big, C.crop_matrix(landmarks[0], 64), 64)


def test_paste_of_the_crop_itself_restores_the_face(demo_frames: list, detector: CenterFaceDetector) -> None:
    image, boxes, landmarks = _faces(demo_frames, detector)
    m = C.crop_matrix(landmarks[0], 256)
    crop = C.warp_crop(image, m, 256)
    out = image.copy()
    assert C.paste(out, crop, m, C.face_mask(256, 0.2))
    x1, y1, x2, y2 = boxes[0].astype(int)
    diff = np.abs(out[y1:y2, x1:x2].astype(int) - image[y1:y2, x1:x2].astype(int)).mean()
    assert diff < 4.0


def test_paste_replaces_only_the_face(demo_frames: list, detector: CenterFaceDetector) -> None:
    image, boxes, landmarks = _faces(demo_frames, detector)
    m = C.crop_matrix(landmarks[1], 64)
    out = image.copy()
    assert C.paste(out, np.full((64, 64, 3), 255, np.uint8), m, C.face_mask(64, 0.2))
    x1, y1, x2, y2 = boxes[1].astype(int)
    cx, cy = (x1 + x2) // 2, (y1 + y2) // 2
    assert out[cy, cx].min() == 255  # face centre replaced
    changed = np.any(out != image, axis=2)
    ys, xs = np.nonzero(changed)
    w = x2 - x1
    assert xs.min() > x1 - w and xs.max() < x2 + w  # nothing far outside the face
    assert not changed[:, : max(0, x1 - w)].any()


def test_paste_off_frame_returns_false() -> None:
    image = np.zeros((50, 50, 3), np.uint8)
    lm = np.array([[300, 300], [320, 300], [310, 310], [302, 320], [318, 320]], np.float32)
    assert not C.paste(image, np.zeros((64, 64, 3), np.uint8), C.crop_matrix(lm, 64), C.face_mask(64, 0.2))


def test_face_mask_is_opaque_at_the_centre_and_zero_at_the_corners() -> None:
    mask = C.face_mask(64, 0.2)
    assert mask.alpha[36, 32] == 1.0 and mask.alpha[0, 0] == 0.0
    assert 0 < mask.corners[:, 0].min() and mask.corners[:, 0].max() <= 64
    assert C.face_mask(64, 0.0).alpha.max() == 1.0


def test_colour_matching_moves_skin_statistics_to_the_original() -> None:
    rng = np.random.default_rng(0)
    original = np.clip(rng.normal((90, 120, 170), 12, (64, 64, 3)), 0, 255).astype(np.uint8)  # warm skin, BGR
    synthetic = np.clip(rng.normal((170, 120, 90), 30, (64, 64, 3)), 0, 255).astype(np.uint8)  # bluish face
    mask = C.face_mask(64, 0.2).alpha
    matched = C.match_colour(synthetic, original, mask)
    inside = mask > 0.5
    before = np.abs(synthetic[inside].mean(0) - original[inside].mean(0)).max()
    after = np.abs(matched[inside].mean(0) - original[inside].mean(0)).max()
    assert after < 6 < before
    # the synthetic pattern survives (structure is not copied from the original)
    corr = np.corrcoef(cv2.cvtColor(matched, cv2.COLOR_BGR2GRAY)[inside], cv2.cvtColor(synthetic, cv2.COLOR_BGR2GRAY)[inside])[0, 1]
    assert corr > 0.8
