"""Clips made from real face photos, and the check that an output hides every face."""

from __future__ import annotations

import io
from pathlib import Path

import av
import numpy as np

from streamer.io import demo
from streamer.tools import verify

SPEC = demo.demo_spec(width=320, height=240, seconds=0.5)


def write_clip(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    demo.write_clip(SPEC, path)
    return path


def decode(data: bytes | Path) -> list[np.ndarray]:
    source = str(data) if isinstance(data, Path) else io.BytesIO(data)
    with av.open(source) as container:
        return [f.to_ndarray(format="bgr24") for f in container.decode(video=0)]


def face_recall(output: bytes | Path) -> float:
    """Recall of the output's frames against the clip's ground-truth face boxes (1.0: every face hidden)."""
    truth = list(demo.render(SPEC))
    frames = decode(output)
    assert len(frames) == len(truth)
    return verify.face_recall((orig, got, gt) for (orig, gt), got in zip(truth, frames)).recall
