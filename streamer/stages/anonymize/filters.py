"""Blur, pixelate and solid fill."""

from __future__ import annotations

import cv2
import numpy as np

from streamer.core.types import Image
from streamer.stages.anonymize.base import Region, RegionAnonymizer


class BlurAnonymizer(RegionAnonymizer):
    """Gaussian blur whose kernel is ``strength`` x the face size, and at least
    ``MIN_KERNEL`` pixels so that small (20-50 px) faces lose their detail too.

    Computed on a downscaled copy (the result is just as smooth, and the cost no
    longer grows with the kernel), then scaled back up.
    """

    SMALL_KERNEL = 9
    MIN_KERNEL = 31.0

    def __init__(
        self, strength: float = 1.5, padding: float = 0.4, feather: float = 0.15, shape: str = "ellipse"
    ) -> None:
        super().__init__(padding, feather, shape)
        self.strength = strength

    def filter(self, roi: Image, region: Region) -> Image:
        h, w = roi.shape[:2]
        kernel = max(self.MIN_KERNEL, self.strength * region.face_size)
        factor = min(1.0, self.SMALL_KERNEL / kernel)
        sw, sh = max(1, round(w * factor)), max(1, round(h * factor))
        small = cv2.resize(roi, (sw, sh), interpolation=cv2.INTER_AREA)
        k = self.SMALL_KERNEL if factor < 1.0 else int(kernel) | 1
        small = cv2.GaussianBlur(small, (k, k), 0, borderType=cv2.BORDER_REPLICATE)
        return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


class PixelateAnonymizer(RegionAnonymizer):
    """Mosaic with ``blocks`` cells across the face."""

    def __init__(
        self, blocks: int = 5, padding: float = 0.4, feather: float = 0.15, shape: str = "ellipse"
    ) -> None:
        super().__init__(padding, feather, shape)
        self.blocks = blocks

    def filter(self, roi: Image, region: Region) -> Image:
        h, w = roi.shape[:2]
        cell = max(1.0, region.face_size / self.blocks)
        sw, sh = max(1, round(w / cell)), max(1, round(h / cell))
        small = cv2.resize(roi, (sw, sh), interpolation=cv2.INTER_AREA)
        return cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST)


class SolidAnonymizer(RegionAnonymizer):
    """A solid colour (BGR)."""

    def __init__(
        self, color: tuple[int, int, int] = (0, 0, 0), padding: float = 0.4, feather: float = 0.15, shape: str = "ellipse"
    ) -> None:
        super().__init__(padding, feather, shape)
        self.color = np.array(color, np.uint8)

    def filter(self, roi: Image, region: Region) -> Image:
        return np.broadcast_to(self.color, roi.shape)


def blur_frame(image: Image) -> Image:
    """Fail-closed fallback: the whole frame blurred beyond recognition, in place."""
    h, w = image.shape[:2]
    small = cv2.resize(image, (max(1, w // 32), max(1, h // 32)), interpolation=cv2.INTER_AREA)
    image[...] = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    return image
