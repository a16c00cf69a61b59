"""The built-in demo clip: real face photos moving over a background.

The photos ship inside installed packages (scikit-image's ``astronaut``,
matplotlib's ``grace_hopper.jpg``; insightface's ``t1.jpg`` group photo when
that wheel is present), so the clip is made in code and the ground-truth face
box of every frame is known exactly. Tests and benchmarks use the same clip.
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from streamer.core.errors import SourceError
from streamer.core.types import FloatArray, Image


@dataclass(frozen=True)
class FacePhoto:
    """A real photo and the face box in it (x1, y1, x2, y2, measured once)."""

    name: str
    image: Image
    box: tuple[float, float, float, float]


@dataclass(frozen=True)
class Actor:
    """One face moving through the clip: size in pixels (face box width) and path."""

    photo: FacePhoto
    size: float
    start: tuple[float, float]  # centre, as a fraction of the frame
    velocity: tuple[float, float]  # fraction of the frame per second
    wobble: float = 0.0  # size oscillation, fraction of size


@dataclass(frozen=True)
class ClipSpec:
    width: int = 640
    height: int = 480
    fps: int = 30
    seconds: float = 6.0
    actors: tuple[Actor, ...] = field(default_factory=tuple)
    motion_blur: int = 0  # kernel length in pixels, 0 = none
    brightness: float = 1.0
    seed: int = 0

    @property
    def n_frames(self) -> int:
        return int(round(self.seconds * self.fps))


def astronaut() -> FacePhoto:
    from skimage import data

    return FacePhoto("astronaut", cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR), (182, 58, 270, 178))


def grace_hopper() -> FacePhoto:
    import matplotlib

    path = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    image = cv2.imread(str(path))
    if image is None:
        raise SourceError(f"demo photo missing: {path}")
    return FacePhoto("grace_hopper", image, (175, 132, 357, 336))


# faces of insightface's t1.jpg (1280x886, 6 people), measured once with CenterFace
T1_BOXES = (
    (62, 268, 165, 392),
    (271, 153, 372, 267),
    (465, 265, 571, 411),
    (748, 345, 847, 482),
    (904, 59, 1013, 201),
    (1133, 266, 1231, 402),
)


def t1_photos() -> list[FacePhoto]:
    """The six people of insightface's t1.jpg (needs the insightface wheel; empty list without it)."""
    path = insightface_t1_path()
    image = cv2.imread(str(path)) if path is not None else None
    if image is None:
        return []
    return [FacePhoto(f"t1_{i}", image, box) for i, box in enumerate(T1_BOXES)]


def insightface_t1_path() -> Path | None:
    """``insightface/data/images/t1.jpg`` from an installed insightface wheel, without importing it."""
    spec = importlib.util.find_spec("insightface")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "images" / "t1.jpg"
    return path if path.is_file() else None


def default_photos() -> list[FacePhoto]:
    return [astronaut(), grace_hopper()]


def demo_spec(width: int = 640, height: int = 480, seconds: float = 6.0, fps: int = 30) -> ClipSpec:
    """Two real faces crossing the frame at different sizes and speeds, one shrinking and growing."""
    ast, grace = default_photos()
    actors = (
        Actor(ast, size=0.17 * width, start=(0.2, 0.35), velocity=(0.10, 0.03), wobble=0.25),
        Actor(grace, size=0.11 * width, start=(0.8, 0.65), velocity=(-0.09, -0.04), wobble=0.2),
    )
    return ClipSpec(width, height, fps, seconds, actors)


def background(spec: ClipSpec) -> Image:
    """A textured, non-face background (scikit-image's brick wall, tinted)."""
    from skimage import data

    brick = cv2.cvtColor(data.brick(), cv2.COLOR_GRAY2BGR)
    tiled = cv2.resize(brick, (spec.width, spec.height), interpolation=cv2.INTER_LINEAR)
    tint = np.array([0.9, 1.0, 1.1], np.float32)
    return np.clip(tiled.astype(np.float32) * tint * 0.8 + 30, 0, 255).astype(np.uint8)


