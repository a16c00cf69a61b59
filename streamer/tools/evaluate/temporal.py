"""Temporal stability of anonymized video, per track.

- identity stability: mean cosine similarity between the identity embeddings of a
  track's anonymized face in consecutive sampled frames (1: the replacement keeps
  one look; low: the face shown changes from frame to frame). The same number on
  the original faces is the reference.
- flicker: mean absolute grey-level change (0..255) of a track's aligned face crop
  between consecutive sampled frames, anonymized minus original (0: the
  anonymization adds no flicker of its own beyond the motion already there).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from streamer.core.types import FloatArray, Image


@dataclass(frozen=True)
class TrackSample:
    """One face of one track in one sampled frame: its identity embedding and aligned crop."""

    track: int
    frame: int
    embedding: FloatArray
    crop: Image


def _consecutive(samples: Sequence[TrackSample]) -> list[tuple[TrackSample, TrackSample]]:
    by_track: dict[int, list[TrackSample]] = defaultdict(list)
    for s in samples:
        by_track[s.track].append(s)
    pairs: list[tuple[TrackSample, TrackSample]] = []
    for track_samples in by_track.values():
        ordered = sorted(track_samples, key=lambda s: s.frame)
        pairs.extend(zip(ordered[:-1], ordered[1:]))
    return pairs


def identity_stability(samples: Sequence[TrackSample]) -> float | None:
    """Mean cosine similarity of consecutive embeddings within each track (None without pairs)."""
    pairs = _consecutive(samples)
    if not pairs:
        return None
    sims = [float(np.dot(a.embedding, b.embedding)) for a, b in pairs]
    return float(np.mean(sims))


def _gray(crop: Image) -> FloatArray:
    g = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY) if crop.ndim == 3 else crop
    return np.asarray(g, np.float32)


def flicker(samples: Sequence[TrackSample]) -> float | None:
    """Mean absolute grey-level change of consecutive aligned crops within each track."""
    pairs = _consecutive(samples)
    if not pairs:
        return None
    return float(np.mean([np.abs(_gray(a.crop) - _gray(b.crop)).mean() for a, b in pairs]))
