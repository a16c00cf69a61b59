"""The shared, batching detector: same faces as one-by-one, real batches across threads, fail closed."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import cv2
import numpy as np
import pytest

from streamer.core.config import AnonymizerConfig
from streamer.core.errors import DetectorClosedError, DetectorTimeoutError, EngineError
from streamer.core.types import FaceDetections, Frame, Image
from streamer.runtime.processor import FrameProcessor
from streamer.stages.anonymize import create_anonymizer
from streamer.stages.batching import BatchingDetector
from streamer.stages.detect import CenterFaceDetector
from streamer.stages.identity.resolver import AnonymizeEveryone
from streamer.stages.track import SortTracker
from streamer.tools import verify


def test_batch_matches_single_frames_at_mixed_sizes(
    detector: CenterFaceDetector, demo_frames: list[tuple[Image, np.ndarray]]
) -> None:
    images = [demo_frames[0][0], demo_frames[20][0], cv2.resize(demo_frames[40][0], (320, 240))]
    batched = detector.detect_batch(images)
    for image, got in zip(images, batched):
        alone = detector.detect(image)
        assert len(got) == len(alone) > 0
        np.testing.assert_allclose(got.xyxy, alone.xyxy, atol=0.05)
        np.testing.assert_allclose(got.score, alone.score, atol=1e-4)


def test_concurrent_streams_share_one_batch(
    detector: CenterFaceDetector, demo_frames: list[tuple[Image, np.ndarray]]
) -> None:
    shared = BatchingDetector(detector, max_batch=4, wait_ms=500.0)
    shared.streams = 3
    results: dict[int, FaceDetections] = {}

    def stream(i: int) -> None:
        results[i] = shared.detect(demo_frames[i * 10][0])

    threads = [threading.Thread(target=stream, args=(i,)) for i in range(3)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
    finally:
        shared.close()
    assert sorted(results) == [0, 1, 2] and all(len(r) > 0 for r in results.values())
    assert shared.batches == 1 and shared.frames == 3  # one engine call for the three streams


class _Broken:
    def detect_batch(self, images: list[Image]) -> list[FaceDetections]:
        raise RuntimeError("CUDA error: an illegal memory access")

    def detect(self, image: Image) -> FaceDetections:
        return self.detect_batch([image])[0]


class _Hung:
    def __init__(self) -> None:
        self.release = threading.Event()

    def detect_batch(self, images: list[Image]) -> list[FaceDetections]:
        self.release.wait(30)
        return [FaceDetections.empty() for _ in images]

    def detect(self, image: Image) -> FaceDetections:
        return self.detect_batch([image])[0]


def test_engine_error_reaches_every_caller_as_engine_error(demo_frames: list[tuple[Image, np.ndarray]]) -> None:
    shared = BatchingDetector(_Broken())
    try:
        with pytest.raises(EngineError, match="illegal memory access"):
            shared.detect(demo_frames[0][0])
    finally:
        shared.close()


def test_hung_engine_times_out_and_does_not_pile_up_frames(demo_frames: list[tuple[Image, np.ndarray]]) -> None:
    hung = _Hung()
    shared = BatchingDetector(hung, timeout_ms=100.0)
    try:
        for _ in range(5):  # each caller gets its timeout, none waits behind the hung batch
            with pytest.raises(DetectorTimeoutError):
                shared.detect(demo_frames[0][0])
        assert len(shared._pending) <= 1  # abandoned requests are purged, not queued behind the hang
    finally:
        hung.release.set()
        shared.close()


def _processor(detector: object, on_error: str) -> FrameProcessor:
    anonymizer = create_anonymizer(AnonymizerConfig())
    return FrameProcessor(detector, SortTracker(), AnonymizeEveryone(), anonymizer, on_error=on_error)  # type: ignore[arg-type]


@pytest.mark.parametrize("on_error", ["blur_frame", "tracks"])
def test_slow_detector_frames_are_anonymized_not_passed_through(
    detector: CenterFaceDetector, demo_frames: list[tuple[Image, np.ndarray]], on_error: str
) -> None:
    """Frames 0-9 detect normally; then the engine hangs: with a timeout every frame still hides every face."""

    class SlowAfter:
        def __init__(self) -> None:
            self.calls = 0

        def detect_batch(self, images: list[Image]) -> list[FaceDetections]:
            self.calls += 1
            if self.calls > 10:
                time.sleep(0.3)
            return detector.detect_batch(images)

        def detect(self, image: Image) -> FaceDetections:
            return self.detect_batch([image])[0]

    shared = BatchingDetector(SlowAfter(), timeout_ms=150.0)
    processor = _processor(shared, on_error)
    pairs = []
    try:
        for i, (image, boxes) in enumerate(demo_frames[:20]):
            frame = Frame(image.copy(), i)
            processor.process(frame)
            pairs.append((image, frame.image, boxes))
    finally:
        processor.close()
    report = verify.face_recall(pairs)
    assert processor.stats.detector_errors >= 5
    assert report.recall == 1.0, f"faces leaked in frames {report.leaked_frames}"


class _Gated:
    """A detector whose engine call blocks until ``gate`` is set (a slow or hung engine)."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.entered = threading.Event()

    def detect_batch(self, images: list[Image]) -> list[FaceDetections]:
        self.entered.set()
        self.gate.wait(60)
        return [FaceDetections.empty() for _ in images]


