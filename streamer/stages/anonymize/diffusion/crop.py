"""Aligned whole-face crops, paste-back with a feathered mask, and colour matching.

The model sees a square crop with the whole head, aligned from the detector's
5 landmarks onto :data:`FACE_TEMPLATE` (the ArcFace template shrunk 0.8x
about the centre: eye distance about a quarter of the crop, eyes at 47% and
mouth at 76% of its height, like FFHQ-aligned faces). The synthetic crop goes
back through the inverse of the same similarity transform, only inside the
face's footprint, blended with an elliptical mask that is opaque over the
face and feathered outside it.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from streamer.core.types import FloatArray, Image
from streamer.stages.anonymize.base import feathered_mask
from streamer.stages.identity.align import (
    ARCFACE_TEMPLATE_112,
    ellipse_covers_box,
    similarity_transform,
    transform_points,
)

Matrix = npt.NDArray[np.float64]

# landmark template on the unit square (multiply by the crop size)
FACE_TEMPLATE: FloatArray = (0.5 + 0.8 * (ARCFACE_TEMPLATE_112 / 112.0 - 0.5)).astype(np.float32)
# the face ellipse on the unit square: centre and radii (forehead to chin, cheek to cheek)
MASK_CENTER = (0.5, 0.56)
MASK_RADII = (0.33, 0.40)


def crop_matrix(landmarks: FloatArray, size: int) -> Matrix:
    """2x3 similarity transform from frame pixels to crop pixels."""
    return similarity_transform(landmarks, FACE_TEMPLATE * size)


def warp_crop(image: Image, matrix: Matrix, size: int) -> Image:
    """The aligned ``size`` x ``size`` crop (edges replicated where the head leaves the frame)."""
    crop: Image = cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return crop


def thumbnail(image: Image, matrix: Matrix, size: int, side: int = 24) -> FloatArray:
    """A small grey aligned crop (for the keyframe similarity filter), values in [0, 1]."""
    scaled = matrix * (side / size)
    small = cv2.warpAffine(image, scaled, (side, side), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REPLICATE)
    grey = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY).astype(np.float32) / 255.0
    return grey


@dataclass(frozen=True)
class FaceMask:
    """The paste mask of one crop size: ``alpha`` [size,size] in [0,1] and the corners of its non-zero part."""

    alpha: FloatArray
    corners: FloatArray

    @property
    def size(self) -> int:
        return int(self.alpha.shape[0])


def face_mask(size: int, feather: float) -> FaceMask:
    """1 inside the face ellipse, ramping to 0 over ``feather`` (a fraction of the radius) past its edge."""
    center = (MASK_CENTER[0] * size, MASK_CENTER[1] * size)
    alpha = feathered_mask(size, size, center, (MASK_RADII[0] * size, MASK_RADII[1] * size), feather, outward=True)
    ys_nz, xs_nz = np.nonzero(alpha > 0)
    x1, x2, y1, y2 = xs_nz.min(), xs_nz.max() + 1, ys_nz.min(), ys_nz.max() + 1
    corners = np.array([[x1, y1], [x2, y1], [x1, y2], [x2, y2]], np.float32)
    return FaceMask(alpha, corners)


def covers(box: FloatArray, matrix: Matrix, size: int, inset: float = 0.9) -> bool:
    """Whether the opaque part of the mask covers the ellipse inscribed in the detector's ``box`` (shrunk by ``inset``).

    If not (odd landmarks, a box much larger than the landmarks say), the
    synthetic face would leave part of the real face showing: blur instead.
    """
    center = (MASK_CENTER[0] * size, MASK_CENTER[1] * size)
    return ellipse_covers_box(box, matrix, center, (MASK_RADII[0] * size, MASK_RADII[1] * size), inset)


@dataclass(frozen=True)
class Footprint:
    """Where a crop lands in the frame: the clipped rectangle and the crop-from-ROI matrix."""

    x1: int
    y1: int
    x2: int
    y2: int
    roi_to_crop: Matrix


def footprint(matrix: Matrix, shape: tuple[int, ...], mask: FaceMask) -> Footprint | None:
    """The frame rectangle covering the mask's non-zero part, or None when it is outside the frame."""
    inverse = np.asarray(cv2.invertAffineTransform(matrix), np.float64)
    frame = transform_points(inverse, mask.corners)
    h, w = shape[:2]
    x1, y1 = max(0, int(np.floor(frame[:, 0].min()))), max(0, int(np.floor(frame[:, 1].min())))
    x2, y2 = min(w, int(np.ceil(frame[:, 0].max()))), min(h, int(np.ceil(frame[:, 1].max())))
    if x2 - x1 < 1 or y2 - y1 < 1:
        return None
    shift = np.array([[1, 0, x1], [0, 1, y1], [0, 0, 1]], np.float64)
    return Footprint(x1, y1, x2, y2, (np.vstack([matrix, [0, 0, 1]]) @ shift)[:2])


def paste(image: Image, crop: Image, matrix: Matrix, mask: FaceMask) -> bool:
    """Blend ``crop`` (aligned by ``matrix``) into ``image`` in place under ``mask``; False if off-frame."""
    where = footprint(matrix, image.shape, mask)
    if where is None:
        return False
    w, h = where.x2 - where.x1, where.y2 - where.y1
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    face = cv2.warpAffine(crop, where.roi_to_crop, (w, h), flags=flags, borderMode=cv2.BORDER_REPLICATE)
    alpha = cv2.warpAffine(mask.alpha, where.roi_to_crop, (w, h), flags=flags, borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
    roi = image[where.y1 : where.y2, where.x1 : where.x2]
    a = alpha[:, :, None]
    roi[...] = np.clip(roi.astype(np.float32) * (1.0 - a) + face.astype(np.float32) * a + 0.5, 0, 255).astype(np.uint8)
    return True


def match_colour(synthetic: Image, original: Image, mask: FloatArray, max_gain: float = 2.0) -> Image:
    """Shift the synthetic face's colour statistics (Lab mean and spread, inside ``mask``) to the original's skin.

    The synthetic face then sits in the frame's lighting and white balance
    without carrying any of the original's features.
    """
    weights = (mask > 0.5).ravel()
    if weights.sum() < 16:
        return synthetic
    src = cv2.cvtColor(synthetic, cv2.COLOR_BGR2LAB).astype(np.float32).reshape(-1, 3)
    ref = cv2.cvtColor(original, cv2.COLOR_BGR2LAB).astype(np.float32).reshape(-1, 3)
    s_mean, s_std = src[weights].mean(0), src[weights].std(0) + 1e-3
    r_mean, r_std = ref[weights].mean(0), ref[weights].std(0) + 1e-3
    gain = np.clip(r_std / s_std, 1.0 / max_gain, max_gain)
    out = (src - s_mean) * gain + r_mean
    lab = np.clip(out, 0, 255).astype(np.uint8).reshape(synthetic.shape)
    result: Image = cv2.cvtColor(lab, cv2.COLOR_LAB2BGR)
    return result
