"""SCRFD (insightface packs) as a selectable face detector: ``detector.backend: scrfd``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnx", reason="needs onnx to build the tiny SCRFD")

from streamer.core.config import load_config  # noqa: E402
from streamer.core.types import Frame  # noqa: E402
from streamer.io import demo  # noqa: E402
from streamer.runtime.processor import build_processor  # noqa: E402
from streamer.stages.scrfd import ScrfdDetector  # noqa: E402
from tests.streamer.stages.identity.test_embed import build_tiny_scrfd  # noqa: E402


def test_backend_scrfd_runs_the_pack_through_the_processor(tmp_path: Path) -> None:
    """The config picks SCRFD from a pack folder; its faces are anonymized like CenterFace's (a tiny
    random-init SCRFD in buffalo_l's layout: its detections are what gets blurred)."""
    build_tiny_scrfd(tmp_path / "buffalo_l" / "det_10g.onnx")
    cfg = load_config(None, {"detector.backend": "scrfd", "detector.model": str(tmp_path), "detector.threshold": 0.3})
    proc = build_processor(cfg)
    assert isinstance(proc.detector, ScrfdDetector)
    image = demo.grace_hopper().image
    original = image.copy()
    found = proc.detector.detect(original.copy())
    assert len(found) >= 1  # the tiny model fires somewhere on a real photo
    tracked = proc.process(Frame(image, 0))
    assert len(tracked) == len(found) and not bool(np.asarray(tracked.visible).any())
    x1, y1, x2, y2 = (int(v) for v in found.xyxy[0])
    assert not np.array_equal(image[y1:y2, x1:x2], original[y1:y2, x1:x2])  # the detection was anonymized
    proc.close()
