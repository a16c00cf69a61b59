"""Checks that an output frame hides the faces of its input frame and keeps the rest.

Used by tests, ``fawn bench`` (face recall of fawn and of deface on the same
clip) and evaluation. A face region counts as *left recognizable* when the
fine detail of the original survives in the output: the normalized
correlation of the band-passed inner face region stays high (with at least
NOISE_KEPT of the detail's amplitude: on a blurred 20 px face after H.264 the
correlation of what is left, 1-3 % of the amplitude, swings up to 0.5 with the
coding noise), or, over the whole box (an exposed chin, forehead or corner is a
leak), the correlation stays high with a real share of the original detail's amplitude. Video
compression keeps both near 1; blur, pixelation and fills bring them near 0.
A report over zero faces has recall NaN: "nothing checked" never passes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import cv2
import numpy as np

from streamer.core.types import FloatArray, Image

DETAIL_THRESHOLD = 0.35  # correlation above this: the face's detail is still there
KEPT_THRESHOLD = 0.25  # and (whole box) at least this share of its amplitude
NOISE_KEPT = 0.05  # inner region: a correlated signal under this share of the detail's amplitude is coding noise


def _inner(box: FloatArray, shape: tuple[int, ...], shrink: float = 0.15) -> tuple[int, int, int, int]:
    x1, y1, x2, y2 = (float(v) for v in box)
    dx, dy = (x2 - x1) * shrink, (y2 - y1) * shrink
    h, w = shape[:2]
    return (max(0, int(x1 + dx)), max(0, int(y1 + dy)), min(w, int(x2 - dx)), min(h, int(y2 - dy)))


def _band(gray: np.ndarray) -> np.ndarray:
    g = gray.astype(np.float32)
    return cv2.GaussianBlur(g, (0, 0), 0.8) - cv2.GaussianBlur(g, (0, 0), 2.5)


def _box_bands(original: Image, output: Image, box: FloatArray) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    """Both frames' band-passed grey face box, and the box's top-left corner. Filtered on the whole
    box once, the inner window is then cut out of it (:func:`_pair`): a filter run on the bare
    inner crop would invent detail at the crop's own borders (on a face cut to a 10-px strip by
    the frame edge, that border detail was most of the signal). Pixels outside the box are never used."""
    x1, y1, x2, y2 = _inner(box, original.shape, 0.0)
    if x2 - x1 < 4 or y2 - y1 < 4:  # no window of it is checked (:func:`_pair`): nothing to filter
        empty = np.zeros((0, 0), np.float32)
        return empty, empty, (x1, y1)
    a, b = (_band(cv2.cvtColor(image[y1:y2, x1:x2], cv2.COLOR_BGR2GRAY)) for image in (original, output))
    return a, b, (x1, y1)


def _pair(bands: tuple[np.ndarray, np.ndarray, tuple[int, int]], box: FloatArray, shape: tuple[int, ...],
          shrink: float) -> tuple[np.ndarray, np.ndarray] | None:
    """The mean-free band of both frames over the box shrunk by ``shrink``; None under 4 px."""
    x1, y1, x2, y2 = _inner(box, shape, shrink)
    if x2 - x1 < 4 or y2 - y1 < 4:
        return None
    a, b, (ox, oy) = bands
    a, b = a[y1 - oy : y2 - oy, x1 - ox : x2 - ox].ravel(), b[y1 - oy : y2 - oy, x1 - ox : x2 - ox].ravel()
    return a - a.mean(), b - b.mean()


def _correlation(pair: tuple[np.ndarray, np.ndarray] | None) -> float:
    if pair is None:
        return 0.0
    a, b = pair
    denom = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / denom) if denom > 1e-6 else 0.0


def _kept(pair: tuple[np.ndarray, np.ndarray] | None) -> float:
    if pair is None:
        return 0.0
    a, b = pair
    energy = float((a * a).sum())
    return float((a * b).sum() / energy) if energy > 1e-6 else 0.0


def detail_correlation(original: Image, output: Image, box: FloatArray, shrink: float = 0.15) -> float:
    """Correlation of the band-passed face region of two frames (1 = detail intact); by default
    the inner 70 % of the box (eyes, nose, mouth), ``shrink=0`` for the whole box."""
    return _correlation(_pair(_box_bands(original, output, box), box, original.shape, shrink))


def detail_kept(original: Image, output: Image, box: FloatArray, shrink: float = 0.0) -> float:
    """How much of the original's band-passed detail the output still carries over the whole box:
    the output's detail projected on the original's (1 = all of it, 0 = none). Unlike the
    correlation it does not count a faint, blurred trace of the face's outline as its detail."""
    return _kept(_pair(_box_bands(original, output, box), box, original.shape, shrink))


def face_hidden(original: Image, output: Image, box: FloatArray) -> bool:
    """Hidden when neither the inner face nor the whole box (an exposed chin, forehead or corner
    is a leak) keeps the original's detail (both frames' box is band-passed once for all four checks)."""
    bands = _box_bands(original, output, box)
    inner = _pair(bands, box, original.shape, 0.15)
    if _correlation(inner) >= DETAIL_THRESHOLD and _kept(inner) >= NOISE_KEPT:
        return False
    whole = _pair(bands, box, original.shape, 0.0)
    return _correlation(whole) < DETAIL_THRESHOLD or _kept(whole) < KEPT_THRESHOLD


def background_psnr(original: Image, output: Image, boxes: FloatArray, margin: float = 0.8) -> float:
    """PSNR outside the (generously enlarged) face boxes: the rest of the frame is preserved."""
    mask = np.ones(original.shape[:2], bool)
    h, w = original.shape[:2]
    for x1, y1, x2, y2 in boxes:
        mx, my = (x2 - x1) * margin, (y2 - y1) * margin
        mask[max(0, int(y1 - my)) : min(h, int(y2 + my)), max(0, int(x1 - mx)) : min(w, int(x2 + mx))] = False
    if not mask.any():
        return float("inf")
    diff = original[mask].astype(np.float32) - output[mask].astype(np.float32)
    mse = float((diff * diff).mean())
    return float("inf") if mse == 0 else 10.0 * np.log10(255.0**2 / mse)


@dataclass
class RecallReport:
    faces: int = 0
    hidden: int = 0
    leaked_frames: list[int] | None = None
    min_background_psnr: float = float("inf")

    @property
    def recall(self) -> float:
        """Share of face-frames hidden; NaN when no face was checked (never equal to 1.0)."""
        return self.hidden / self.faces if self.faces else float("nan")


def face_recall(
    pairs: Iterable[tuple[Image, Image, FloatArray]], min_face: float = 0.0
) -> RecallReport:
    """Over (original, output, ground-truth boxes) frames: how many face-frames are hidden."""
    report = RecallReport(leaked_frames=[])
    assert report.leaked_frames is not None
    for index, (original, output, boxes) in enumerate(pairs):
        for box in boxes:
            if min(box[2] - box[0], box[3] - box[1]) < min_face:
                continue
            report.faces += 1
            if face_hidden(original, output, box):
                report.hidden += 1
            elif not report.leaked_frames or report.leaked_frames[-1] != index:
                report.leaked_frames.append(index)
        report.min_background_psnr = min(report.min_background_psnr, background_psnr(original, output, boxes))
    return report
