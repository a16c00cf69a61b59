"""Cut detection: a jump between consecutive frames forces a detection."""

from __future__ import annotations

import cv2
import numpy as np

from streamer.core.types import Image


class CutDetector:
    """Spots a jump between consecutive frames: a replayed file, a switched camera, a sudden move.

    With ``every_n`` > 1 the processor predicts tracks between detections; after a
    jump those predictions cover where the faces *were*, so the frame after a
    cut must be detected (the processor detects on the cut frame itself). Measured on 64x48 grey thumbnails: a cut when more
    than ``fraction`` of the pixels change by more than ``level``. (The demo's
    moving faces change at most ~1.2% of them per frame; its replay jump 18%.)
    """

    def __init__(self, level: int = 40, fraction: float = 0.03) -> None:
        self.level = level
        self.fraction = fraction
        self._last: np.ndarray | None = None

    def __call__(self, image: Image) -> bool:
        gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
        thumb = cv2.resize(gray, (64, 48), interpolation=cv2.INTER_AREA).astype(np.int16)
        last, self._last = self._last, thumb
        if last is None:
            return True
        return bool(np.mean(np.abs(thumb - last) > self.level) > self.fraction)
