"""Box geometry every layer shares: IoU and non-maximum suppression on [N, 4] xyxy arrays."""

from __future__ import annotations

import numpy as np

from streamer.core.types import FloatArray


def nms(boxes: FloatArray, scores: FloatArray, iou_threshold: float) -> np.ndarray:
    """Greedy non-maximum suppression; returns kept indices, best score first."""
    order = np.argsort(-scores)
    keep: list[int] = []
    while order.size:
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        order = rest[iou_one_to_many(boxes[i], boxes[rest]) <= iou_threshold]
    return np.array(keep, dtype=np.int64)


def iou_one_to_many(box: FloatArray, boxes: FloatArray) -> FloatArray:
    return iou_matrix(box[None], boxes)[0]


def iou_matrix(a: FloatArray, b: FloatArray) -> FloatArray:
    """IoU of every box in ``a`` [N,4] with every box in ``b`` [M,4] -> [N,M]."""
    tl = np.maximum(a[:, None, :2], b[None, :, :2])
    br = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(br - tl, 0, None), axis=2)
    area_a = np.prod(np.clip(a[:, 2:] - a[:, :2], 0, None), axis=1)
    area_b = np.prod(np.clip(b[:, 2:] - b[:, :2], 0, None), axis=1)
    union = area_a[:, None] + area_b[None, :] - inter
    return (inter / np.maximum(union, 1e-6)).astype(np.float32)


def iou(a: FloatArray, b: FloatArray) -> float:
    """IoU of two boxes [4]."""
    return float(iou_matrix(a[None], b[None])[0, 0])
