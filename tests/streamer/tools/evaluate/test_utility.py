"""Detection rate and landmark displacement on real faces."""

import numpy as np
import pytest

from streamer.core.config import AnonymizerConfig
from streamer.core.types import FaceDetections
from streamer.stages.anonymize import create_anonymizer
from streamer.tools.evaluate.faces import package_people
from streamer.tools.evaluate.utility import landmark_nme, match_faces, redetect


def test_landmark_nme_known_value() -> None:
    ref = np.array([[0, 0], [10, 0], [5, 5], [2, 8], [8, 8]], np.float32)
    assert landmark_nme(ref, ref) == 0.0
    assert landmark_nme(ref, ref + np.array([3, 4], np.float32)) == pytest.approx(0.5)  # 5 px / 10 px


def test_match_faces_by_iou() -> None:
    dets = FaceDetections(np.array([[0, 0, 10, 10], [50, 50, 70, 70]], np.float32), np.ones(2))
    boxes = np.array([[51, 51, 71, 71], [0, 0, 4, 4], [200, 200, 210, 210]], np.float32)
    assert match_faces(boxes, dets).tolist() == [1, -1, -1]


def test_unchanged_face_is_found_in_place_and_a_filled_one_is_not(detector) -> None:  # type: ignore[no-untyped-def]
    photo = package_people()[0].image
    dets = detector.detect(photo)
    assert dets.landmarks is not None
    same = redetect(dets.xyxy, dets.landmarks, detector.detect(photo))
    assert same.found.all() and float(np.nanmax(same.nme)) < 1e-6
    filled = create_anonymizer(AnonymizerConfig(method="solid")).apply(photo.copy(), dets)
    gone = redetect(dets.xyxy, dets.landmarks, detector.detect(filled))
    assert not gone.found.any() and np.isnan(gone.nme).all()
