"""Face detection stage: ``Detector.detect(frame) -> FaceDetections``."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

import engines
from streamer.config import DETECTORS, DetectorConfig
from streamer.errors import ConfigError, ModelError
from streamer.types import FaceDetections, FloatArray, Image

log = logging.getLogger(__name__)


class Detector(Protocol):
    def detect(self, image: Image) -> FaceDetections: ...


class BatchDetector(Detector, Protocol):
    """A detector that can also take several frames in one call (one result per frame)."""

    def detect_batch(self, images: list[Image]) -> list[FaceDetections]: ...


class CenterFaceDetector:
    """CenterFace (MIT) through an :class:`engines.Engine`.

    Input: RGB 0..255 float32 [1,3,H,W], H and W multiples of 32. Outputs, by
    position: heatmap [1,1,h,w], log-scale [1,2,h,w], offset [1,2,h,w],
    landmarks [1,10,h,w] at stride 4.
    """

    STRIDE = 4

    def __init__(
        self,
        model: str | Path | None = None,
        engine: str = "onnxruntime",
        device: str = "cpu",
        threshold: float = 0.25,
        nms_iou: float = 0.3,
        max_side: int = 960,
        threads: int = 0,
    ) -> None:
        path = Path(model) if model else engines.builtin_model("centerface")
        self.engine = engines.create(engine, path, device=device, threads=threads)
        if len(self.engine.outputs) != 4 or len(self.engine.inputs) != 1:
            raise ModelError(f"{path.name} is not a CenterFace model (want 1 input, 4 outputs)")
        self._input = self.engine.inputs[0].name
        self._outputs = [o.name for o in self.engine.outputs]
        self.threshold = threshold
        self.nms_iou = nms_iou
        self.max_side = max_side

    def detect(self, image: Image) -> FaceDetections:
        return self.detect_batch([image])[0]

    def detect_batch(self, images: list[Image]) -> list[FaceDetections]:
        """Detect faces in several frames; frames whose input blobs have one shape share a run."""
        prepared = [self._preprocess(image) for image in images]
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, (blob, _scale) in enumerate(prepared):
            groups.setdefault(blob.shape, []).append(i)
        results: dict[int, FaceDetections] = {}
        for shape, members in groups.items():
            batch = np.concatenate([prepared[i][0] for i in members]) if len(members) > 1 else prepared[members[0]][0]
            out = self.engine.run({self._input: batch})
            for row, i in enumerate(members):
                heads = [out[name][row] for name in self._outputs]
                results[i] = self._postprocess(heads, shape[2:], prepared[i][1], images[i].shape)
        return [results[i] for i in range(len(images))]

    def _postprocess(
        self, heads: list[np.ndarray], hw: tuple[int, ...], scale: float, shape: tuple[int, ...]
    ) -> FaceDetections:
        heat, size, offset, lms = heads
        boxes, scores, landmarks = self._decode(heat[0], size, offset, lms, hw)
        keep = nms(boxes, scores, self.nms_iou)
        h, w = shape[:2]
        boxes = boxes[keep] / scale
        boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, w)
        boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, h)
        return FaceDetections(boxes, scores[keep], landmarks[keep] / scale)

    def _preprocess(self, image: Image) -> tuple[np.ndarray, float]:
        h, w = image.shape[:2]
        scale = min(1.0, self.max_side / max(h, w))
        rw, rh = max(32, round(w * scale)), max(32, round(h * scale))
        resized = cv2.resize(image, (rw, rh), interpolation=cv2.INTER_AREA) if scale != 1.0 else image
        pw, ph = -(-rw // 32) * 32, -(-rh // 32) * 32
        blob = np.zeros((1, 3, ph, pw), np.float32)
        # BGR -> RGB planes without an intermediate copy of the whole image
        blob[0, :, :rh, :rw] = resized.transpose(2, 0, 1)[::-1]
        return blob, rw / w

    def _decode(
        self, heat: np.ndarray, size: np.ndarray, offset: np.ndarray, lms: np.ndarray, hw: tuple[int, ...]
    ) -> tuple[FloatArray, FloatArray, FloatArray]:
        ys, xs = np.nonzero(heat > self.threshold)
        s = self.STRIDE
        bh = np.exp(size[0, ys, xs]) * s
        bw = np.exp(size[1, ys, xs]) * s
        cy = (ys + offset[0, ys, xs] + 0.5) * s
        cx = (xs + offset[1, ys, xs] + 0.5) * s
        x1 = np.maximum(0, cx - bw / 2)
        y1 = np.maximum(0, cy - bh / 2)
        boxes = np.stack([x1, y1, np.minimum(x1 + bw, hw[1]), np.minimum(y1 + bh, hw[0])], axis=1)
        lm = lms[:, ys, xs].T.reshape(-1, 5, 2)  # (dy, dx) pairs relative to box size
        landmarks = np.stack([lm[:, :, 1] * bw[:, None] + x1[:, None], lm[:, :, 0] * bh[:, None] + y1[:, None]], axis=2)
        return boxes.astype(np.float32), heat[ys, xs].astype(np.float32), landmarks.astype(np.float32)


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


def create_detector(cfg: DetectorConfig) -> BatchDetector:
    """Factory: the detector named by ``cfg.backend``."""
    if cfg.backend == "centerface":
        return CenterFaceDetector(cfg.model, cfg.engine, cfg.device, cfg.threshold, cfg.nms_iou, cfg.max_side, cfg.threads)
    raise ConfigError(f"detector.backend: '{cfg.backend}' is not valid (choices: {', '.join(DETECTORS)})")
