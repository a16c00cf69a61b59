"""License plates: a YOLO-family ONNX detector, its own tracker, always anonymized.

:class:`YoloDetector` runs any model that follows the contract in
:mod:`engines.yolo` (letterboxed RGB input, v8 / v5 / end-to-end output) and
returns :class:`~streamer.core.types.FaceDetections` rows of ``kind == "plate"``.
:class:`PlateStage` is what the frame processor calls after the face stages: it
detects (every ``every_n`` frames), tracks with its own tracker (a plate never
matches a face track), and anonymizes every plate row. Identity never applies.
Fail closed as faces do: a detector error or timeout blurs the whole frame in
both ``on_error`` modes (a plate that appeared during the failure has no track;
the known plate tracks are anonymized first); a plate the detector misses keeps
being anonymized while its track coasts.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

import engines
from engines import yolo
from streamer.core.config import AnonymizerConfig, PipelineConfig, PlatesConfig
from streamer.core.errors import FawnError, ModelError
from streamer.core.stats import RunStats
from streamer.core.types import FaceDetections, Frame, Image
from streamer.stages.anonymize import Anonymizer, create_anonymizer
from streamer.stages.anonymize.filters import blur_frame
from streamer.stages.batching import BatchingDetector
from streamer.stages.detect import Detector
from streamer.stages.track import SortTracker, Tracker

log = logging.getLogger(__name__)

PLATE_TRACK_ID_BASE = 1_000_000_000  # plate track ids start above this (face track ids stay below)
STRIDE = 32


class YoloDetector:
    """A YOLO-family ONNX detector behind :func:`engines.create`; rows are ``kind="plate"``."""

    def __init__(
        self,
        model: str | Path,
        engine: str = "onnxruntime",
        device: str = "cpu",
        threads: int = 0,
        threshold: float = 0.05,
        nms_iou: float = 0.5,
        layout: str = "auto",
        imgsz: int = 640,
        classes: tuple[int, ...] = (),
        tiles: tuple[int, int] = (1, 1),
        tile_overlap: float = 0.2,
        whole_frame: bool = False,
    ) -> None:
        path = Path(model)
        self.engine = engines.create(engine, path, device=device, threads=threads)
        if len(self.engine.inputs) != 1 or not self.engine.outputs:
            raise ModelError(f"{path.name} is not a YOLO-style detector (want 1 input, got {len(self.engine.inputs)})")
        spec = self.engine.inputs[0]
        if len(spec.shape) != 4:
            raise ModelError(f"{path.name}: input '{spec.name}' must be [1, 3, H, W], got {list(spec.shape)}")
        h, w = spec.shape[2], spec.shape[3]
        self._fixed = (h, w) if isinstance(h, int) and isinstance(w, int) and h > 0 and w > 0 else None
        self._input, self._dtype = spec.name, spec.dtype
        self._output = self.engine.outputs[0].name
        self._nm = _mask_channels(self.engine.outputs)
        self.threshold, self.nms_iou, self.layout, self.imgsz = threshold, nms_iou, layout, imgsz
        self.classes = frozenset(classes)
        self.tiles, self.tile_overlap, self.whole_frame = tiles, tile_overlap, whole_frame

    def crops(self, shape: tuple[int, ...]) -> list[tuple[int, int, int, int]]:
        """The crops the model runs on: the ``tiles`` grid, and the whole frame too when ``whole_frame``."""
        grid = tile_grid(shape, self.tiles, self.tile_overlap)
        whole = (0, 0, shape[1], shape[0])
        return grid + [whole] if self.whole_frame and whole not in grid else grid

    def detect(self, image: Image) -> FaceDetections:
        """Plates in ``image`` (each crop of :meth:`crops` run separately, then merged by NMS)."""
        parts = [self._detect_tile(image, x, y, x2, y2) for x, y, x2, y2 in self.crops(image.shape)]
        xyxy = np.concatenate([p[0] for p in parts])
        score = np.concatenate([p[1] for p in parts])
        cls = np.concatenate([p[2] for p in parts])
        keep = yolo.nms_per_class(xyxy, score, cls, self.nms_iou)
        return FaceDetections(xyxy[keep], score[keep], kind=np.full(len(keep), "plate"))

    def _detect_tile(self, image: Image, x: int, y: int, x2: int, y2: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        crop = image[y:y2, x:x2]
        padded, box = yolo.letterbox(crop, yolo.input_size(crop.shape, self._fixed, self.imgsz, STRIDE))
        out = self.engine.run({self._input: yolo.to_tensor(padded, self._dtype)})[self._output]
        xyxy, score, cls = yolo.decode(out, self.layout, self.threshold, nm=self._nm)
        if self.classes:
            wanted = np.isin(cls, list(self.classes))
            xyxy, score, cls = xyxy[wanted], score[wanted], cls[wanted]
        return box.to_frame(xyxy, crop.shape) + np.array([x, y, x, y], np.float32), score, cls

    def detect_batch(self, images: list[Image]) -> list[FaceDetections]:
        return [self.detect(image) for image in images]


def tile_grid(shape: tuple[int, ...], tiles: tuple[int, int], overlap: float) -> list[tuple[int, int, int, int]]:
    """``cols x rows`` crops (x1, y1, x2, y2) covering the frame, neighbours sharing ``overlap`` of a tile."""
    h, w = shape[:2]
    cols, rows = tiles
    tw = w / (cols - (cols - 1) * overlap)
    th = h / (rows - (rows - 1) * overlap)
    out = []
    for r in range(rows):
        for c in range(cols):
            x1, y1 = round(c * tw * (1 - overlap)), round(r * th * (1 - overlap))
            out.append((x1, y1, min(w, round(x1 + tw)), min(h, round(y1 + th))))
    return out


def _mask_channels(outputs: list[engines.TensorSpec]) -> int:
    """Mask coefficients per row: the prototype channels of a ``-seg`` model's second output."""
    if len(outputs) < 2 or len(outputs[1].shape) != 4:
        return 0
    nm = outputs[1].shape[1]
    return nm if isinstance(nm, int) and nm > 0 else 0


