"""Utility metrics: is the anonymized face still a face, in the same place and pose?

- detection rate: fraction of original faces the detector still finds in the
  anonymized image (a detection overlapping the original box by IoU >= 0.4);
- landmark displacement (NME): mean distance between the 5 landmarks found on
  the anonymized face and those of the original, divided by the original's
  inter-ocular distance, over the faces still detected.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from streamer.core.boxes import iou_matrix
from streamer.core.types import FaceDetections, FloatArray

MATCH_IOU = 0.4


@dataclass(frozen=True)
class Redetection:
    """Whether each original face was found again, and its landmark error (NaN if not found)."""

    found: np.ndarray  # bool [N]
    nme: FloatArray  # [N]


def match_faces(boxes: FloatArray, dets: FaceDetections, min_iou: float = MATCH_IOU) -> np.ndarray:
    """Index of the detection matching each box (best IoU >= ``min_iou``), -1 when none."""
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    if not len(dets) or not len(boxes):
        return np.full(len(boxes), -1, np.int64)
    ious = iou_matrix(boxes, dets.xyxy)
    best = np.argmax(ious, axis=1)
    return np.where(ious[np.arange(len(boxes)), best] >= min_iou, best, -1).astype(np.int64)


def landmark_nme(reference: FloatArray, found: FloatArray) -> float:
    """Mean landmark distance normalized by the reference's inter-ocular distance."""
    ref = np.asarray(reference, np.float64).reshape(5, 2)
    got = np.asarray(found, np.float64).reshape(5, 2)
    iod = float(np.linalg.norm(ref[1] - ref[0]))
    return float(np.linalg.norm(ref - got, axis=1).mean() / max(iod, 1e-6))


def redetect(boxes: FloatArray, landmarks: FloatArray, dets: FaceDetections) -> Redetection:
    """Match original faces (boxes [N,4], landmarks [N,5,2]) with detections on the anonymized image."""
    match = match_faces(boxes, dets)
    nme = np.full(len(match), np.nan, np.float32)
    if dets.landmarks is not None:
        for i, j in enumerate(match):
            if j >= 0:
                nme[i] = landmark_nme(landmarks[i], dets.landmarks[j])
    return Redetection(match >= 0, nme)
