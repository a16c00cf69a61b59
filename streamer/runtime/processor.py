"""The stateful per-stream stages: detect -> track -> identity -> anonymize, on one thread."""

from __future__ import annotations

import logging

from streamer.core.config import PipelineConfig
from streamer.core.errors import FawnError
from streamer.core.stats import RunStats
from streamer.core.types import FaceDetections, Frame, Image
from streamer.stages.anonymize import Anonymizer, create_anonymizer
from streamer.stages.anonymize.filters import blur_frame
from streamer.stages.batching import BatchingDetector
from streamer.stages.detect import Detector, create_detector, second_look
from streamer.stages.identity.embed import Embedder, create_embedder
from streamer.stages.identity.resolver import IdentityResolver, create_identity
from streamer.stages.plates import PlateStage, create_plate_detector, create_plate_stage
from streamer.stages.scene import CutDetector
from streamer.stages.track import SortTracker, Tracker

log = logging.getLogger(__name__)

SETTLE_FRAMES = 4  # a track younger than this (in frames) keeps the detector on every frame


class FrameProcessor:
    """The stateful per-stream stages. ``process`` anonymizes ``frame.image`` in place."""

    def __init__(
        self,
        detector: Detector,
        tracker: Tracker,
        identity: IdentityResolver,
        anonymizer: Anonymizer,
        every_n: int = 1,
        on_error: str = "blur_frame",  # both modes blur the frame; "tracks" first anonymizes known tracks
        stats: RunStats | None = None,
        adaptive: bool = True,
        owns_detector: bool = True,
        plates: PlateStage | None = None,
        second_look: float = 0.0,
    ) -> None:
        self.detector = detector
        self.tracker = tracker
        self.identity = identity
        self.anonymizer = anonymizer
        self.every_n = every_n
        self.on_error = on_error
        self.stats = stats or RunStats()
        self.adaptive = adaptive
        self.owns_detector = owns_detector  # False: a detector shared with other streams
        self.cut = CutDetector()
        self.second_look = second_look  # detector.second_look: largest lost face (px) given a closer look
        self.plates = plates  # license plates: own detector and tracker, after the face stages
        self._shape: tuple[int, ...] | None = None
        self._count = 0
        self._first_seen: dict[int, int] = {}
        self._unsettled = True

    def detect_next(self) -> None:
        """Run the detector on the next frame whatever the stride (tracks are kept and coast)."""
        self._count = 0
        if self.plates is not None:
            self.plates.detect_next()

    def reset(self) -> None:
        """Forget every track and detect on the next frame (a new stream, a replay)."""
        self.tracker.reset()
        if self.plates is not None:
            self.plates.reset()
        self.detect_next()

    def process(self, frame: Frame) -> FaceDetections:
        """Detect (or predict), track, resolve identity and anonymize ``frame.image`` in place.

        Fail closed: if any stage raises (an identity or anonymizer engine error, a bug),
        the whole frame is blurred and the stream goes on; the error is logged and counted.
        """
        try:
            return self._process(frame)
        except Exception:  # noqa: BLE001 - a frame that could not be anonymized is blurred whole
            self.stats.frame_errors += 1
            if self.stats.frame_errors == 1 or self.stats.frame_errors % 100 == 0:
                log.exception("anonymizing frame %d failed (%d so far): the frame is blurred whole",
                              frame.index, self.stats.frame_errors)
            blur_frame(frame.image)
            return FaceDetections.empty()

    def _process(self, frame: Frame) -> FaceDetections:
        stats = self.stats
        if frame.image.shape != self._shape:  # a new resolution: boxes of the old one mean nothing
            if self._shape is not None:
                log.info("frame size changed %s -> %s: tracks reset", self._shape[:2], frame.image.shape[:2])
                self.reset()
            self._shape = frame.image.shape
        detect_now = self._detect_due(frame.image)  # (a cut also makes the plate stage detect)
        # plates before faces, on the frame as it came (a blurred face must not hide a plate's context)
        plates = self.plates.process(frame) if self.plates is not None else None
        found: FaceDetections | None = self._detect(frame) if detect_now else None
        if found is not None and self.second_look > 0:  # small faces the frame pass lost: a closer look
            found = self._second_look(frame, found)
        with stats.timed("track"):
            if found is not None:
                tracked = self.tracker.update(found, frame.index)
            else:
                tracked = self.tracker.predict(frame.index)
        with stats.timed("identity"):
            # identity samples only rows the detector measured on this very frame
            tracked = self.identity.resolve(frame.image, tracked, measured=found is not None)
        with stats.timed("anonymize"):
            self.anonymizer.apply(frame.image, tracked)
            if detect_now and found is None:  # a face that appeared during the failure has no track
                blur_frame(frame.image)
        self._settle(tracked)
        self._count_faces(tracked)
        if plates is not None:  # plates: never identity, always anonymized; rows of kind "plate"
            tracked = FaceDetections.concat([tracked, plates])
        return tracked

    def _detect_due(self, image: Image) -> bool:
        """Every ``every_n``-th frame; every frame after a cut and, when adaptive, while the
        scene is unsettled (a track is new or coasting), so skipping frames cannot
        cost a new or hard-to-see face."""
        if self.cut(image):  # after a jump, predicted tracks cover where faces *were*
            self.detect_next()
        due = self._count % self.every_n == 0
        self._count += 1
        return due or (self.adaptive and self._unsettled)

    def _detect(self, frame: Frame) -> FaceDetections | None:
        """The detector's faces, or None when it failed (fail closed: see ``on_error``)."""
        try:
            with self.stats.timed("detect"):
                return self.detector.detect(frame.image)
        except FawnError as exc:
            log.error("detector failed on frame %d: %s", frame.index, exc)
            self.stats.detector_errors += 1
            return None

    def _second_look(self, frame: Frame, found: FaceDetections) -> FaceDetections:
        """``found`` plus the small faces a closer look refinds around the tracks this pass lost;
        on a detector error just ``found`` (those tracks coast: anonymized where predicted)."""
        try:
            with self.stats.timed("detect"):
                return second_look(self.detector, frame.image, found, self.tracker.predict(frame.index),
                                   self.second_look)
        except FawnError as exc:
            log.warning("second look failed on frame %d: %s (lost tracks coast)", frame.index, exc)
            self.stats.detector_errors += 1
            return found

    def _settle(self, tracked: FaceDetections) -> None:
        assert tracked.track_id is not None and tracked.coasting is not None
        ids = [int(t) for t in tracked.track_id]
        self._first_seen = {t: self._first_seen.get(t, self._count) for t in ids}
        young = any(self._count - first < SETTLE_FRAMES for first in self._first_seen.values())
        self._unsettled = young or bool(tracked.coasting.any())

    def close(self) -> None:
        """Release per-run state (the identity audit log, the diffusion worker, an own detector thread)."""
        stages: list[object] = [self.identity, self.anonymizer] + ([self.detector] if self.owns_detector else [])
        stages += [self.plates] if self.plates is not None else []
        for stage in stages:
            close = getattr(stage, "close", None)
            if close is not None:
                close()

    def _count_faces(self, tracked: FaceDetections) -> None:
        assert tracked.visible is not None and tracked.track_id is not None
        visible = int(tracked.visible.sum())
        self.stats.faces_visible += visible
        self.stats.faces_anonymized += len(tracked) - visible
        self.stats.track_ids.update(int(t) for t in tracked.track_id)
        self.stats.active_tracks = len(tracked)