class PlateStage:
    """Detect -> track -> anonymize for plates, on the frame the face stages already handled."""

    def __init__(
        self,
        detector: Detector,
        tracker: Tracker,
        anonymizer: Anonymizer,
        every_n: int = 1,
        on_error: str = "blur_frame",
        stats: RunStats | None = None,
        owns_detector: bool = True,
    ) -> None:
        self.detector, self.tracker, self.anonymizer = detector, tracker, anonymizer
        self.every_n, self.on_error = every_n, on_error
        self.owns_detector = owns_detector  # False: one plate detector shared by every stream
        self.stats = stats or RunStats()
        self._count = 0

    def detect_next(self) -> None:
        self._count = 0

    def reset(self) -> None:
        self.tracker.reset()
        self.detect_next()

    def process(self, frame: Frame) -> FaceDetections:
        """Anonymize every plate of ``frame.image`` in place; the plate rows (``kind="plate"``)."""
        due = self._count % self.every_n == 0
        self._count += 1
        found = self._detect(frame) if due else None
        with self.stats.timed("plates"):
            tracked = self.tracker.update(found, frame.index) if found is not None else self.tracker.predict(frame.index)
            plates = _as_plates(tracked)
            self.anonymizer.apply(frame.image, plates)
            if due and found is None:  # fail closed in every on_error mode
                blur_frame(frame.image)
        if bool(np.asarray(plates.coasting).any()):
            self.detect_next()  # a plate was missed: look again on the next frame
        return plates

    def _detect(self, frame: Frame) -> FaceDetections | None:
        try:
            with self.stats.timed("plates_detect"):
                return self.detector.detect(frame.image)
        except FawnError as exc:
            log.error("plate detector failed on frame %d: %s", frame.index, exc)
            self.stats.detector_errors += 1
            return None

    def close(self) -> None:
        """Close an own detector (a shared one is closed by its owner, :class:`SharedModels`)."""
        close = getattr(self.detector, "close", None) if self.owns_detector else None
        if close is not None:
            close()


def _as_plates(tracked: FaceDetections) -> FaceDetections:
    """Tracker rows as plates: own id range, no landmarks, never visible, no identity."""
    assert tracked.track_id is not None
    return FaceDetections(
        xyxy=tracked.xyxy,
        score=tracked.score,
        track_id=tracked.track_id + PLATE_TRACK_ID_BASE,
        coasting=tracked.coasting,
        kind=np.full(len(tracked), "plate"),
    )


def create_yolo_detector(cfg: PlatesConfig) -> YoloDetector:
    if cfg.model is None:
        raise ModelError("plates.model is not set (fawn ships no plate model: pass --plates MODEL.onnx)")
    return YoloDetector(cfg.model, cfg.engine, cfg.device, cfg.threads, cfg.threshold, cfg.nms_iou, cfg.layout,
                        cfg.imgsz, cfg.classes, cfg.tiles, cfg.tile_overlap, cfg.whole_frame)


def create_plate_detector(cfg: PlatesConfig, shared: bool = False) -> Detector:
    """The configured plate detector; behind a detection thread (:class:`BatchingDetector`) when
    ``timeout_ms`` bounds the wait or when several streams share it (``shared``: one session, the
    streams' frames run one at a time on that thread; an engine error fails each frame closed)."""
    yolo_detector = create_yolo_detector(cfg)
    if cfg.timeout_ms is None and not shared:
        return yolo_detector
    return BatchingDetector(yolo_detector, 1, 0.0, cfg.timeout_ms)


def create_plate_stage(
    cfg: PipelineConfig, stats: RunStats | None = None, detector: Detector | None = None
) -> PlateStage | None:
    """The plate stage ``cfg.plates`` describes, or None when no plate model is configured.

    ``detector``: a plate detector shared with other streams (not closed with this stage);
    None loads one for this stage alone. The tracker is always this stage's own.
    """
    p = cfg.plates
    if not p.enabled:
        return None
    owns = detector is None
    detector = create_plate_detector(p) if detector is None else detector
    t = cfg.tracker
    tracker = SortTracker(t.max_coast, t.iou_threshold, t.max_center_jump, t.box_grow_per_frame)
    look = AnonymizerConfig(method=p.method, shape="box", padding=p.padding, feather=p.feather,
                            strength=p.strength, blocks=p.blocks, color=p.color)
    return PlateStage(detector, tracker, create_anonymizer(look), p.every_n, cfg.on_error, stats, owns_detector=owns)
