"""``DiffusionAnonymizer.apply(image, dets)``: synthetic faces per track, blur whenever none is ready.

Per frame, for every face that must be hidden:

1. align it (similarity transform from its 5 landmarks onto the model's crop);
2. decide whether its track needs a keyframe (:func:`wants_keyframe`): no
   synthetic face yet, or ``interval`` frames since the last request *and*
   the aligned face changed (a small grey thumbnail differs by more than
   ``change_threshold``, the similarity filter);
3. submit the keyframes of this frame to the worker together (one batch) and
   wait at most ``latency_budget_ms`` for them;
4. paste the track's last synthetic crop, warped to the current landmarks,
   with a feathered mask. A face is blurred instead when its track has no
   synthetic face yet, its last keyframe failed, a requested keyframe is
   more than ``max_lag`` frames late, it has no track id or usable landmarks,
   or the mask would not cover its detection box.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from streamer.core.types import FaceDetections, FloatArray, Image
from streamer.stages.anonymize.diffusion.crop import (
    FaceMask,
    covers,
    crop_matrix,
    paste,
    thumbnail,
    warp_crop,
)
from streamer.stages.anonymize.diffusion.worker import DiffusionWorker, Job, Result
from streamer.stages.anonymize.filters import BlurAnonymizer

log = logging.getLogger(__name__)

NEVER = -(10**9)


@dataclass(frozen=True)
class KeyframePolicy:
    """When a track gets a new keyframe, and how late one may be before its face is blurred (in frames)."""

    interval: int = 6
    change_threshold: float = 0.03
    max_lag: int = 15
    evict_after: int = 90


@dataclass
class TrackState:
    """The frame loop's view of one track (the worker keeps its identity tensors)."""

    last_seen: int
    synthetic: Image | None = None
    synthetic_frame: int = NEVER
    requested: int | None = None
    last_request: int = NEVER
    thumb: FloatArray | None = None
    failed: bool = False


def thumb_change(a: FloatArray | None, b: FloatArray | None) -> float:
    if a is None or b is None:
        return float("inf")
    return float(np.mean(np.abs(a - b)))


def wants_keyframe(state: TrackState, frame: int, thumb: FloatArray, policy: KeyframePolicy) -> bool:
    if state.requested is not None:
        return False  # one keyframe in flight per track
    since = frame - state.last_request
    if state.synthetic is None or state.failed:
        return state.last_request == NEVER or since >= policy.interval
    return since >= policy.interval and thumb_change(thumb, state.thumb) > policy.change_threshold


def usable(state: TrackState, frame: int, policy: KeyframePolicy) -> bool:
    """A synthetic face exists, the last keyframe did not fail, and no requested keyframe is late."""
    if state.synthetic is None or state.failed:
        return False
    return state.requested is None or frame - state.requested <= policy.max_lag


def _matrix(landmarks: FloatArray, size: int) -> Any:
    """The crop transform, or None for landmarks that give none (non-finite, coincident, or collapsed)."""
    if not np.all(np.isfinite(landmarks)):
        return None
    try:
        matrix = crop_matrix(landmarks, size)
    except ValueError:
        return None
    scale = float(np.hypot(matrix[0, 0], matrix[1, 0]))
    return matrix if np.all(np.isfinite(matrix)) and 1e-3 < scale < 1e3 else None


@dataclass
class DiffusionStats:
    keyframes: int = 0
    failures: int = 0
    synthetic_faces: int = 0
    blurred_faces: int = 0
    late_faces: int = 0


@dataclass(frozen=True)
class _Plan:
    row: int
    state: TrackState | None
    matrix: Any


class DiffusionAnonymizer:
    """The ``diffusion`` method; see the module docstring. ``close()`` stops the worker."""

    def __init__(
        self,
        worker: DiffusionWorker,
        resolution: int,
        mask: FaceMask,
        blur: BlurAnonymizer,
        policy: KeyframePolicy | None = None,
        latency_budget_ms: float = 0.0,
    ) -> None:
        self.worker = worker
        self.resolution = resolution
        self.mask = mask
        self.blur = blur
        self.policy = policy or KeyframePolicy()
        self.latency_budget = latency_budget_ms / 1000.0
        self.stats = DiffusionStats()
        self.states: dict[int, TrackState] = {}
        self._frame = -1

    def apply(self, image: Image, dets: FaceDetections) -> Image:
        """Anonymize every non-visible face of ``image`` in place and return it."""
        self._frame += 1
        self._collect(self.worker.take_results())
        plans, jobs = self._plan(image, dets)
        if jobs:
            self.stats.keyframes += len(jobs)
            self.worker.submit(jobs)
            if self.latency_budget > 0:
                self.worker.wait({(j.track_id, j.frame) for j in jobs}, self.latency_budget)
            self._collect(self.worker.take_results())
        blur_rows = [p.row for p in plans if not self._paste(image, dets, p)]
        if blur_rows:
            self.stats.blurred_faces += len(blur_rows)
            self.blur.apply(image, dets[np.array(blur_rows)])
        self._evict()
        return image

    def _plan(self, image: Image, dets: FaceDetections) -> tuple[list[_Plan], list[Job]]:
        assert dets.visible is not None and dets.track_id is not None
        plans: list[_Plan] = []
        jobs: list[Job] = []
        size = self.resolution
        for row in np.flatnonzero(~dets.visible):
            track = int(dets.track_id[row])
            if track < 0 or dets.landmarks is None:
                plans.append(_Plan(int(row), None, None))
                continue
            matrix = _matrix(dets.landmarks[row], size)
            if matrix is None:
                plans.append(_Plan(int(row), None, None))
                continue
            state = self.states.setdefault(track, TrackState(self._frame))
            state.last_seen = self._frame
            thumb = thumbnail(image, matrix, size)
            if wants_keyframe(state, self._frame, thumb, self.policy):
                jobs.append(Job(track, self._frame, warp_crop(image, matrix, size)))
                state.requested, state.last_request, state.thumb = self._frame, self._frame, thumb
            plans.append(_Plan(int(row), state, matrix))
        return plans, jobs

    def _paste(self, image: Image, dets: FaceDetections, plan: _Plan) -> bool:
        state = plan.state
        if state is None:
            return False
        if not usable(state, self._frame, self.policy):
            if state.synthetic is not None and not state.failed:
                self.stats.late_faces += 1
            return False
        if not covers(dets.xyxy[plan.row], plan.matrix, self.resolution):
            return False
        assert state.synthetic is not None
        if not paste(image, state.synthetic, plan.matrix, self.mask):
            return False
        self.stats.synthetic_faces += 1
        return True

    def _collect(self, results: list[Result]) -> None:
        for result in results:
            state = self.states.get(result.track_id)
            if state is None or state.requested != result.frame:
                continue  # evicted meanwhile
            state.requested = None
            if result.crop is None:
                state.failed = True
                self.stats.failures += 1
                continue
            state.synthetic, state.synthetic_frame, state.failed = result.crop, result.frame, False

    def _evict(self) -> None:
        old = [t for t, s in self.states.items() if self._frame - s.last_seen > self.policy.evict_after]
        for track in old:
            del self.states[track]
        if old:
            self.worker.evict(old)

    def close(self) -> None:
        self.worker.close()
        s = self.stats
        log.info(
            "diffusion: %d keyframes (%d failed) in %d batches, %.1f s busy; faces: %d synthetic, %d blurred (%d late)",
            s.keyframes, s.failures, self.worker.batches, self.worker.busy_seconds, s.synthetic_faces, s.blurred_faces, s.late_faces,
        )
