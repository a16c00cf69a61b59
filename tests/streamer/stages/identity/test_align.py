"""Alignment and face quality on real faces (the demo photos and insightface's t1.jpg group photo)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from streamer.core.types import Image
from streamer.io import demo
from streamer.stages.detect import CenterFaceDetector
from streamer.stages.identity import align


@pytest.fixture(scope="module")
def t1_faces(detector: CenterFaceDetector) -> tuple[Image, np.ndarray, np.ndarray]:
    """t1.jpg (6 people), face boxes and landmarks sorted left to right."""
    path = demo.insightface_t1_path()
    assert path is not None, "insightface's t1.jpg is needed: pip install --no-deps insightface==2.1"
    image = cv2.imread(str(path))
    faces = detector.detect(image)
    faces = faces[faces.score >= 0.5]  # the six people (the stream threshold also finds a shoulder)
    order = np.argsort(faces.xyxy[:, 0])
    assert faces.landmarks is not None and len(faces) == 6
    return image, faces.xyxy[order], faces.landmarks[order]


@pytest.fixture(scope="module")
def grace(detector: CenterFaceDetector) -> tuple[Image, np.ndarray, np.ndarray]:
    image = demo.grace_hopper().image
    faces = detector.detect(image)
    assert faces.landmarks is not None and len(faces) == 1
    return image, faces.xyxy[0], faces.landmarks[0]


def test_similarity_recovers_a_known_transform_of_real_landmarks(grace: tuple[Image, np.ndarray, np.ndarray]) -> None:
    _, _, lm = grace
    angle, scale, shift = np.deg2rad(17.0), 0.61, np.array([12.5, -40.0])
    rot = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    moved = lm @ rot.T + shift
    matrix = align.similarity_transform(lm, moved)
    np.testing.assert_allclose(matrix[:, :2], rot, atol=1e-6)
    np.testing.assert_allclose(matrix[:, 2], shift, atol=1e-4)


@pytest.mark.filterwarnings("ignore::FutureWarning")  # insightface calls a deprecated scikit-image API
def test_arcface_alignment_agrees_with_insightface_norm_crop(t1_faces: tuple[Image, np.ndarray, np.ndarray]) -> None:
    from insightface.utils.face_align import estimate_norm, norm_crop

    image, _, landmarks = t1_faces
    for lm in landmarks:
        ours = align.similarity_transform(lm, align.ARCFACE_TEMPLATE_112)
        np.testing.assert_allclose(ours, estimate_norm(lm, 112), atol=1e-4)
        theirs = norm_crop(image, lm, 112)
        mine = align.align_face(image, lm, align.ARCFACE_TEMPLATE_112, 112)
        assert mine.shape == (112, 112, 3)
        assert np.abs(mine.astype(int) - theirs.astype(int)).max() <= 1


def test_dlib_alignment_puts_real_landmarks_on_the_template(t1_faces: tuple[Image, np.ndarray, np.ndarray]) -> None:
    image, _, landmarks = t1_faces
    for lm in landmarks[[0, 2, 3]]:  # the frontal faces
        crop = align.align_face(image, lm, align.DLIB_TEMPLATE_150, 150)
        assert crop.shape == (150, 150, 3) and crop.mean() > 40  # a face, not the black border
        matrix = align.similarity_transform(lm, align.DLIB_TEMPLATE_150)
        warped = align.transform_points(matrix, lm)
        assert np.abs(warped - align.DLIB_TEMPLATE_150).max() < 12
        assert align.alignment_residual(lm, align.DLIB_TEMPLATE_150) < 0.15


def test_frontalness_separates_frontal_from_profile_and_ignores_roll(
    t1_faces: tuple[Image, np.ndarray, np.ndarray], grace: tuple[Image, np.ndarray, np.ndarray]
) -> None:
    _, _, landmarks = t1_faces
    scores = [align.frontalness(lm) for lm in landmarks]
    assert scores[0] > 0.8 and scores[2] > 0.8  # facing the camera
    assert scores[4] < 0.3  # the man looking sideways (right of the lamp)
    _, _, lm = grace
    angle = np.deg2rad(30)
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    assert align.frontalness(lm @ rot.T) == pytest.approx(align.frontalness(lm), abs=1e-5)


def test_quality_sees_blur_and_small_faces(grace: tuple[Image, np.ndarray, np.ndarray]) -> None:
    image, box, lm = grace
    crop = align.align_face(image, lm, align.DLIB_TEMPLATE_150, 150)
    sharp = align.face_quality(box, lm, crop, align.DLIB_TEMPLATE_150)
    blurred = cv2.GaussianBlur(image, (0, 0), 6)
    soft = align.face_quality(box, lm, align.align_face(blurred, lm, align.DLIB_TEMPLATE_150, 150), align.DLIB_TEMPLATE_150)
    assert soft.sharpness < sharp.sharpness / 5
    assert sharp.good(40, 10, 0.5)
    assert not sharp.good(sharp.size + 1, 10, 0.5)  # too small for a stricter minimum


def test_appearance_signature_tells_a_stranger_from_the_same_face(
    t1_faces: tuple[Image, np.ndarray, np.ndarray], grace: tuple[Image, np.ndarray, np.ndarray], detector: CenterFaceDetector
) -> None:
    image, _, lm = grace
    reference = align.appearance_signature(image, lm)
    # the same face rendered smaller and moved, in a clip frame
    spec = demo.ClipSpec(actors=(demo.Actor(demo.grace_hopper(), 90, (0.4, 0.5), (0.0, 0.0)),), seconds=0.1)
    frame, _ = next(demo.render(spec))
    found = detector.detect(frame)
    assert found.landmarks is not None and len(found) == 1
    same = align.appearance_distance(reference, align.appearance_signature(frame, found.landmarks[0]))
    t1, _, landmarks = t1_faces
    others = [align.appearance_distance(reference, align.appearance_signature(t1, other)) for other in landmarks]
    assert same < 0.25
    assert min(others) > 0.35


def test_insightface_t1_is_where_demo_says() -> None:
    path = demo.insightface_t1_path()
    assert isinstance(path, Path) and path.is_file()
