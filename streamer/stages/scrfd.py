"""SCRFD face detector from an insightface pack (``buffalo_l/det_10g.onnx``), optional.

insightface's packs are non-commercial and cannot be downloaded here: the
model is loaded from ``model`` (a file or a pack folder) or from
``~/.insightface/models``; when it is missing the error says where to put it.
Same ``detect(image) -> FaceDetections`` interface as CenterFace, with the
same 5 landmarks (eye, eye, nose, mouth-left, mouth-right).

The model: input ``[1,3,S,S]`` RGB ``(x - 127.5) / 128``, the image
letterboxed into the top-left corner of a black square; 9 outputs by position: scores, box
distances and landmark offsets for strides 8, 16 and 32, two anchors per cell.
"""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np

import engines
from streamer.core.boxes import nms
from streamer.core.errors import ModelError
from streamer.core.types import FaceDetections, FloatArray, Image
from streamer.stages.packs import find_pack_model

log = logging.getLogger(__name__)

SCRFD_FILES = ("det_10g.onnx", "det_2.5g.onnx", "det_500m.onnx", "scrfd_10g_bnkps.onnx", "scrfd_2.5g_bnkps.onnx")
STRIDES = (8, 16, 32)
ANCHORS = 2


def find_scrfd_model(location: str | Path | None) -> Path:
    """The SCRFD ONNX at ``location`` (a file or a folder with packs) or in insightface's models folder."""
    return find_pack_model(location, SCRFD_FILES, "SCRFD detector", "set detector.model to the .onnx path or pack folder")


class ScrfdDetector:
    """SCRFD with 5 landmarks through :func:`engines.create`."""

    def __init__(
        self,
        model: str | Path | None = None,
        engine: str = "onnxruntime",
        device: str = "cpu",
        threshold: float = 0.5,
        nms_iou: float = 0.4,
        size: int = 640,
        threads: int = 0,
    ) -> None:
        path = find_scrfd_model(model)
        self.engine = engines.create(engine, path, device=device, threads=threads)
        if len(self.engine.outputs) != 3 * len(STRIDES):
            raise ModelError(f"{path.name}: expected an SCRFD model with landmarks (9 outputs), got {len(self.engine.outputs)}")
        shape = self.engine.inputs[0].shape
        self.size = int(shape[2]) if isinstance(shape[2], int) else size
        self._input = self.engine.inputs[0].name
        self._outputs = [o.name for o in self.engine.outputs]
        self.threshold, self.nms_iou = threshold, nms_iou
        log.info("SCRFD detector %s at %d px", path, self.size)

    def detect(self, image: Image) -> FaceDetections:
        blob, scale = self._letterbox(image)
        out = self.engine.run({self._input: blob})
        parts = [self._decode(i, stride, [out[n] for n in self._outputs]) for i, stride in enumerate(STRIDES)]
        boxes = np.concatenate([p[0] for p in parts])
        scores = np.concatenate([p[1] for p in parts])
        landmarks = np.concatenate([p[2] for p in parts])
        keep = nms(boxes, scores, self.nms_iou)
        h, w = image.shape[:2]
        boxes = boxes[keep] / scale
        boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, w)
        boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, h)
        return FaceDetections(boxes, scores[keep], landmarks[keep] / scale)

    def detect_batch(self, images: list[Image]) -> list[FaceDetections]:
        """One result per frame (SCRFD packs are exported for batch 1)."""
        return [self.detect(image) for image in images]

    def _letterbox(self, image: Image) -> tuple[np.ndarray, float]:
        """The image resized into the top-left of a black square, as the model was trained; and its scale."""
        h, w = image.shape[:2]
        if h > w:
            rh, rw = self.size, max(1, int(self.size * w / h))
        else:
            rw, rh = self.size, max(1, int(self.size * h / w))
        resized = cv2.resize(image, (rw, rh), interpolation=cv2.INTER_LINEAR)
        blob = np.full((1, 3, self.size, self.size), -127.5 / 128.0, np.float32)
        blob[0, :, :rh, :rw] = (resized.transpose(2, 0, 1)[::-1].astype(np.float32) - 127.5) / 128.0
        return blob, rh / h

    def _decode(self, i: int, stride: int, out: list[np.ndarray]) -> tuple[FloatArray, FloatArray, FloatArray]:
        scores = out[i].reshape(-1)
        distances = out[i + len(STRIDES)].reshape(-1, 4) * stride
        offsets = out[i + 2 * len(STRIDES)].reshape(-1, 5, 2) * stride
        cells = self.size // stride
        ys, xs = np.mgrid[:cells, :cells]
        centres = np.repeat(np.stack([xs.ravel(), ys.ravel()], axis=1) * stride, ANCHORS, axis=0).astype(np.float32)
        if len(centres) != len(scores):
            raise ModelError(f"SCRFD output of stride {stride} has {len(scores)} anchors, expected {len(centres)} at {self.size} px")
        keep = scores >= self.threshold
        c = centres[keep]
        d = distances[keep]
        boxes = np.concatenate([c - d[:, :2], c + d[:, 2:]], axis=1).astype(np.float32)
        landmarks = (c[:, None, :] + offsets[keep]).astype(np.float32)
        return boxes, scores[keep].astype(np.float32), landmarks