def batching_detector(cfg: PipelineConfig) -> BatchingDetector:
    """The configured detector behind its own detection thread (batches, bounded waits)."""
    d = cfg.detector
    return BatchingDetector(create_detector(d), d.batch_size(), d.batch_wait_ms, d.timeout_ms)


class SharedModels:
    """Model sessions that several streams' processors share (one copy of each in memory).

    The detector sits behind a :class:`~streamer.stages.batching.BatchingDetector`: one
    session and one detection thread for every stream, and on a GPU one batch for
    frames submitted together (``detector.max_batch``); the identity embedder (only
    loaded when a gallery is used) is called from each stream's thread. The plate
    detector (``plates.model``), when set, is one session behind its own detection
    thread too; each stream keeps its own plate tracker.
    """

    def __init__(self, cfg: PipelineConfig, streams: int = 1) -> None:
        # plates first: a missing plate model fails before the other loads
        self.plates: Detector | None = create_plate_detector(cfg.plates, shared=True) if cfg.plates.enabled else None
        self.detector = batching_detector(cfg)
        self.detector.streams = streams
        uses_gallery = cfg.identity.gallery is not None and cfg.identity.mode != "all"
        self.embedder: Embedder | None = create_embedder(cfg.identity) if uses_gallery else None

    def close(self) -> None:
        self.detector.close()
        close = getattr(self.plates, "close", None)
        if close is not None:
            close()


def build_processor(
    cfg: PipelineConfig, stats: RunStats | None = None, shared: SharedModels | None = None
) -> FrameProcessor:
    """Load the models and stages a config names (or take them from ``shared``)."""
    stats = stats if stats is not None else RunStats()
    # first: a missing plate model fails before other loads
    plates = create_plate_stage(cfg, stats, shared.plates if shared is not None else None)
    detector: Detector
    if shared is not None:
        detector = shared.detector
    elif cfg.detector.timeout_ms is not None:  # the wait is bounded on the detection thread
        detector = batching_detector(cfg)
    else:
        detector = create_detector(cfg.detector)
    t = cfg.tracker
    tracker = SortTracker(t.max_coast, t.iou_threshold, t.max_center_jump, t.box_grow_per_frame)
    identity = create_identity(cfg.identity, stats, shared.embedder if shared is not None else None)
    anonymizer = create_anonymizer(cfg.anonymizer, ksame=cfg.ksame, identity=cfg.identity, diffusion=cfg.diffusion)
    return FrameProcessor(
        detector, tracker, identity, anonymizer, cfg.detector.every_n, cfg.on_error, stats, cfg.detector.adaptive,
        owns_detector=shared is None, plates=plates, second_look=cfg.detector.second_look,
    )
