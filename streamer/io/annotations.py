"""The annotation record: what was hidden, frame by frame, for an auditor or dataset tooling.

:class:`AnnotationWriter` observes every processed frame (the pipeline's
``on_frame`` callback: the frame and its final detections) and records each
region: class (``face``; ``plate`` where the detections carry a ``kind``),
box, track id, identity decision and method. A face shown because it was
registered is recorded too, with its ``registered:NAME`` decision and method
``none``. A frame blurred whole (fail closed after an error) gets a ``frame``
region. No pixels and no embeddings are written.

``jsonl``: one line per frame, written as the run goes (frames without regions
too). ``coco``: one COCO JSON written at the end (``images``, ``annotations``
with ``bbox`` as x, y, w, h, ``categories`` face/plate/frame; ``track_id``,
``decision`` and ``method`` as extra fields).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

from streamer.core.config import PipelineConfig
from streamer.core.errors import SinkError
from streamer.core.stats import RunStats
from streamer.core.types import FaceDetections, Frame

log = logging.getLogger(__name__)

CATEGORIES = ("face", "plate", "frame")  # COCO category ids 1, 2, 3
PENDING = "pending"


def row_classes(dets: FaceDetections) -> list[str]:
    """The class of each row: the detections' ``kind`` (or ``class``) field when it has one, else ``face``."""
    kinds = getattr(dets, "kind", None)
    if kinds is None:
        kinds = getattr(dets, "class_name", None)
    if kinds is None:
        return ["face"] * len(dets)
    return [str(k) for k in kinds]


class AnnotationWriter:
    """Records every anonymized (or deliberately shown) region of every frame; see the module docstring."""

    def __init__(self, path: str, fmt: str = "jsonl", method: str = "blur", stats: RunStats | None = None,
                 plate_method: str | None = None) -> None:
        self.path = Path(path)
        self.format = fmt
        self.methods = {"face": method, "plate": plate_method or method}
        self.stats = stats
        self._errors = self._error_count()
        self._images: list[dict[str, Any]] = []
        self._annotations: list[dict[str, Any]] = []
        self.frames = 0
        self.regions = 0
        self._handle: TextIO | None = None
        try:
            if fmt == "jsonl":
                self._handle = self.path.open("w", encoding="utf-8")
            else:  # coco: written at close; check now that it can be
                self.path.touch()
        except OSError as exc:
            raise SinkError(f"cannot write the annotations file {self.path}: {exc.strerror or exc}") from None

    def _error_count(self) -> tuple[int, int]:
        if self.stats is None:
            return 0, 0
        return self.stats.frame_errors, self.stats.detector_errors

    def _whole_frame_blurred(self) -> bool:
        """Did the processor blur this frame whole (an exception, or a failed detection)?"""
        now = self._error_count()
        before, self._errors = self._errors, now
        return now[0] > before[0] or now[1] > before[1]  # a failed detection blurs the frame in every mode

    def regions_of(self, frame: Frame, dets: FaceDetections) -> list[dict[str, Any]]:
        assert dets.track_id is not None and dets.identity is not None and dets.visible is not None
        assert dets.coasting is not None
        regions = []
        for i, cls in enumerate(row_classes(dets)):
            shown = bool(dets.visible[i])
            x1, y1, x2, y2 = (round(float(v), 1) for v in dets.xyxy[i])
            regions.append({
                "class": cls, "box": [x1, y1, x2, y2], "track_id": int(dets.track_id[i]),
                "decision": dets.identity[i] or PENDING, "method": "none" if shown else self.methods.get(cls, self.methods["face"]),
                "coasting": bool(dets.coasting[i]), "score": round(float(dets.score[i]), 3),
            })
        if self._whole_frame_blurred():
            regions.append({"class": "frame", "box": [0.0, 0.0, float(frame.width), float(frame.height)],
                            "track_id": -1, "decision": "error", "method": "blur_frame", "coasting": False,
                            "score": 1.0})
        return regions

    def observe(self, frame: Frame, dets: FaceDetections) -> None:
        """Record one processed frame (the pipeline's ``on_frame`` callback)."""
        regions = self.regions_of(frame, dets)
        seconds = float(frame.pts * frame.time_base) if frame.pts is not None and frame.time_base else None
        name = frame.extra.get("name")
        self.frames += 1
        self.regions += len(regions)
        if self._handle is not None:
            record = {"frame": frame.index, "file": name, "time": None if seconds is None else round(seconds, 6),
                      "width": frame.width, "height": frame.height, "regions": regions}
            self._handle.write(json.dumps(record) + "\n")
            return
        image_id = len(self._images) + 1
        self._images.append({"id": image_id, "file_name": name or f"{frame.index:06d}", "width": frame.width,
                             "height": frame.height, "frame_index": frame.index, "time": seconds})
        for region in regions:
            self._annotations.append(_coco_annotation(len(self._annotations) + 1, image_id, region))

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None
            return
        if self.format != "coco":
            return
        data = {
            "info": {"description": "regions anonymized by fawn", "version": "1.0"},
            "images": self._images,
            "annotations": self._annotations,
            "categories": [{"id": i + 1, "name": name, "supercategory": "anonymized"}
                           for i, name in enumerate(CATEGORIES)],
        }
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps(data), encoding="utf-8")
        os.replace(tmp, self.path)


def _coco_annotation(ann_id: int, image_id: int, region: dict[str, Any]) -> dict[str, Any]:
    x1, y1, x2, y2 = region["box"]
    w, h = max(0.0, x2 - x1), max(0.0, y2 - y1)
    cls = region["class"]
    category = CATEGORIES.index(cls) + 1 if cls in CATEGORIES else len(CATEGORIES)
    return {"id": ann_id, "image_id": image_id, "category_id": category, "bbox": [x1, y1, round(w, 1), round(h, 1)],
            "area": round(w * h, 1), "iscrowd": 0, "track_id": region["track_id"], "decision": region["decision"],
            "method": region["method"], "coasting": region["coasting"], "score": region["score"]}


def annotations_path(cfg: PipelineConfig, output: str) -> str | None:
    """Where one item's record goes in a batch: next to its output (``OUT.annotations.jsonl``), when on."""
    if cfg.annotations.path is None:
        return None
    return f"{output}.annotations.{'json' if cfg.annotations.format == 'coco' else 'jsonl'}"


def writer_for(cfg: PipelineConfig, path: str, stats: RunStats | None = None) -> AnnotationWriter:
    return AnnotationWriter(path, cfg.annotations.format, cfg.anonymizer.method, stats, cfg.plates.method)


@contextmanager
def annotation_record(cfg: PipelineConfig, options: Any, stats: RunStats, path: str | None = None) -> Iterator[None]:
    """While the block runs, record into ``path`` (default ``cfg.annotations.path``) through ``options.on_frame``
    (an existing callback still runs); the file is finished when the block ends, even on an error."""
    path = path or cfg.annotations.path
    if path is None:
        yield
        return
    writer = writer_for(cfg, path, stats)
    previous = options.on_frame

    def on_frame(frame: Frame, dets: FaceDetections) -> None:
        writer.observe(frame, dets)
        if previous is not None:
            previous(frame, dets)

    options.on_frame = on_frame
    try:
        yield
    finally:
        options.on_frame = previous
        writer.close()
        log.info("annotations: %d frames, %d regions -> %s", writer.frames, writer.regions, writer.path)