def _callers(shared: BatchingDetector, image: Image, count: int) -> tuple[list[threading.Thread], dict[int, object]]:
    outcomes: dict[int, object] = {}

    def call(i: int) -> None:
        try:
            outcomes[i] = shared.detect(image)
        except Exception as exc:  # noqa: BLE001 - recorded for the assertions
            outcomes[i] = exc

    threads = [threading.Thread(target=call, args=(i,), daemon=True) for i in range(count)]
    for t in threads:
        t.start()
    return threads, outcomes


def _wait_for(condition: Callable[[], bool]) -> None:
    for _ in range(3000):
        if condition():
            return
        threading.Event().wait(0.01)
    raise AssertionError("condition never became true")


@pytest.mark.parametrize("engine_returns", [True, False])
def test_close_fails_every_waiting_caller_with_a_typed_error(
    demo_frames: list[tuple[Image, np.ndarray]], engine_returns: bool
) -> None:
    """No timeout is configured: before close() failed them, queued callers waited forever."""
    engine = _Gated()
    shared = BatchingDetector(engine, max_batch=1, wait_ms=0.0, timeout_ms=None)
    first, first_outcome = _callers(shared, demo_frames[0][0], 1)
    assert engine.entered.wait(30)  # the first frame is in the engine now
    queued, outcomes = _callers(shared, demo_frames[1][0], 3)
    _wait_for(lambda: len(shared._pending) == 3)
    closer = threading.Thread(target=shared.close, kwargs={"timeout": 30.0 if engine_returns else 0.2})
    closer.start()
    _wait_for(lambda: shared._closed)
    if engine_returns:
        engine.gate.set()
    closer.join(60)
    for t in first + queued:
        t.join(30)
        assert not t.is_alive(), "a caller still waits after close()"
    assert len(outcomes) == 3 and all(isinstance(o, DetectorClosedError) for o in outcomes.values())
    assert all("closed" in str(o) for o in outcomes.values())
    if engine_returns:  # the batch in the engine finished normally
        assert isinstance(first_outcome[0], FaceDetections)
    else:  # a hung engine: that caller fails closed too
        assert isinstance(first_outcome[0], DetectorClosedError)
    with pytest.raises(DetectorClosedError):
        shared.detect(demo_frames[2][0])
    engine.gate.set()


def _small_1080p(frames: int) -> list[tuple[Image, np.ndarray]]:
    from streamer.tools.stress import SEGMENTS, render, segment_specs

    return list(render(segment_specs(1920, 1080, frames)[SEGMENTS.index("small")]))


def test_second_look_through_the_shared_detector_matches_the_direct_one(detector: CenterFaceDetector) -> None:
    frame, gt = _small_1080p(1)[0]
    boxes = (gt + np.array([-6, -6, 6, 6], np.float32)).astype(np.float32)  # where coasting tracks would be
    shared = BatchingDetector(detector)
    try:
        assert shared.max_side == detector.max_side
        got = shared.detect_regions(frame, boxes)
    finally:
        shared.close()
    alone = detector.detect_regions(frame, boxes)
    assert len(got) == len(alone) >= len(gt) - 1
    np.testing.assert_allclose(got.xyxy, alone.xyxy, atol=0.05)
    assert shared.looks == 1 and shared.frames == 0


def test_every_18_px_face_frame_is_hidden_behind_the_shared_detector() -> None:
    """The multi-stream path (``SharedModels``: one detector thread for every stream) gives the
    second look too: every face-frame of the 1080p 18-30 px segment is hidden, as in ``fawn run``
    (the recheck, which also refinds most of these faces, is off: the second look alone)."""
    from streamer.core.config import load_config
    from streamer.runtime.processor import SharedModels, build_processor

    cfg = load_config("default", {"detector.threads": 1, "detector.recheck_threshold": 0})
    shared = SharedModels(cfg)
    processor = build_processor(cfg, shared=shared)
    checked = 0
    try:
        for index, (frame, gt) in enumerate(_small_1080p(12)):
            original = frame.copy()
            processor.process(Frame(frame, index))
            for box in gt:
                assert verify.face_hidden(original, frame, box), f"frame {index}: the {box[2] - box[0]:.0f} px face shows"
                checked += 1
        assert shared.detector.looks >= 3  # the frame pass lost the 18 px face on these frames
    finally:
        processor.close()
        shared.close()
    assert checked == 48


def test_a_failed_second_look_leaves_the_lost_tracks_coasting() -> None:
    """The second look's engine fails: the frame keeps the frame pass's faces, the lost small
    track coasts (anonymized where predicted), nothing is passed through."""
    from streamer.core.config import load_config
    from streamer.stages.detect import create_detector

    detector = create_detector(load_config("default", {"detector.threads": 1}).detector)

    class RegionsBroken:
        max_side = detector.max_side

        def detect_batch(self, images: list[Image]) -> list[FaceDetections]:
            return detector.detect_batch(images)

        def detect(self, image: Image) -> FaceDetections:
            return detector.detect(image)

        def detect_regions(self, image: Image, boxes: np.ndarray) -> FaceDetections:
            raise RuntimeError("region engine crashed")

    shared = BatchingDetector(RegionsBroken())
    processor = _processor(shared, "blur_frame")
    processor.second_look = 40.0
    pairs = []
    try:
        for index, (frame, gt) in enumerate(_small_1080p(6)):
            original = frame.copy()
            processor.process(Frame(frame, index))
            pairs.append((original, frame, gt))
    finally:
        processor.close()
        shared.close()
    assert processor.stats.detector_errors >= 1  # the look was asked for and failed...
    assert processor.stats.frame_errors == 0  # ...without blurring the whole frame
    report = verify.face_recall(pairs)
    assert report.faces == 24 and report.recall == 1.0, f"faces leaked in frames {report.leaked_frames}"
