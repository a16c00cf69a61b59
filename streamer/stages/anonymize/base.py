"""Shared machinery: padded face regions and feathered masks."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from streamer.core.types import FaceDetections, FloatArray, Image


class Anonymizer(Protocol):
    def apply(self, image: Image, dets: FaceDetections) -> Image: ...


@dataclass(frozen=True)
class Region:
    """Integer pixel rectangle [x1, x2) x [y1, y2) clipped to the frame, plus the face size."""

    x1: int
    y1: int
    x2: int
    y2: int
    face_size: float
    # where the un-clipped padded box sits relative to the clipped one (for the mask)
    full: tuple[float, float, float, float]


def face_regions(dets: FaceDetections, shape: tuple[int, ...], padding: float) -> list[Region]:
    """Padded regions of the rows that must be anonymized (every row not marked visible)."""
    h, w = shape[:2]
    regions = []
    assert dets.visible is not None
    for box, visible in zip(dets.xyxy, dets.visible):
        if visible:
            continue
        x1, y1, x2, y2 = (float(v) for v in box)
        bw, bh = max(x2 - x1, 1.0), max(y2 - y1, 1.0)
        fx1, fy1, fx2, fy2 = x1 - padding * bw, y1 - padding * bh, x2 + padding * bw, y2 + padding * bh
        cx1, cy1 = max(0, int(np.floor(fx1))), max(0, int(np.floor(fy1)))
        cx2, cy2 = min(w, int(np.ceil(fx2))), min(h, int(np.ceil(fy2)))
        if cx2 - cx1 < 1 or cy2 - cy1 < 1:
            continue
        regions.append(Region(cx1, cy1, cx2, cy2, max(bw, bh), (fx1, fy1, fx2, fy2)))
    return regions


def feathered_mask(
    height: int, width: int, center: tuple[float, float], radii: tuple[float, float], feather: float,
    shape: str = "ellipse", outward: bool = False,
) -> FloatArray:
    """The one feathered mask every anonymizer pastes with: [height, width] in [0, 1], 1 inside the
    ellipse (or box) of ``center``/``radii`` (pixels). ``feather`` is a fraction of the radius over which
    it ramps to 0: inside the edge by default (the edge itself is 0), or ``outward`` past it (the whole
    ellipse is opaque; the diffusion paste, whose crop reaches beyond the face)."""
    ys = (np.arange(height, dtype=np.float32) + 0.5 - center[1]) / max(radii[1], 1e-6)
    xs = (np.arange(width, dtype=np.float32) + 0.5 - center[0]) / max(radii[0], 1e-6)
    if shape == "box":
        r = np.maximum(np.abs(ys)[:, None], np.abs(xs)[None, :])
    else:
        r = np.sqrt(ys[:, None] ** 2 + xs[None, :] ** 2)
    if feather <= 0:
        return (r <= 1.0).astype(np.float32)
    edge = 1.0 + feather if outward else 1.0
    return np.clip((edge - r) / feather, 0.0, 1.0).astype(np.float32)


def region_mask(region: Region, shape: str, feather: float) -> FloatArray:
    """Mask in [0,1], HxWx1, 1 inside the face ellipse (or box), ramping to 0 at its edge."""
    fx1, fy1, fx2, fy2 = region.full
    center = ((fx1 + fx2) / 2 - region.x1, (fy1 + fy2) / 2 - region.y1)
    radii = (max((fx2 - fx1) / 2, 0.5), max((fy2 - fy1) / 2, 0.5))
    mask = feathered_mask(region.y2 - region.y1, region.x2 - region.x1, center, radii, feather, shape)
    return mask[:, :, None]


def cover_box(mask: FloatArray, region: Region, padding: float) -> FloatArray:
    """``mask`` made fully opaque over the detector's box itself: whatever the shape, padding and
    feather, no pixel of the box (a chin, a forehead, a corner) keeps its original detail."""
    fx1, fy1, fx2, fy2 = region.full
    bw, bh = (fx2 - fx1) / (1 + 2 * padding), (fy2 - fy1) / (1 + 2 * padding)
    x1, y1 = int(np.floor(fx1 + padding * bw)) - region.x1, int(np.floor(fy1 + padding * bh)) - region.y1
    x2, y2 = int(np.ceil(fx2 - padding * bw)) - region.x1, int(np.ceil(fy2 - padding * bh)) - region.y1
    mask[max(0, y1) : max(0, y2), max(0, x1) : max(0, x2)] = 1.0
    return mask


class RegionAnonymizer(ABC):
    """Base for anonymizers that replace each face region with a filtered version of itself."""

    def __init__(self, padding: float = 0.4, feather: float = 0.15, shape: str = "ellipse") -> None:
        self.padding = padding
        self.feather = feather
        self.shape = shape

    def apply(self, image: Image, dets: FaceDetections) -> Image:
        """Anonymize every non-visible face of ``image`` in place and return it."""
        for region in face_regions(dets, image.shape, self.padding):
            roi = image[region.y1 : region.y2, region.x1 : region.x2]
            replaced = self.filter(roi, region)
            mask = cover_box(region_mask(region, self.shape, self.feather), region, self.padding)
            blended = roi.astype(np.float32) * (1.0 - mask) + replaced.astype(np.float32) * mask
            roi[...] = np.clip(blended + 0.5, 0, 255).astype(np.uint8)
        return image

    @abstractmethod
    def filter(self, roi: Image, region: Region) -> Image:
        """The anonymized version of ``roi`` (same shape)."""


