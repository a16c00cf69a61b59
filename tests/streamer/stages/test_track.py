import numpy as np

from streamer.core.types import FaceDetections
from streamer.stages.track import SortTracker


def _det(*boxes: list[float]) -> FaceDetections:
    return FaceDetections(np.array(boxes, np.float32), np.full(len(boxes), 0.9), np.zeros((len(boxes), 5, 2)))


def test_ids_are_stable_for_moving_faces() -> None:
    tracker = SortTracker()
    ids = []
    for i in range(20):
        out = tracker.update(_det([10 + 5 * i, 10, 60 + 5 * i, 70], [300 - 4 * i, 200, 350 - 4 * i, 260]), i)
        ids.append(tuple(out.track_id.tolist()))
    assert len(set(ids)) == 1


def test_missed_face_coasts_at_predicted_box_then_expires() -> None:
    tracker = SortTracker(max_coast=5)
    for i in range(10):
        tracker.update(_det([100 + 10 * i, 100, 150 + 10 * i, 160]), i)
    coast = tracker.update(FaceDetections.empty(), 10)
    assert len(coast) == 1 and coast.coasting.all()
    cx = (coast.xyxy[0, 0] + coast.xyxy[0, 2]) / 2
    assert abs(cx - (125 + 10 * 10)) < 6  # kept moving with the face
    for i in range(11, 15):
        out = tracker.update(FaceDetections.empty(), i)
    assert len(out) == 1
    assert len(tracker.update(FaceDetections.empty(), 15)) == 0


def test_coasting_box_grows_to_cover_uncertainty() -> None:
    tracker = SortTracker(max_coast=10, box_grow_per_frame=0.05)
    tracker.update(_det([100, 100, 150, 160]), 0)
    w0 = 50
    out = tracker.update(FaceDetections.empty(), 4)
    assert out.xyxy[0, 2] - out.xyxy[0, 0] > w0 * 1.15


def test_fast_jump_keeps_identity_via_centre_distance() -> None:
    tracker = SortTracker()
    first = tracker.update(_det([100, 100, 150, 160]), 0)
    second = tracker.update(_det([140, 100, 190, 160]), 1)  # no IoU-rich overlap
    assert first.track_id.tolist() == second.track_id.tolist()


def test_predict_between_detections_and_reset() -> None:
    tracker = SortTracker()
    tracker.update(_det([0, 0, 10, 10]), 0)
    assert len(tracker.predict(1)) == 1
    tracker.reset()
    assert len(tracker.predict(2)) == 0


def test_a_detected_face_is_emitted_at_its_detection_not_the_lagging_estimate() -> None:
    """A loaded machine drops frames between processed ones: a new track's face jumps 30 px per processed
    frame, and the smoothed estimate lags behind it. The emitted box and landmarks are the detection's."""
    tracker = SortTracker()
    for k, frame in enumerate([0, 3, 6, 9]):  # frames 1-2, 4-5, 7-8 were dropped
        x = 100 + 30 * k
        box = [x, 100, x + 40, 150]
        landmarks = np.array([[[x + 12, 118], [x + 28, 118], [x + 20, 128], [x + 14, 138], [x + 26, 138]]], np.float32)
        out = tracker.update(FaceDetections(np.array([box], np.float32), np.array([0.9]), landmarks), frame)
        assert out.track_id is not None and out.track_id.tolist() == [1]
        np.testing.assert_allclose(out.xyxy[0], box, atol=1e-3)
        assert out.landmarks is not None
        np.testing.assert_allclose(out.landmarks[0], landmarks[0], atol=1e-3)
