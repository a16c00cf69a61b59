"""Dashcam-style image sequences built from real photos: 1080p frames of a real scene with small
pedestrians' faces (real face photos, 24-40 px) and camera motion (a crop sliding over the scene)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from streamer.core.config import presets_dir
from streamer.core.types import FloatArray, Image
from streamer.io import demo

WIDTH, HEIGHT = 1920, 1080


@dataclass(frozen=True)
class Sequence:
    folder: Path
    names: list[str]
    frames: list[Image]  # what was written (BGR), for the oracle
    boxes: list[FloatArray]  # ground-truth face boxes per frame


def scene(width: int = WIDTH + 240, height: int = HEIGHT + 60) -> Image:
    """scikit-image's rocket photo (a real outdoor scene) scaled past 1080p: the street the camera drives along."""
    from skimage import data

    return cv2.resize(cv2.cvtColor(data.rocket(), cv2.COLOR_RGB2BGR), (width, height), interpolation=cv2.INTER_CUBIC)


def render(n: int = 6, width: int = WIDTH, height: int = HEIGHT) -> list[tuple[Image, FloatArray]]:
    """``n`` frames: the camera pans 24 px a frame; three pedestrians' faces, 24-40 px wide, walk."""
    photos = demo.default_photos()
    base = scene(width + 24 * n + 40, height + 40)
    walkers = [(photos[0], 40.0, 0.30, 0.55, 6.0), (photos[1], 32.0, 0.55, 0.60, -4.0), (photos[0], 26.0, 0.78, 0.50, 3.0)]
    out = []
    for i in range(n):
        world = base.copy()
        boxes = []
        for photo, size, fx, fy, vx in walkers:
            actor = demo.Actor(photo, size, (0, 0), (0, 0))
            box = demo._paste(world, actor, fx * width + 24 * i + vx * i, fy * height, size)
            if box is not None:
                boxes.append(box)
        x0 = 24 * i  # camera motion: the crop slides over the scene
        frame = np.ascontiguousarray(world[20 : 20 + height, x0 : x0 + width])
        gt = np.array(boxes, np.float32).reshape(-1, 4) - np.array([x0, 20, x0, 20], np.float32)
        out.append((frame, gt))
    return out


def write_sequence(folder: Path, n: int = 6, suffix: str = ".jpg", width: int = WIDTH, height: int = HEIGHT,
                   quality: int = 95) -> Sequence:
    """Write the frames as ``frame_1.jpg`` ... ``frame_N.jpg`` (natural names: frame_10 after frame_9)."""
    folder.mkdir(parents=True, exist_ok=True)
    names, frames, boxes = [], [], []
    for i, (frame, gt) in enumerate(render(n, width, height), 1):
        name = f"frame_{i}{suffix}"
        params = [cv2.IMWRITE_JPEG_QUALITY, quality] if suffix in (".jpg", ".jpeg") else []
        assert cv2.imwrite(str(folder / name), frame, params)
        written = cv2.imread(str(folder / name))
        names.append(name)
        frames.append(written)
        boxes.append(gt)
    return Sequence(folder, names, frames, boxes)


def dashcam_preset() -> dict[str, Any]:
    """The shipped dashcam preset as a dict."""
    import yaml

    data: dict[str, Any] = yaml.safe_load((presets_dir() / "dashcam.yaml").read_text(encoding="utf-8"))
    return data


def dashcam_config_with_plates(folder: Path, plate_model: str) -> Path:
    """The dashcam preset with the plate model on (its plate settings as they are), written to ``folder``."""
    import yaml

    preset = dashcam_preset()
    preset["plates"]["model"] = plate_model
    path = folder / "dashcam-plates.yaml"
    path.write_text(yaml.safe_dump(preset), encoding="utf-8")
    return path