def _sprite(photo: FacePhoto, size: float) -> tuple[Image, FloatArray, FloatArray]:
    """Crop the head with margin, scaled so the face box is ``size`` px wide; alpha mask; box in the sprite."""
    x1, y1, x2, y2 = photo.box
    bw, bh = x2 - x1, y2 - y1
    mx, my = 0.55 * bw, 0.55 * bh
    h, w = photo.image.shape[:2]
    cx1, cy1 = int(max(0, x1 - mx)), int(max(0, y1 - my))
    cx2, cy2 = int(min(w, x2 + mx)), int(min(h, y2 + my))
    crop = photo.image[cy1:cy2, cx1:cx2]
    scale = size / bw
    sw, sh = max(2, round(crop.shape[1] * scale)), max(2, round(crop.shape[0] * scale))
    sprite = cv2.resize(crop, (sw, sh), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    yy, xx = np.mgrid[0:sh, 0:sw].astype(np.float32)
    r = np.sqrt(((xx + 0.5) / sw * 2 - 1) ** 2 + ((yy + 0.5) / sh * 2 - 1) ** 2)
    alpha = np.clip((1.0 - r) / 0.15, 0, 1)[:, :, None]
    box = np.array([x1 - cx1, y1 - cy1, x2 - cx1, y2 - cy1], np.float32) * scale
    return sprite, alpha, box


def _position(actor: Actor, spec: ClipSpec, t: float) -> tuple[float, float, float]:
    """Centre (px) and face size at time t; bounces off the frame edges."""
    def bounce(p: float) -> float:
        p = p % 2.0
        return p if p <= 1.0 else 2.0 - p

    fx = 0.1 + 0.8 * bounce((actor.start[0] - 0.1) / 0.8 + actor.velocity[0] * t / 0.8)
    fy = 0.15 + 0.7 * bounce((actor.start[1] - 0.15) / 0.7 + actor.velocity[1] * t / 0.7)
    size = actor.size * (1.0 + actor.wobble * math.sin(2 * math.pi * t / max(spec.seconds, 1e-3)))
    return fx * spec.width, fy * spec.height, size


def render(spec: ClipSpec) -> Iterator[tuple[Image, FloatArray]]:
    """Yield (frame BGR, ground-truth face boxes [K,4]) for every frame of the clip."""
    base = background(spec)
    for i in range(spec.n_frames):
        t = i / spec.fps
        frame = base.copy()
        boxes = [_paste(frame, actor, *_position(actor, spec, t)) for actor in spec.actors]
        if spec.motion_blur > 1:
            kernel = np.zeros((spec.motion_blur, spec.motion_blur), np.float32)
            kernel[spec.motion_blur // 2, :] = 1.0 / spec.motion_blur
            frame = cv2.filter2D(frame, -1, kernel)
        if spec.brightness != 1.0:
            frame = cv2.convertScaleAbs(frame, alpha=spec.brightness)
        gt = np.array([b for b in boxes if b is not None], np.float32).reshape(-1, 4)
        yield frame, gt


def _paste(frame: Image, actor: Actor, cx: float, cy: float, size: float) -> FloatArray | None:
    sprite, alpha, box = _sprite(actor.photo, size)
    bcx, bcy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    ox, oy = int(round(cx - bcx)), int(round(cy - bcy))
    if not blend(frame, sprite, alpha, ox, oy):
        return None
    return clip_box(box + np.array([ox, oy, ox, oy], np.float32), frame.shape)


def blend(frame: Image, sprite: Image, alpha: FloatArray, ox: int, oy: int) -> bool:
    """Alpha-blend ``sprite`` into ``frame`` with its top-left corner at (ox, oy), clipped to the frame;
    False when nothing of it lands inside."""
    sh, sw = sprite.shape[:2]
    H, W = frame.shape[:2]
    x1, y1, x2, y2 = max(0, ox), max(0, oy), min(W, ox + sw), min(H, oy + sh)
    if x2 <= x1 or y2 <= y1:
        return False
    s = sprite[y1 - oy : y2 - oy, x1 - ox : x2 - ox].astype(np.float32)
    a = alpha[y1 - oy : y2 - oy, x1 - ox : x2 - ox]
    region = frame[y1:y2, x1:x2].astype(np.float32)
    frame[y1:y2, x1:x2] = (s * a + region * (1 - a)).astype(np.uint8)
    return True


def clip_box(box: FloatArray, shape: tuple[int, ...]) -> FloatArray | None:
    """A ground-truth box clipped to the frame, or None when too little of it is left (≤ 4 px)."""
    H, W = shape[:2]
    gt = box.astype(np.float32).copy()
    gt[[0, 2]] = gt[[0, 2]].clip(0, W)
    gt[[1, 3]] = gt[[1, 3]].clip(0, H)
    return gt if (gt[2] - gt[0]) > 4 and (gt[3] - gt[1]) > 4 else None


def write_clip(spec: ClipSpec, path: str | Path, codec: str = "libx264", crf: int = 18) -> list[FloatArray]:
    """Encode the clip to ``path`` with PyAV; returns the ground-truth boxes per frame."""
    import av

    truths: list[FloatArray] = []
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=spec.fps)
        assert isinstance(stream, av.VideoStream)
        stream.width, stream.height, stream.pix_fmt = spec.width, spec.height, "yuv420p"
        stream.options = {"crf": str(crf), "preset": "veryfast"}
        for frame, gt in render(spec):
            truths.append(gt)
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="bgr24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return truths
