"""Data types shared by every stage: one checked detections type, one frame type."""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]
# uint8 HxWx3 BGR; typed loosely because OpenCV returns untyped arrays
Image = npt.NDArray[Any]


@dataclass
class FaceDetections:
    """Faces in one frame.

    ``xyxy`` float32 [N,4] in frame pixels, ``score`` float32 [N], ``landmarks``
    float32 [N,5,2] (eye, eye, nose, mouth-left, mouth-right) or None,
    ``track_id`` int64 [N] (-1 before tracking), ``identity`` one entry per row
    (None until decided, e.g. ``"registered:alice"`` or ``"unknown"``),
    ``coasting`` bool [N]: True for a track the detector missed in this frame
    (its box is predicted, and it is anonymized all the same),
    ``visible`` bool [N]: True only for a row the identity stage decided may be
    shown un-anonymized. It defaults to False: privacy fails closed.
    ``kind`` str [N] (numpy ``<U8``): what each row is, one of :data:`KINDS`
    (``"face"`` or ``"plate"``); it defaults to ``"face"`` for every row, so code
    that only knows faces is unchanged. Select with ``dets[dets.kind == "plate"]``.
    Rows that are not faces (plates) have no landmarks of their own: where they
    share a result with faces (:meth:`concat`) their landmarks are the box centre.
    """

    xyxy: FloatArray
    score: FloatArray
    landmarks: FloatArray | None = None
    track_id: IntArray | None = None
    identity: list[str | None] | None = None
    coasting: npt.NDArray[np.bool_] | None = None
    visible: npt.NDArray[np.bool_] | None = None
    kind: npt.NDArray[np.str_] | None = None

    def __post_init__(self) -> None:
        self.xyxy = np.asarray(self.xyxy, dtype=np.float32).reshape(-1, 4)
        n = len(self.xyxy)
        self.score = np.asarray(self.score, dtype=np.float32).reshape(-1)
        _check(len(self.score) == n, f"score has {len(self.score)} rows, xyxy has {n}")
        if self.landmarks is not None:
            self.landmarks = np.asarray(self.landmarks, dtype=np.float32)
            _check(self.landmarks.shape == (n, 5, 2), f"landmarks shape {self.landmarks.shape} != ({n}, 5, 2)")
        if self.track_id is None:
            self.track_id = np.full(n, -1, dtype=np.int64)
        self.track_id = np.asarray(self.track_id, dtype=np.int64).reshape(-1)
        _check(len(self.track_id) == n, f"track_id has {len(self.track_id)} rows, xyxy has {n}")
        if self.identity is None:
            self.identity = [None] * n
        _check(len(self.identity) == n, f"identity has {len(self.identity)} rows, xyxy has {n}")
        if self.coasting is None:
            self.coasting = np.zeros(n, dtype=bool)
        self.coasting = np.asarray(self.coasting, dtype=bool).reshape(-1)
        _check(len(self.coasting) == n, f"coasting has {len(self.coasting)} rows, xyxy has {n}")
        if self.visible is None:
            self.visible = np.zeros(n, dtype=bool)
        self.visible = np.asarray(self.visible, dtype=bool).reshape(-1)
        _check(len(self.visible) == n, f"visible has {len(self.visible)} rows, xyxy has {n}")
        self.kind = _kinds(self.kind, n)

    def __len__(self) -> int:
        return len(self.xyxy)

    @classmethod
    def empty(cls, with_landmarks: bool = True) -> FaceDetections:
        lm = np.zeros((0, 5, 2), np.float32) if with_landmarks else None
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), lm)

    def __getitem__(self, index: Any) -> FaceDetections:
        """Select rows with a boolean mask, an index array or a slice."""
        idx = np.arange(len(self))[index]
        idx = np.atleast_1d(idx)
        assert self.identity is not None and self.track_id is not None
        assert self.coasting is not None and self.visible is not None
        return FaceDetections(
            xyxy=self.xyxy[idx],
            score=self.score[idx],
            landmarks=None if self.landmarks is None else self.landmarks[idx],
            track_id=self.track_id[idx],
            identity=[self.identity[i] for i in idx],
            coasting=self.coasting[idx],
            visible=self.visible[idx],
            kind=None if self.kind is None else self.kind[idx],
        )

    @classmethod
    def concat(cls, parts: list[FaceDetections]) -> FaceDetections:
        """The rows of ``parts`` in order (e.g. a frame's faces, then its plates).

        Landmarks are kept when any part has them; rows of a part without them
        (plates) get their box centre for all 5 points.
        """
        if not parts:
            return cls.empty()
        with_landmarks = any(p.landmarks is not None for p in parts)
        return cls(
            xyxy=np.concatenate([p.xyxy for p in parts]),
            score=np.concatenate([p.score for p in parts]),
            landmarks=np.concatenate([_landmarks_or_centre(p) for p in parts]) if with_landmarks else None,
            track_id=np.concatenate([np.asarray(p.track_id) for p in parts]),
            identity=[i for p in parts for i in (p.identity or [])],
            coasting=np.concatenate([np.asarray(p.coasting) for p in parts]),
            visible=np.concatenate([np.asarray(p.visible) for p in parts]),
            kind=np.concatenate([np.asarray(p.kind) for p in parts]),
        )

    @property
    def area(self) -> FloatArray:
        wh = np.clip(self.xyxy[:, 2:] - self.xyxy[:, :2], 0, None)
        return (wh[:, 0] * wh[:, 1]).astype(np.float32)


KINDS = ("face", "plate")  # the values of FaceDetections.kind


def _kinds(kind: Any, n: int) -> npt.NDArray[np.str_]:
    if kind is None:
        return np.full(n, "face", dtype="<U8")
    if isinstance(kind, str):  # one kind for every row
        _check(kind in KINDS, f"kind '{kind}' is not valid (valid: {', '.join(KINDS)})")
        return np.full(n, kind, dtype="<U8")
    out = np.asarray(kind, dtype="<U8").reshape(-1)
    _check(len(out) == n, f"kind has {len(out)} rows, xyxy has {n}")
    bad = sorted(set(out.tolist()) - set(KINDS))
    _check(not bad, f"kind {bad} is not valid (valid: {', '.join(KINDS)})")
    return out


def _landmarks_or_centre(dets: FaceDetections) -> FloatArray:
    if dets.landmarks is not None:
        return dets.landmarks
    centre = (dets.xyxy[:, :2] + dets.xyxy[:, 2:]) / 2
    return np.repeat(centre[:, None, :], 5, axis=1).astype(np.float32)


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(f"FaceDetections: {message}")


@dataclass
class Frame:
    """One decoded video frame travelling through the pipeline.

    ``image`` is HxWx3 uint8 BGR (OpenCV order). ``pts``/``time_base`` are the
    source timestamps (kept on output, so variable frame rate survives).
    ``t_decoded`` is ``time.monotonic()`` when the frame left the decoder,
    used for latency stats.
    """

    image: Image
    index: int
    pts: int | None = None
    time_base: Fraction | None = None
    t_decoded: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def height(self) -> int:
        return int(self.image.shape[0])

    @property
    def width(self) -> int:
        return int(self.image.shape[1])


@dataclass(frozen=True)
class StreamInfo:
    """What a source tells the sink about its video (and audio, for passthrough).

    ``audio`` is the PyAV input audio stream to copy packets from (files only),
    or None. ``live`` sources (RTSP, webcams) drop frames when the pipeline
    falls behind; files never do.
    """

    name: str
    width: int
    height: int
    fps: float
    time_base: Fraction
    live: bool
    audio: Any = None
    frames: int | None = None  # total frames when known (files), for progress bars
