"""Face detection stage: ``Detector.detect(frame) -> FaceDetections``."""

from __future__ import annotations

import importlib.util
import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, Protocol

import cv2
import numpy as np

import engines
from streamer.core.boxes import iou_matrix, nms
from streamer.core.config import (
    DETECTOR_ENGINES,
    DETECTOR_PRECISIONS,
    DETECTORS,
    PAD_MODES,
    DetectorConfig,
)
from streamer.core.errors import ConfigError, ModelError
from streamer.core.types import FaceDetections, FloatArray, Image

log = logging.getLogger(__name__)


class Detector(Protocol):
    def detect(self, image: Image) -> FaceDetections: ...


class BatchDetector(Detector, Protocol):
    """A detector that can also take several frames in one call (one result per frame)."""

    def detect_batch(self, images: list[Image]) -> list[FaceDetections]: ...


class Layout(NamedTuple):
    """How a frame becomes the network input: shrunk by ``scale`` to ``width`` x ``height``,
    padded by ``pad`` px on every side, in a blob of ``shape`` (sides rounded up to 32)."""

    scale: float
    width: int
    height: int
    pad: int
    shape: tuple[int, int, int, int]


@dataclass(frozen=True)
class Prepared:
    """A network input and how to map its pixels back: ``frame = (blob - pad) / scale``."""

    blob: np.ndarray
    scale: float
    pad: int


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
        max_side: int = 1920,
        threads: int = 0,
        edge_pad: float = 0.0,
        pad_mode: str = "reflect",
        edge_threshold: float | None = None,
        recheck_threshold: float = 0.0,
    ) -> None:
        if pad_mode not in PAD_MODES:
            raise ConfigError(f"detector.pad_mode: '{pad_mode}' is not valid (choices: {', '.join(PAD_MODES)})")
        path = Path(model) if model else engines.builtin_model("centerface")
        self.engine = engines.create(engine, path, device=device, threads=threads)
        if len(self.engine.outputs) != 4 or len(self.engine.inputs) != 1:
            raise ModelError(f"{path.name} is not a CenterFace model (want 1 input, 4 outputs)")
        self._input = self.engine.inputs[0].name
        self._outputs = [o.name for o in self.engine.outputs]
        self.threshold = threshold
        self.nms_iou = nms_iou
        self.max_side = max_side
        self.edge_pad = edge_pad
        self.pad_mode = pad_mode
        self.edge_threshold = threshold if edge_threshold is None else min(edge_threshold, threshold)
        self.recheck_threshold = recheck_threshold if 0 < recheck_threshold < threshold else 0.0
        self.model_path = path
        self._local = threading.local()  # per calling thread: the input blobs, reused frame after frame

    def warm(self, height: int, width: int) -> threading.Thread | None:
        """Start compiling the engine for ``height`` x ``width`` frames and the region crops, where
        the engine can (OpenVINO's static compiles), while the caller opens its streams; the
        compiling thread, or None."""
        warm = getattr(self.engine, "warm", None)
        if warm is None:
            return None
        thread: threading.Thread = warm([self._layout(height, width).shape, (1, 3, REGION_INPUT, REGION_INPUT)])
        return thread

    def close(self) -> None:
        """Let the engine finish what :meth:`warm` started (``fawn run`` closes its detector at the end)."""
        close = getattr(self.engine, "close", None)
        if close is not None:
            close()

    def _layout(self, height: int, width: int) -> Layout:
        """How a ``height`` x ``width`` frame becomes the network input (:class:`Layout`)."""
        scale = min(1.0, self.max_side / max(height, width))
        rw, rh = max(32, round(width * scale)), max(32, round(height * scale))
        pad = round(self.edge_pad * min(rw, rh))
        return Layout(scale, rw, rh, pad, (1, 3, -(-(rh + 2 * pad) // 32) * 32, -(-(rw + 2 * pad) // 32) * 32))

    def detect(self, image: Image) -> FaceDetections:
        return self.detect_batch([image])[0]

    def detect_batch(self, images: list[Image]) -> list[FaceDetections]:
        """Detect faces in several frames; frames whose input blobs have one shape share a run."""
        prepared = [self._preprocess(image, slot) for slot, image in enumerate(images)]
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, p in enumerate(prepared):
            groups.setdefault(p.blob.shape, []).append(i)
        results: dict[int, FaceDetections] = {}
        for shape, members in groups.items():
            batch = np.concatenate([prepared[i].blob for i in members]) if len(members) > 1 else prepared[members[0]].blob
            out = self.engine.run({self._input: batch})
            for row, i in enumerate(members):
                heads = [out[name][row] for name in self._outputs]
                found, passed = self._postprocess(heads, shape[2:], prepared[i], images[i].shape)
                results[i] = self._recheck(images[i], found, passed)
        return [results[i] for i in range(len(images))]

    def _recheck(self, image: Image, found: FaceDetections, passed: np.ndarray) -> FaceDetections:
        """The detections that passed, plus the candidates (``recheck_threshold`` <= score, not
        passed) on which a closer look (:meth:`detect_regions`) finds a face at ``threshold``."""
        candidates = np.flatnonzero(~passed & (found.score >= self.recheck_threshold))
        if self.recheck_threshold and len(candidates):
            candidates = candidates[np.argsort(-found.score[candidates])][:RECHECK_MAX]
            looked = self.detect_regions(image, found.xyxy[candidates])
            if len(looked):
                overlap = iou_matrix(found.xyxy[candidates], looked.xyxy)
                confirmed = overlap.max(axis=1) >= 0.3
                rows, best = candidates[confirmed], looked.xyxy[overlap[confirmed].argmax(axis=1)]
                passed[rows] = True
                # the closer look measures the face better (a weak, blurred or cut face's box came out
                # short): the row covers both boxes
                found.xyxy[rows] = np.concatenate([np.minimum(found.xyxy[rows, :2], best[:, :2]),
                                                   np.maximum(found.xyxy[rows, 2:], best[:, 2:])], axis=1)
        return found[passed]

    def detect_regions(self, image: Image, boxes: FloatArray, threshold: float | None = None) -> FaceDetections:
        """A second look at small regions: each box [N,4] (a track the frame's pass lost) is cut out
        with its surroundings, upscaled so the face is ~REGION_FACE px to the network, and detected
        again; faces found there, in frame pixels. Each crop is its own run of one fixed input shape
        (a static compile on OpenVINO: half the time of a dynamic batch of crops, docs/benchmarks.md §9)."""
        if len(boxes) == 0:
            return FaceDetections.empty()
        h, w = image.shape[:2]
        side = REGION_INPUT
        border = cv2.BORDER_REFLECT_101 if self.pad_mode == "reflect" else cv2.BORDER_CONSTANT  # as the frame pass pads
        blobs, origins = [], []
        for x1, y1, x2, y2 in boxes:
            face = max(x2 - x1, y2 - y1, 1.0)
            window = max(REGION_CONTEXT * face, 16.0)
            cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
            # the window's pixels -> the network input: face ~ side / REGION_CONTEXT px
            m = np.array([[side / window, 0, side / 2 - cx * side / window],
                          [0, side / window, side / 2 - cy * side / window]], np.float32)
            crop = cv2.warpAffine(image, m, (side, side), flags=cv2.INTER_LINEAR, borderMode=border)
            blobs.append(crop.transpose(2, 0, 1)[::-1][None].astype(np.float32))
            origins.append((cx - window / 2, cy - window / 2, window / side))
        thr = self.threshold if threshold is None else threshold
        found = []
        for blob, (ox, oy, k) in zip(blobs, origins):
            out = self.engine.run({self._input: blob})
            heat, size, offset, lms = (out[name][0] for name in self._outputs)
            b, s, lm = self._decode(heat[0], size, offset, lms, (side, side))
            keep = nms(b, s, self.nms_iou)
            ok = keep[s[keep] >= thr]
            b = _grown(b[ok] * k + [ox, oy, ox, oy], REGION_GROW)
            b[:, [0, 2]] = b[:, [0, 2]].clip(0, w)
            b[:, [1, 3]] = b[:, [1, 3]].clip(0, h)
            lm = lm[ok] * k + [ox, oy]
            found.append(FaceDetections(b.astype(np.float32), s[ok], lm.astype(np.float32)))
        return _merge(found, self.nms_iou)

    def _postprocess(
        self, heads: list[np.ndarray], hw: tuple[int, ...], prepared: Prepared, shape: tuple[int, ...]
    ) -> tuple[FaceDetections, np.ndarray]:
        """The frame's detections down to the lowest score of interest, and which of them pass."""
        heat, size, offset, lms = heads
        boxes, scores, landmarks = self._decode(heat[0], size, offset, lms, hw)
        keep = nms(boxes, scores, self.nms_iou)
        h, w = shape[:2]
        raw = (boxes[keep] - prepared.pad) / prepared.scale
        boxes = raw.copy()
        boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, w)
        boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, h)
        scores = scores[keep]
        # a box wholly inside the padding (a reflection of a face near the edge) is no face of the frame
        inside = ((boxes[:, 2] - boxes[:, 0]) >= 2) & ((boxes[:, 3] - boxes[:, 1]) >= 2)
        # a face cut by the frame edge scores lower: it passes with edge_threshold
        cut = (raw[:, 0] < 0) | (raw[:, 1] < 0) | (raw[:, 2] > w) | (raw[:, 3] > h)
        passed = (scores >= self.threshold) | (cut & (scores >= self.edge_threshold))
        # mirrored padding makes any small texture across the edge symmetric, and small symmetric
        # blobs look like faces: a small box cut by the edge needs SMALL_CUT_SCORE (and no recheck)
        if self.pad_mode == "reflect":
            small = np.maximum(raw[:, 2] - raw[:, 0], raw[:, 3] - raw[:, 1]) * prepared.scale < SMALL_CUT_PX
            inside &= ~(cut & small & (scores < SMALL_CUT_SCORE))
        landmarks = (landmarks[keep] - prepared.pad) / prepared.scale
        return FaceDetections(boxes[inside], scores[inside], landmarks[inside]), passed[inside]

    def _preprocess(self, image: Image, slot: int = 0) -> Prepared:
        """The network input of ``image``, written into this thread's blob for its size and batch
        ``slot`` (allocated once: a fresh zeroed 5 MB blob a frame cost ~0.3 ms more at 640x480);
        the padding and rounding border, never written, stays zero."""
        h, w = image.shape[:2]
        scale, rw, rh, pad, shape = self._layout(h, w)
        resized = cv2.resize(image, (rw, rh), interpolation=cv2.INTER_AREA) if scale != 1.0 else image
        if pad and self.pad_mode == "reflect":
            resized = cv2.copyMakeBorder(resized, pad, pad, pad, pad, cv2.BORDER_REFLECT_101)
            x0 = 0
        else:
            x0 = pad  # constant: the zeros of the blob are the border
        blob = self._blob((image.shape, slot), shape)
        y1, x1 = x0 + resized.shape[0], x0 + resized.shape[1]
        for plane, channel in enumerate(cv2.split(resized)[::-1]):  # BGR -> RGB planes
            blob[0, plane, x0:y1, x0:x1] = channel
        return Prepared(blob, rw / w, pad)

    def _blob(self, key: tuple[object, ...], shape: tuple[int, ...]) -> np.ndarray:
        blobs: dict[tuple[object, ...], np.ndarray] = getattr(self._local, "blobs", None) or {}
        self._local.blobs = blobs
        blob = blobs.get(key)
        if blob is None or blob.shape != shape:
            blob = blobs[key] = np.zeros(shape, np.float32)
        return blob

    def _decode(
        self, heat: np.ndarray, size: np.ndarray, offset: np.ndarray, lms: np.ndarray, hw: tuple[int, ...]
    ) -> tuple[FloatArray, FloatArray, FloatArray]:
        floor = min(self.edge_threshold, self.recheck_threshold or 1.0)  # the lowest score of interest
        ys, xs = np.nonzero(heat > floor)
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


REGION_INPUT = 128  # network input side of a region pass (px)
REGION_CONTEXT = 3.0  # the region is this many times the face box
REGION_GROW = 1.1  # boxes found on an upscaled crop come out ~10 % smaller than the frame pass's: grown back
SMALL_CUT_PX = 24  # network px: a box cut by the frame edge this small ...
SMALL_CUT_SCORE = 0.3  # ... needs this score with mirrored padding (docs/benchmarks.md §9)
RECHECK_MAX = 8  # candidates below threshold given a closer look per frame (the highest scores)


def _grown(boxes: FloatArray, factor: float) -> FloatArray:
    centre, half = (boxes[:, :2] + boxes[:, 2:]) / 2, (boxes[:, 2:] - boxes[:, :2]) * factor / 2
    return np.concatenate([centre - half, centre + half], axis=1)


def _merge(parts: list[FaceDetections], iou: float) -> FaceDetections:
    """Detections from overlapping regions as one set (NMS across regions)."""
    boxes = np.concatenate([p.xyxy for p in parts])
    scores = np.concatenate([p.score for p in parts])
    lms = np.concatenate([p.landmarks for p in parts if p.landmarks is not None]).reshape(-1, 5, 2)
    keep = nms(boxes, scores, iou)
    return FaceDetections(boxes[keep], scores[keep], lms[keep])


def second_look(detector: Detector, image: Image, found: FaceDetections, tracks: FaceDetections,
                max_face: float) -> FaceDetections:
    """``found`` plus what a region pass finds around tracks this frame's pass lost.

    A track (its predicted box, ``tracks``) that no detection of ``found`` overlaps and
    whose face is at most ``max_face`` px (in the network's pixels) is where a small face
    most likely still is: CenterFace finds 18 px faces only now and then at 1080p, and a
    coasting box drifts off a face it lost. Upscaled, the face is found again, so its
    track keeps following it. Detectors without ``detect_regions`` are left as they are.
    """
    regions = getattr(detector, "detect_regions", None)
    if regions is None or max_face <= 0 or len(tracks) == 0:
        return found
    boxes = tracks.xyxy
    sides = (boxes[:, 2:] - boxes[:, :2]).max(axis=1) * _network_scale(detector, image)
    lost = sides <= max_face
    if len(found):
        lost &= iou_matrix(boxes, found.xyxy).max(axis=1) < 0.1
    if not lost.any():
        return found
    extra: FaceDetections = regions(image, boxes[lost])
    if len(extra) and len(found):  # a face the frame pass has already
        extra = extra[iou_matrix(extra.xyxy, found.xyxy).max(axis=1) < 0.3]
    return FaceDetections.concat([found, extra]) if len(extra) else found


def _network_scale(detector: object, image: Image) -> float:
    max_side = getattr(detector, "max_side", None)
    return min(1.0, max_side / max(image.shape[:2])) if max_side else 1.0


def resolve_engine(cfg: DetectorConfig) -> tuple[str, Path | None]:
    """The engine and model file ``cfg`` means once ``auto`` is decided (see :class:`DetectorConfig`)."""
    if cfg.engine not in DETECTOR_ENGINES:
        raise ConfigError(f"detector.engine: '{cfg.engine}' is not valid (choices: {', '.join(DETECTOR_ENGINES)})")
    if cfg.precision not in DETECTOR_PRECISIONS:
        raise ConfigError(f"detector.precision: '{cfg.precision}' is not valid (choices: {', '.join(DETECTOR_PRECISIONS)})")
    engine = cfg.engine
    if engine == "auto":
        engine = "openvino" if cfg.device == "cpu" and importlib.util.find_spec("openvino") else "onnxruntime"
    if cfg.model:
        return engine, Path(cfg.model)
    precision = cfg.precision if cfg.precision != "auto" else ("int8" if cfg.device == "cpu" else "fp32")
    return engine, engines.builtin_model("centerface-int8" if precision == "int8" else "centerface")


def create_detector(cfg: DetectorConfig) -> BatchDetector:
    """Factory: the detector named by ``cfg.backend``."""
    if cfg.backend == "centerface":
        engine, model = resolve_engine(cfg)
        detector = CenterFaceDetector(model, engine, cfg.device, cfg.threshold, cfg.nms_iou, cfg.max_side, cfg.threads,
                                      cfg.edge_pad, cfg.pad_mode, cfg.edge_threshold, cfg.recheck_threshold)
        log.info("detector: CenterFace %s on %s (%s)", detector.model_path.name, engine, ", ".join(detector.engine.providers))
        return detector
    if cfg.backend == "scrfd":  # insightface's detector (buffalo_l det_10g.onnx): detector.model = pack or file
        from streamer.stages.scrfd import ScrfdDetector

        engine = "onnxruntime" if cfg.engine in ("auto", "openvino") else cfg.engine
        return ScrfdDetector(cfg.model, engine, cfg.device, cfg.threshold, cfg.nms_iou, threads=cfg.threads)
    raise ConfigError(f"detector.backend: '{cfg.backend}' is not valid (choices: {', '.join(DETECTORS)})")
