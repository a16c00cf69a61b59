"""Temporal stability metrics with known answers."""

import numpy as np
import pytest

from streamer.tools.evaluate.temporal import TrackSample, flicker, identity_stability


def _sample(track: int, frame: int, vec: list[float], grey: int) -> TrackSample:
    emb = np.array(vec, np.float32) / np.linalg.norm(vec)
    return TrackSample(track, frame, emb, np.full((8, 8, 3), grey, np.uint8))


def test_a_steady_track_is_stable_and_does_not_flicker() -> None:
    samples = [_sample(1, f, [1, 0], 100) for f in range(4)]
    assert identity_stability(samples) == pytest.approx(1.0)
    assert flicker(samples) == 0.0


def test_known_changes_between_frames() -> None:
    # track 1 alternates between orthogonal looks; track 2 steps by 10 grey levels; frames out of order
    samples = [_sample(1, 2, [0, 1], 10), _sample(1, 0, [1, 0], 10), _sample(1, 1, [0, 1], 10),
               _sample(2, 0, [1, 0], 0), _sample(2, 1, [1, 0], 10)]
    assert identity_stability(samples) == pytest.approx((0 + 1 + 1) / 3)
    assert flicker(samples) == pytest.approx((0 + 0 + 10) / 3)


def test_single_frames_have_no_pairs() -> None:
    assert identity_stability([_sample(1, 0, [1, 0], 0), _sample(2, 0, [1, 0], 0)]) is None
    assert flicker([]) is None
