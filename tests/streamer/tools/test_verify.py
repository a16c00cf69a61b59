"""The oracle itself: it must see a leak at the box border and never pass with nothing checked."""

from __future__ import annotations

import math

import numpy as np
import pytest

from streamer.core.config import AnonymizerConfig
from streamer.core.types import FaceDetections, Image
from streamer.io import demo
from streamer.stages.anonymize import create_anonymizer
from streamer.tools import verify


@pytest.fixture(scope="module")
def scene() -> tuple[Image, np.ndarray, Image]:
    """Two real faces (60 px) and the same frame with both blurred by the default anonymizer."""
    ast, grace = demo.default_photos()
    spec = demo.ClipSpec(actors=(demo.Actor(ast, 60, (0.3, 0.4), (0, 0)), demo.Actor(grace, 60, (0.7, 0.6), (0, 0))))
    frame, boxes = next(demo.render(spec))
    blurred = create_anonymizer(AnonymizerConfig()).apply(frame.copy(), FaceDetections(boxes, np.ones(len(boxes))))
    return frame, boxes, blurred


def test_blurred_faces_are_hidden_over_the_whole_box(scene: tuple[Image, np.ndarray, Image]) -> None:
    frame, boxes, blurred = scene
    assert all(verify.face_hidden(frame, blurred, box) for box in boxes)
    assert all(verify.detail_kept(frame, blurred, box) < 0.1 for box in boxes)


def test_an_exposed_forehead_and_chin_are_a_leak(scene: tuple[Image, np.ndarray, Image]) -> None:
    """The top and bottom 15 % of the box left raw: outside the inner region, still a leak."""
    frame, boxes, blurred = scene
    leak = blurred.copy()
    for box in boxes:
        x1, y1, x2, y2 = (int(v) for v in box)
        band = (y2 - y1) * 15 // 100 + 1
        leak[y1 : y1 + band, x1:x2] = frame[y1 : y1 + band, x1:x2]
        leak[y2 - band : y2, x1:x2] = frame[y2 - band : y2, x1:x2]
    assert all(verify.detail_correlation(frame, leak, box) < verify.DETAIL_THRESHOLD for box in boxes)  # inner: clean
    assert not any(verify.face_hidden(frame, leak, box) for box in boxes)


def test_nothing_checked_is_never_a_pass(scene: tuple[Image, np.ndarray, Image]) -> None:
    frame, _, blurred = scene
    empty = verify.face_recall([(frame, blurred, np.zeros((0, 4), np.float32))])
    assert empty.faces == 0 and math.isnan(empty.recall) and empty.recall != 1.0
    tiny = verify.face_recall([(frame, blurred, np.array([[10, 10, 30, 30]], np.float32))], min_face=40)
    assert tiny.faces == 0 and tiny.recall != 1.0
