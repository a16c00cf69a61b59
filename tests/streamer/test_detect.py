import numpy as np

from streamer.detect import CenterFaceDetector, iou_matrix, nms
from streamer.types import Image


def test_finds_every_real_face_in_the_demo(detector: CenterFaceDetector, demo_frames: list[tuple[Image, np.ndarray]]) -> None:
    found = total = 0
    for frame, gt in demo_frames[::10]:
        dets = detector.detect(frame)
        total += len(gt)
        if len(dets) and len(gt):
            found += int((iou_matrix(gt, dets.xyxy).max(axis=1) > 0.4).sum())
    assert found == total


def test_landmarks_lie_inside_their_boxes(detector: CenterFaceDetector, demo_frames: list[tuple[Image, np.ndarray]]) -> None:
    dets = detector.detect(demo_frames[0][0])
    assert dets.landmarks is not None and len(dets) >= 1
    for box, lm in zip(dets.xyxy, dets.landmarks):
        assert (lm[:, 0] >= box[0]).all() and (lm[:, 0] <= box[2]).all()
        assert lm[0, 0] < lm[1, 0]  # left eye left of right eye
        assert lm[2, 1] < lm[3, 1]  # nose above the mouth


def test_no_faces_in_a_blank_frame(detector: CenterFaceDetector) -> None:
    assert len(detector.detect(np.full((480, 640, 3), 127, np.uint8))) == 0


def test_odd_sizes_and_large_frames(detector: CenterFaceDetector, demo_frames: list[tuple[Image, np.ndarray]]) -> None:
    frame, gt = demo_frames[0]
    big = np.kron(frame, np.ones((2, 2, 1), np.uint8))[:, :1271]  # 960x1271: downscaled, padded to /32
    dets = detector.detect(np.ascontiguousarray(big))
    assert (iou_matrix(gt * 2, dets.xyxy).max(axis=1) > 0.4).all()


def test_nms_keeps_best_of_overlapping_boxes() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 30]], np.float32)
    keep = nms(boxes, np.array([0.5, 0.9, 0.7], np.float32), 0.3)
    assert keep.tolist() == [1, 2]
