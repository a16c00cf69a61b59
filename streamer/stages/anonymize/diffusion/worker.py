"""The diffusion worker thread: batches keyframe jobs across faces, keeps each track's identity.

The frame loop never runs diffusion itself: it submits jobs (one aligned crop
per track that needs a keyframe) and takes whatever results are ready. The
worker drains up to ``max_batch`` jobs into one batched call, so the faces of
a frame share every engine call. A failing batch yields error results (the
frame loop then blurs those faces); the worker keeps running.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from streamer.core.types import Image
from streamer.stages.anonymize.diffusion.crop import FaceMask, match_colour

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Job:
    """A keyframe for ``track_id``: its aligned crop at frame ``frame``."""

    track_id: int
    frame: int
    crop: Image


@dataclass(frozen=True)
class Result:
    """A synthetic crop (colour-matched to the job's crop), or ``error`` when the batch failed."""

    track_id: int
    frame: int
    crop: Image | None
    error: str | None = None
    seconds: float = 0.0


class FaceGenerator(Protocol):
    def generate(self, crops: list[Image], track_ids: list[int], known: dict[int, Any]) -> tuple[list[Image], dict[int, Any]]: ...


class DiffusionWorker:
    """A daemon thread around a :class:`FaceGenerator` (see the module docstring)."""

    def __init__(self, generator: FaceGenerator, mask: FaceMask, max_batch: int = 8, colour_match: bool = True) -> None:
        self.generator = generator
        self.mask = mask
        self.max_batch = max_batch
        self.colour_match = colour_match
        self._cond = threading.Condition()
        self._jobs: deque[Job] = deque()
        self._results: list[Result] = []
        self._evict: set[int] = set()
        self._identities: dict[int, Any] = {}  # worker thread only
        self._closed = False
        self.batches = 0
        self.busy_seconds = 0.0
        self._thread = threading.Thread(target=self._loop, name="fawn-diffusion", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ frame-loop side

    def submit(self, jobs: Iterable[Job]) -> None:
        with self._cond:
            self._jobs.extend(jobs)
            self._cond.notify_all()

    def take_results(self) -> list[Result]:
        with self._cond:
            out, self._results = self._results, []
        return out

    def wait(self, keys: set[tuple[int, int]], timeout: float) -> bool:
        """Wait up to ``timeout`` s until a result for every ``(track_id, frame)`` in ``keys`` is ready."""

        def ready() -> bool:
            done = {(r.track_id, r.frame) for r in self._results}
            return keys <= done or self._closed

        with self._cond:
            return self._cond.wait_for(ready, timeout=timeout)

    def evict(self, track_ids: Iterable[int]) -> None:
        with self._cond:
            self._evict.update(track_ids)

    def close(self, timeout: float = 5.0) -> None:
        with self._cond:
            self._closed = True
            self._jobs.clear()
            self._cond.notify_all()
        self._thread.join(timeout)

    @property
    def pending(self) -> int:
        with self._cond:
            return len(self._jobs)

    # ------------------------------------------------------------------ worker side

    def _next_batch(self) -> list[Job] | None:
        with self._cond:
            self._cond.wait_for(lambda: bool(self._jobs) or self._closed)
            if self._closed:
                return None
            for track in self._evict:
                self._identities.pop(track, None)
            self._evict.clear()
            batch: list[Job] = []
            seen: set[int] = set()
            while self._jobs and len(batch) < self.max_batch:
                job = self._jobs.popleft()
                if job.track_id in seen:  # one job per track per batch; a later one waits
                    self._jobs.appendleft(job)
                    break
                seen.add(job.track_id)
                batch.append(job)
            return batch

    def _loop(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            results = self._process(batch)
            with self._cond:
                self._results.extend(results)
                self._cond.notify_all()

    def _process(self, batch: list[Job]) -> list[Result]:
        start = time.perf_counter()
        try:
            images, made = self.generator.generate([j.crop for j in batch], [j.track_id for j in batch], self._identities)
            self._identities.update(made)
            crops = [match_colour(img, job.crop, self.mask.alpha) if self.colour_match else img for img, job in zip(images, batch)]
        except Exception as exc:  # any failure of the diffusion stage: those faces are blurred, the stream goes on
            log.error("diffusion batch of %d faces failed: %s: %s", len(batch), type(exc).__name__, exc)
            log.debug("diffusion failure", exc_info=True)
            return [Result(j.track_id, j.frame, None, f"{type(exc).__name__}: {exc}") for j in batch]
        seconds = time.perf_counter() - start
        self.batches += 1
        self.busy_seconds += seconds
        return [Result(j.track_id, j.frame, crop, None, seconds) for j, crop in zip(batch, crops)]
