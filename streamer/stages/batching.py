"""One detector shared by several streams: concurrent requests run as one batch.

Each stream's processor calls :meth:`BatchingDetector.detect` from its own
thread. A single detection thread collects the requests that arrive within
``wait_ms`` of the first (or until every registered stream has one waiting),
runs them through ``detect_batch`` in one engine call, and hands each stream its
result. A stream's second look at small lost faces (``detect_regions``) goes through
the same thread, after the frames of its batch. Streams therefore share one model session (no per-stream copy of the
weights, no oversubscribed inference threads) and, on a GPU, one batched run.

Fail closed: an engine error is raised to every stream of that batch as an
:class:`~streamer.core.errors.EngineError`, and a stream that waits longer than
``timeout_ms`` gets a :class:`~streamer.core.errors.DetectorTimeoutError`; the
processor anonymizes that frame without fresh detections (``on_error``).
:meth:`BatchingDetector.close` fails every frame still waiting with a
:class:`~streamer.core.errors.DetectorClosedError` (no caller waits forever).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field

from streamer.core.errors import DetectorClosedError, DetectorTimeoutError, EngineError, FawnError
from streamer.core.types import FaceDetections, FloatArray, Image
from streamer.stages.detect import BatchDetector

log = logging.getLogger(__name__)


@dataclass
class _Request:
    image: Image
    regions: FloatArray | None = None  # a second look at these boxes (``detect_regions``), not the frame
    done: threading.Event = field(default_factory=threading.Event)
    result: FaceDetections | None = None
    error: FawnError | None = None
    abandoned: bool = False  # the caller timed out: nobody reads the result


class BatchingDetector:
    """A thread-safe :class:`~streamer.stages.detect.Detector` in front of one ``BatchDetector``."""

    def __init__(
        self, detector: BatchDetector, max_batch: int = 8, wait_ms: float = 4.0, timeout_ms: float | None = None
    ) -> None:
        self.detector = detector
        self.max_batch = max_batch
        self.wait = wait_ms / 1000.0
        self.timeout = None if timeout_ms is None else timeout_ms / 1000.0
        self.streams = 1  # how many streams submit frames: the batch is full when each has one waiting
        self.batches = 0
        self.frames = 0
        self.looks = 0  # second looks run (detect_regions requests)
        self._pending: deque[_Request] = deque()
        self._running: list[_Request] = []  # the batch in the engine now
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="fawn-detect", daemon=True)
        self._thread.start()

    @property
    def max_side(self) -> int | None:
        """The shared detector's ``max_side`` (the second look sizes its faces in network pixels)."""
        return getattr(self.detector, "max_side", None)

    def detect(self, image: Image) -> FaceDetections:
        """This frame's faces, detected in a batch with other streams' frames."""
        return self._submit(_Request(image))

    def detect_regions(self, image: Image, boxes: FloatArray) -> FaceDetections:
        """The shared detector's second look at ``boxes`` of ``image`` (none if it has no
        ``detect_regions``), run on the detection thread; same errors and timeout as :meth:`detect`."""
        if len(boxes) == 0 or getattr(self.detector, "detect_regions", None) is None:
            return FaceDetections.empty()
        return self._submit(_Request(image, regions=boxes))

    def _submit(self, request: _Request) -> FaceDetections:
        with self._cond:
            if self._closed:
                raise DetectorClosedError("the shared detector is closed")
            if any(r.abandoned for r in self._pending):  # a hung engine must not pile up frames
                self._pending = deque(r for r in self._pending if not r.abandoned)
            self._pending.append(request)
            self._cond.notify_all()
        if not request.done.wait(self.timeout):
            with self._cond:
                request.abandoned = True
            raise DetectorTimeoutError(f"face detection took longer than {1000 * (self.timeout or 0):.0f} ms")
        if request.error is not None:
            raise request.error
        assert request.result is not None
        return request.result

    def join(self) -> None:
        """One more stream submits frames (a camera peer connected)."""
        with self._cond:
            self.streams += 1

    def leave(self) -> None:
        """A stream ended: stop waiting for its frames."""
        with self._cond:
            self.streams = max(0, self.streams - 1)
            self._cond.notify_all()

    def close(self, timeout: float = 5.0) -> None:
        """Stop the detection thread; every frame still waiting fails with :class:`DetectorClosedError`.

        A batch already in the engine gets its result if the engine returns within
        ``timeout`` seconds, else it fails too.
        """
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout)
        with self._cond:
            waiting = list(self._pending) + self._running
            self._pending.clear()
        error = DetectorClosedError("the shared detector was closed while this frame waited for detection")
        for request in waiting:
            self._finish(request, error=error)

    def _run(self) -> None:
        while (batch := self._next_batch()) is not None:
            self._detect(batch)

    def _next_batch(self) -> list[_Request] | None:
        """Wait for a first request, then up to ``wait`` for the others; None once closed."""
        with self._cond:
            while not self._pending and not self._closed:
                self._cond.wait()
            if self._closed:
                return None
            deadline = time.monotonic() + self.wait
            while len(self._pending) < min(max(1, self.streams), self.max_batch) and not self._closed:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            batch: list[_Request] = []
            while self._pending and len(batch) < self.max_batch:
                request = self._pending.popleft()
                if not request.abandoned:
                    batch.append(request)
            self._running = batch
            return batch

    def _detect(self, batch: list[_Request]) -> None:
        frames = [r for r in batch if r.regions is None]
        try:
            if frames:
                self._run_frames(frames)
            for request in batch:
                if request.regions is not None:
                    self._run_regions(request)
        finally:
            with self._cond:
                self._running = []

    def _run_frames(self, frames: list[_Request]) -> None:
        try:
            results = self.detector.detect_batch([r.image for r in frames])
        except Exception as exc:  # noqa: BLE001 - every stream of the batch fails closed
            error = _engine_error(exc)
            log.debug("batch of %d failed: %s", len(frames), error)
            for request in frames:
                self._finish(request, error=error)
            return
        self.batches += 1
        self.frames += len(frames)
        for request, result in zip(frames, results):
            self._finish(request, result=result)

    def _run_regions(self, request: _Request) -> None:
        try:
            result: FaceDetections = self.detector.detect_regions(request.image, request.regions)  # type: ignore[attr-defined]
        except Exception as exc:  # noqa: BLE001 - the caller fails closed (its tracks coast)
            self._finish(request, error=_engine_error(exc))
            return
        self.looks += 1
        self._finish(request, result=result)

    def _finish(self, request: _Request, result: FaceDetections | None = None, error: FawnError | None = None) -> None:
        """Hand ``request`` its result or error; the first answer wins (close and the engine may race)."""
        with self._cond:
            if request.done.is_set():
                return
            request.result, request.error = result, error
            request.done.set()


def _engine_error(exc: Exception) -> FawnError:
    return exc if isinstance(exc, FawnError) else EngineError(f"detector failed: {type(exc).__name__}: {exc}")
