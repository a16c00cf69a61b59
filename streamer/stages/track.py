"""Tracking stage: ``Tracker.update(dets, frame_index) -> FaceDetections``.

A small SORT-style tracker: constant-velocity alpha-beta filter per track,
Hungarian assignment on IoU with a centre-distance fallback for fast motion,
and *coasting*: a track the detector misses stays in the output at its
predicted (slightly grown) box for ``max_coast`` frames, so a detector blink
never shows a face. norfair is not used because its releases pin numpy<2
while current OpenCV needs numpy>=2 (see README, "Tracker").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from streamer.core.boxes import iou_matrix
from streamer.core.types import FaceDetections, FloatArray
from streamer.stages.assign import linear_sum_assignment  # scipy.optimize: ~0.8 s of start-up

ALPHA = 0.85  # weight of a new measurement in the position estimate
BETA = 0.35  # weight of a new measurement in the velocity estimate
DAMPING = 0.95  # per-frame decay of the extrapolated velocity
MAX_GROW = 2.0  # a coasting box grows with its lag up to this factor


class Tracker(Protocol):
    def update(self, dets: FaceDetections, frame_index: int) -> FaceDetections: ...

    def predict(self, frame_index: int) -> FaceDetections: ...

    def reset(self) -> None: ...


@dataclass
class _Track:
    track_id: int
    state: FloatArray  # cx, cy, w, h
    velocity: FloatArray  # per frame
    landmarks: FloatArray | None  # [5,2] relative to the box: (p - centre) / size
    score: float
    last_frame: int
    hits: int = 1
    missed: int = 0
    measured: FloatArray | None = None  # cx, cy, w, h of the detection at ``last_frame``

    def predicted(self, frame_index: int) -> FloatArray:
        """Centre extrapolated at constant velocity; size held (a shrinking extrapolation could uncover a face)."""
        dt = max(0, frame_index - self.last_frame)
        steps = (1.0 - DAMPING**dt) / (1.0 - DAMPING)  # velocity decays while no measurement comes
        out = self.state.copy()
        out[:2] += self.velocity[:2] * steps
        return out


class SortTracker:
    """Tracks faces across frames and coasts through detector misses."""

    def __init__(
        self,
        max_coast: int = 30,
        iou_threshold: float = 0.1,
        max_center_jump: float = 1.0,
        box_grow_per_frame: float = 0.08,
    ) -> None:
        self.max_coast = max_coast
        self.iou_threshold = iou_threshold
        self.max_center_jump = max_center_jump
        self.box_grow_per_frame = box_grow_per_frame
        self._tracks: list[_Track] = []
        self._next_id = 1

    def reset(self) -> None:
        self._tracks = []

    @property
    def active_count(self) -> int:
        return len(self._tracks)

    def update(self, dets: FaceDetections, frame_index: int) -> FaceDetections:
        """Associate a detector result with the tracks; returns tracked and coasting faces."""
        predicted = np.array([_to_xyxy(t.predicted(frame_index)) for t in self._tracks], np.float32).reshape(-1, 4)
        pairs = self._associate(predicted, dets.xyxy)
        matched_tracks = {ti for ti, _ in pairs}
        matched_dets = {di for _, di in pairs}
        for ti, di in pairs:
            self._correct(self._tracks[ti], dets, di, frame_index)
        for ti, track in enumerate(self._tracks):
            if ti not in matched_tracks:
                track.missed += 1
        self._tracks = [t for t in self._tracks if t.missed <= self.max_coast]
        for di in range(len(dets)):
            if di not in matched_dets:
                self._spawn(dets, di, frame_index)
        return self._emit(frame_index)

    def predict(self, frame_index: int) -> FaceDetections:
        """Tracks at their predicted boxes, for frames the detector skips (``every_n`` > 1)."""
        return self._emit(frame_index)

    def _associate(self, predicted: FloatArray, boxes: FloatArray) -> list[tuple[int, int]]:
        if len(predicted) == 0 or len(boxes) == 0:
            return []
        iou = iou_matrix(predicted, boxes)
        dist = _center_distance(predicted, boxes)
        cost = np.where(iou >= self.iou_threshold, 1.0 - iou, 1.0 + dist)
        allowed = (iou >= self.iou_threshold) | (dist <= self.max_center_jump)
        cost = np.where(allowed, cost, 1e6)
        rows, cols = linear_sum_assignment(cost)
        return [(int(r), int(c)) for r, c in zip(rows, cols) if allowed[r, c]]

    def _correct(self, track: _Track, dets: FaceDetections, di: int, frame_index: int) -> None:
        dt = max(1, frame_index - track.last_frame)
        measured = _to_cxcywh(dets.xyxy[di])
        prior = track.predicted(frame_index)
        residual = measured - prior
        track.state = (prior + ALPHA * residual).astype(np.float32)
        track.velocity = (track.velocity + BETA * residual / dt).astype(np.float32)
        track.landmarks = _relative_landmarks(dets, di, measured)
        track.measured = measured
        track.score = float(dets.score[di])
        track.last_frame = frame_index
        track.hits += 1
        track.missed = 0

    def _spawn(self, dets: FaceDetections, di: int, frame_index: int) -> None:
        state = _to_cxcywh(dets.xyxy[di])
        landmarks = _relative_landmarks(dets, di, state)
        track = _Track(self._next_id, state, np.zeros(4, np.float32), landmarks, float(dets.score[di]), frame_index,
                       measured=state.copy())
        self._next_id += 1
        self._tracks.append(track)

    def _emit(self, frame_index: int) -> FaceDetections:
        if not self._tracks:
            return FaceDetections.empty()
        # a track measured in this frame is emitted at its detection (box and landmarks exactly where the
        # detector put them): the smoothed estimate lags a moving face, the more so the more frames a
        # loaded machine drops between two processed ones, and would leave part of the face showing
        states = np.stack([_emitted_state(t, frame_index) for t in self._tracks]).astype(np.float32)
        lags = np.array([max(0, frame_index - t.last_frame) for t in self._tracks], np.float32)
        coasting = np.array([t.missed > 0 for t in self._tracks])
        # every frame without a measurement (a miss, or a frame the detector skipped) widens the box
        grow = np.minimum(1.0 + self.box_grow_per_frame * lags, MAX_GROW)
        states[:, 2:] = (np.maximum(states[:, 2:], 1.0) * grow[:, None]).astype(np.float32)
        landmarks = np.stack([_absolute_landmarks(t.landmarks, s) for t, s in zip(self._tracks, states)])
        return FaceDetections(
            xyxy=np.stack([_to_xyxy(s) for s in states]),
            score=np.array([t.score for t in self._tracks], np.float32),
            landmarks=landmarks,
            track_id=np.array([t.track_id for t in self._tracks], np.int64),
            coasting=coasting,
        )


def _emitted_state(track: _Track, frame_index: int) -> FloatArray:
    """The measurement for a track detected in ``frame_index``; else its prediction joined with
    its last measurement (fail closed: a face the detector lost behind another one, or whose
    velocity a jittery box overestimated, is still where it was or where it was heading)."""
    if track.measured is not None and track.missed == 0 and track.last_frame == frame_index:
        return track.measured
    predicted = track.predicted(frame_index)
    if track.measured is None:
        return predicted
    a, b = _to_xyxy(predicted), _to_xyxy(track.measured)
    return _to_cxcywh(np.concatenate([np.minimum(a[:2], b[:2]), np.maximum(a[2:], b[2:])]))


def _to_cxcywh(box: FloatArray) -> FloatArray:
    x1, y1, x2, y2 = box
    return np.array([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1], np.float32)


def _to_xyxy(state: FloatArray) -> FloatArray:
    cx, cy, w, h = state
    return np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], np.float32)


def _center_distance(a: FloatArray, b: FloatArray) -> FloatArray:
    """Centre distance normalised by the larger of the two box diagonals."""
    ca = (a[:, None, :2] + a[:, None, 2:]) / 2
    cb = (b[None, :, :2] + b[None, :, 2:]) / 2
    da = np.linalg.norm(a[:, 2:] - a[:, :2], axis=1)[:, None]
    db = np.linalg.norm(b[:, 2:] - b[:, :2], axis=1)[None, :]
    return (np.linalg.norm(ca - cb, axis=2) / np.maximum(np.maximum(da, db), 1.0)).astype(np.float32)


def _relative_landmarks(dets: FaceDetections, di: int, state: FloatArray) -> FloatArray | None:
    if dets.landmarks is None:
        return None
    return ((dets.landmarks[di] - state[:2]) / np.maximum(state[2:], 1.0)).astype(np.float32)


def _absolute_landmarks(relative: FloatArray | None, state: FloatArray) -> FloatArray:
    if relative is None:  # a detector without landmarks: a neutral face layout inside the box
        relative = np.array([[-0.2, -0.1], [0.2, -0.1], [0.0, 0.05], [-0.15, 0.2], [0.15, 0.2]], np.float32)
    return (relative * state[2:] + state[:2]).astype(np.float32)
