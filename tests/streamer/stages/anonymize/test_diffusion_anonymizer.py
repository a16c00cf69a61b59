"""Keyframes, per-track state and every fallback of DiffusionAnonymizer, with a fake face generator.

The generator stands in for the sampler (tested on the tiny model elsewhere)
so timing (late results) and failures can be controlled exactly.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import pytest

from streamer.core.types import FaceDetections, Image
from streamer.stages.anonymize.diffusion.anonymizer import (
    DiffusionAnonymizer,
    KeyframePolicy,
    TrackState,
    usable,
    wants_keyframe,
)
from streamer.stages.anonymize.diffusion.crop import face_mask
from streamer.stages.anonymize.diffusion.worker import DiffusionWorker
from streamer.stages.anonymize.filters import BlurAnonymizer
from streamer.stages.detect import CenterFaceDetector

SIZE = 64


class FakeGenerator:
    """A flat synthetic face per track (grey level from the track id); can fail or block on demand."""

    def __init__(self) -> None:
        self.calls: list[list[int]] = []
        self.fail = False
        self.gate: threading.Event | None = None
        self.identities_made: list[int] = []

    def generate(self, crops: list[Image], track_ids: list[int], known: dict[int, Any]) -> tuple[list[Image], dict[int, Any]]:
        if self.gate is not None:
            self.gate.wait(10)
        self.calls.append(list(track_ids))
        if self.fail:
            raise RuntimeError("engine exploded")
        made = {t: f"identity-{t}" for t in track_ids if t not in known}
        self.identities_made += list(made)
        return [np.full((SIZE, SIZE, 3), 40 * t % 256, np.uint8) for t in track_ids], made


def _anonymizer(gen: FakeGenerator, budget_ms: float = 5000.0, **policy: Any) -> DiffusionAnonymizer:
    mask = face_mask(SIZE, 0.2)
    worker = DiffusionWorker(gen, mask, max_batch=4, colour_match=False)
    return DiffusionAnonymizer(worker, SIZE, mask, BlurAnonymizer(), KeyframePolicy(**policy), budget_ms)


@pytest.fixture(scope="module")
def scene(demo_frames: list, detector: CenterFaceDetector) -> tuple[Image, FaceDetections]:
    image = demo_frames[0][0]
    dets = detector.detect(image)
    dets.track_id = np.array([1, 2])
    return image, dets


def _centre(image: Image, dets: FaceDetections, row: int) -> np.ndarray:
    x1, y1, x2, y2 = dets.xyxy[row].astype(int)
    return image[(y1 + y2) // 2 - 2 : (y1 + y2) // 2 + 2, (x1 + x2) // 2 - 2 : (x1 + x2) // 2 + 2].astype(int)


def test_synthetic_face_pasted_per_track_and_batched(scene: tuple[Image, FaceDetections]) -> None:
    image, dets = scene
    gen = FakeGenerator()
    anon = _anonymizer(gen)
    try:
        out = anon.apply(image.copy(), dets)
    finally:
        anon.close()
    assert gen.calls == [[1, 2]]  # both faces of the frame in one batch
    assert np.all(np.abs(_centre(out, dets, 0) - 40) <= 1)
    assert np.all(np.abs(_centre(out, dets, 1) - 80) <= 1)
    assert anon.stats.synthetic_faces == 2 and anon.stats.blurred_faces == 0


def test_keyframes_follow_interval_and_similarity_filter(scene: tuple[Image, FaceDetections]) -> None:
    image, dets = scene
    gen = FakeGenerator()
    anon = _anonymizer(gen, interval=3, change_threshold=0.01)
    try:
        for _ in range(7):  # the same frame again and again: no change, no new keyframe
            anon.apply(image.copy(), dets)
        assert len(gen.calls) == 1
        brighter = np.clip(image.astype(int) + 60, 0, 255).astype(np.uint8)
        anon.apply(brighter, dets)  # changed and interval passed: keyframe
        assert len(gen.calls) == 2
        anon.apply(image.copy(), dets)  # changed again, but within the interval
        assert len(gen.calls) == 2
    finally:
        anon.close()
    assert gen.identities_made == [1, 2]  # identities are made once per track


def test_blur_until_the_first_synthetic_face(scene: tuple[Image, FaceDetections]) -> None:
    image, dets = scene
    gen = FakeGenerator()
    gen.gate = threading.Event()
    anon = _anonymizer(gen, budget_ms=0.0)
    try:
        out = anon.apply(image.copy(), dets)  # the worker is blocked: nothing ready
        assert anon.stats.blurred_faces == 2 and anon.stats.synthetic_faces == 0
        assert not np.array_equal(out, image)
        gen.gate.set()
        anon.worker.wait({(1, 0), (2, 0)}, 5.0)
        anon.apply(image.copy(), dets)
        assert anon.stats.synthetic_faces == 2
    finally:
        gen.gate.set()
        anon.close()


def test_failed_keyframe_blurs_then_retries(scene: tuple[Image, FaceDetections]) -> None:
    image, dets = scene
    gen = FakeGenerator()
    gen.fail = True
    anon = _anonymizer(gen, interval=2)
    try:
        out = anon.apply(image.copy(), dets)
        assert anon.stats.failures == 2 and anon.stats.blurred_faces == 2
        assert not np.allclose(_centre(out, dets, 0), 40, atol=1)
        anon.apply(image.copy(), dets)  # within the retry interval: still blurred, no new call
        assert len(gen.calls) == 1
        gen.fail = False
        out = anon.apply(image.copy(), dets)  # retried and succeeded
        assert len(gen.calls) == 2 and np.all(np.abs(_centre(out, dets, 0) - 40) <= 1)
    finally:
        anon.close()


def test_late_keyframe_falls_back_to_blur(scene: tuple[Image, FaceDetections]) -> None:
    image, dets = scene
    gen = FakeGenerator()
    anon = _anonymizer(gen, interval=1, change_threshold=0.0, max_lag=2)
    try:
        anon.apply(image.copy(), dets)
        assert anon.stats.synthetic_faces == 2
        gen.gate = threading.Event()  # the worker now hangs on the next batch
        anon.latency_budget = 0.0
        shifted = np.roll(image, 3, axis=1)
        for _ in range(3):  # requested keyframe pending for 0..2 frames: old synthetic face still shown
            anon.apply(shifted.copy(), dets)
        assert anon.stats.synthetic_faces == 8 and anon.stats.late_faces == 0
        anon.apply(shifted.copy(), dets)  # 3 frames late > max_lag: blurred
        assert anon.stats.late_faces == 2 and anon.stats.blurred_faces == 2
    finally:
        if gen.gate is not None:
            gen.gate.set()
        anon.close()


def test_rows_without_track_or_landmarks_are_blurred_and_visible_rows_kept(scene: tuple[Image, FaceDetections]) -> None:
    image, dets = scene
    gen = FakeGenerator()
    anon = _anonymizer(gen)
    try:
        untracked = FaceDetections(dets.xyxy, dets.score, dets.landmarks, track_id=np.array([-1, 2]))
        anon.apply(image.copy(), untracked)
        assert gen.calls == [[2]] and anon.stats.blurred_faces == 1
        no_landmarks = FaceDetections(dets.xyxy, dets.score, None, track_id=np.array([1, 2]))
        anon.apply(image.copy(), no_landmarks)
        assert anon.stats.blurred_faces == 3
        broken = dets.landmarks.copy()
        broken[0] = broken[0, 0]  # five coincident points: no alignment
        broken[1, 2] = np.nan
        anon.apply(image.copy(), FaceDetections(dets.xyxy, dets.score, broken, track_id=np.array([1, 2])))
        assert anon.stats.blurred_faces == 5
        shown = FaceDetections(dets.xyxy, dets.score, dets.landmarks, track_id=np.array([1, 2]), visible=np.array([True, False]))
        out = anon.apply(image.copy(), shown)
        x1, y1, x2, y2 = dets.xyxy[0].astype(int)
        assert np.array_equal(out[y1:y2, x1:x2], image[y1:y2, x1:x2])
    finally:
        anon.close()


def test_tracks_are_evicted_after_leaving(scene: tuple[Image, FaceDetections]) -> None:
    image, dets = scene
    gen = FakeGenerator()
    anon = _anonymizer(gen, evict_after=2)
    try:
        anon.apply(image.copy(), dets)
        for _ in range(4):
            anon.apply(image.copy(), FaceDetections.empty())
        assert anon.states == {}
        anon.apply(image.copy(), dets)  # back: a new identity is made (the worker forgot the old one)
        assert gen.identities_made == [1, 2, 1, 2]
    finally:
        anon.close()


def test_policy_functions() -> None:
    policy = KeyframePolicy(interval=4, change_threshold=0.1, max_lag=3)
    thumb = np.zeros((4, 4), np.float32)
    state = TrackState(last_seen=0)
    assert wants_keyframe(state, 0, thumb, policy)
    state.requested = state.last_request = 0
    assert not wants_keyframe(state, 10, thumb, policy)  # one in flight
    assert not usable(state, 1, policy)  # nothing yet
    state.requested, state.synthetic, state.thumb = None, np.zeros((2, 2, 3), np.uint8), thumb
    assert usable(state, 5, policy)
    assert not wants_keyframe(state, 10, thumb, policy)  # unchanged face
    assert wants_keyframe(state, 10, thumb + 0.5, policy)
    assert not wants_keyframe(state, 3, thumb + 0.5, policy)  # too soon
    state.requested = 6
    assert usable(state, 9, policy) and not usable(state, 10, policy)
