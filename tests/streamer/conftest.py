"""Fixtures for the stage tests: real face frames from streamer.io.demo and the real detector."""

from __future__ import annotations

import numpy as np
import pytest

from streamer.core.types import Image
from streamer.io import demo
from streamer.stages.detect import CenterFaceDetector


@pytest.fixture(scope="session")
def demo_frames() -> list[tuple[Image, np.ndarray]]:
    """3 s of the demo clip (640x480, 30 fps): frames and ground-truth face boxes."""
    return list(demo.render(demo.demo_spec(seconds=3.0)))


@pytest.fixture(scope="session")
def detector() -> CenterFaceDetector:
    return CenterFaceDetector(threads=2)
