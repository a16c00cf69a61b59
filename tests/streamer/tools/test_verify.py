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


def _strips_at_the_left_edge() -> list[tuple[Image, np.ndarray, Image]]:
    """A 56 px face only 25 % inside the left frame edge (a 14 px strip), six frames, each with the
    frame the default anonymizer makes of it from a detector box cut by the edge (6 px wider than
    the strip, as CenterFace's boxes there come out)."""
    from streamer.tools.stress import SEGMENTS, render, segment_specs

    anonymizer = create_anonymizer(AnonymizerConfig())
    out = []
    for frame, gt in render(segment_specs(640, 480, 6)[SEGMENTS.index("edges")]):
        box = gt[0]
        assert box[0] == 0 and box[2] - box[0] < 16
        detected = (box + np.array([0, 1, 6, 2], np.float32))[None]
        out.append((frame, box, anonymizer.apply(frame.copy(), FaceDetections(detected, np.ones(1)))))
    return out


def test_a_blurred_strip_at_the_frame_edge_is_hidden() -> None:
    """The inner region's band-pass is filtered on the whole face box: filtered on the bare 10 px wide crop, the
    crop's own borders made up most of its "detail" and the blurred strip read as a leak on 5 of
    these 6 frames (correlation 0.36-0.42, with no detail amplitude left)."""
    for frame, box, blurred in _strips_at_the_left_edge():
        assert verify.face_hidden(frame, blurred, box)
        assert verify.detail_kept(frame, blurred, box) < 0.1


def test_an_untouched_strip_at_the_frame_edge_is_a_leak() -> None:
    for frame, box, _ in _strips_at_the_left_edge():
        assert not verify.face_hidden(frame, frame.copy(), box)
        assert verify.detail_correlation(frame, frame, box) > 0.99


@pytest.mark.parametrize(("share", "hidden"), [(0.02, True), (0.15, False), (0.5, False)])
def test_a_correlated_residual_is_a_leak_only_with_real_amplitude(
    scene: tuple[Image, np.ndarray, Image], share: float, hidden: bool
) -> None:
    """The blurred faces plus ``share`` of the original's detail: perfectly correlated with it, so
    only the amplitude tells. 2 % (what H.264's noise leaves correlated on a blurred 20 px face,
    correlation up to 0.5) is no face; 15 % is a faint but real one."""
    frame, boxes, blurred = scene
    residual = np.clip(blurred + share * (frame.astype(np.float32) - blurred), 0, 255).astype(np.uint8)
    for box in boxes:
        assert verify.detail_correlation(frame, residual, box) > verify.DETAIL_THRESHOLD
        assert verify.face_hidden(frame, residual, box) == hidden
