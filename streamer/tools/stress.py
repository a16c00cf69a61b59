"""Stress footage for ``fawn bench`` and tests: real faces under hard conditions.

Every clip is built in code from real photos that ship in packages
(:mod:`streamer.io.demo`), so the ground-truth box of every face in every frame is
known. Segments (:data:`SEGMENTS`), each at any resolution:

* ``small``: faces 18-30 px wide drifting slowly.
* ``tilt``: heads rolled up to +-35 degrees, rocking.
* ``noise``: Gaussian sensor noise (sigma 6) on every pixel.
* ``edges``: faces cut by each frame edge, 25-60 % of the face box inside.
* ``blur``: fast faces with horizontal motion blur.
* ``dark``: exposure dips to 25 % brightness and back.

The ground-truth box of a rolled face is the axis-aligned box around the rolled
face box (the whole face, not only its centre); a face cut by the edge has its
box clipped to the frame.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import cv2
import numpy as np

from streamer.core.types import FloatArray, Image
from streamer.io import demo
from streamer.io.demo import FacePhoto

SEGMENTS = ("small", "tilt", "noise", "edges", "blur", "dark")
BASE_WIDTH = 640.0  # face sizes below are for a 640 px wide frame, scaled with the width...
SMALL_FACES = (18.0, 22.0, 26.0, 30.0)  # ...except these: 18-30 px at every resolution
EDGE_INSIDE = (0.25, 0.40, 0.60, 0.50)  # share of the face box inside the frame, per edge (l, t, r, b)


@dataclass(frozen=True)
class StressActor:
    """A face: size (face box width, px), centre path (fractions of the frame), roll."""

    photo: FacePhoto
    size: float
    start: tuple[float, float]
    velocity: tuple[float, float] = (0.0, 0.0)  # fraction of the frame per second
    roll: float = 0.0  # degrees: amplitude of the rocking roll (or a fixed roll with roll_period 0)
    roll_period: float = 2.0  # seconds
    edge: int = -1  # 0..3: pinned to the left/top/right/bottom edge with EDGE_INSIDE of it inside


@dataclass(frozen=True)
class StressSpec:
    name: str
    width: int
    height: int
    frames: int
    actors: tuple[StressActor, ...]
    fps: int = 15
    noise: float = 0.0
    motion_blur: int = 0
    dark: bool = False
    seed: int = 0


def segment_specs(width: int, height: int, frames: int, fps: int = 15) -> list[StressSpec]:
    """The six stress segments of :data:`SEGMENTS` at ``width`` x ``height``, ``frames`` each."""
    photos = [demo.astronaut(), demo.grace_hopper(), *demo.t1_photos()]
    k = width / BASE_WIDTH

    def p(i: int) -> FacePhoto:
        return photos[i % len(photos)]

    small = tuple(
        StressActor(p(i), s, (0.15 + 0.23 * i, 0.3 + 0.35 * (i % 2)), (0.03 * (-1) ** i, 0.02))
        for i, s in enumerate(SMALL_FACES)
    )
    tilt = tuple(
        StressActor(p(i + 1), max(24.0, s * k), (0.2 + 0.3 * i, 0.35 + 0.3 * (i % 2)), (0.02, -0.01 * i),
                    roll=35.0 * (-1) ** i, roll_period=2.0 + i)
        for i, s in enumerate((60.0, 36.0, 48.0))
    )
    noise = tuple(
        StressActor(p(i + 2), max(22.0, s * k), (0.2 + 0.3 * i, 0.4 + 0.2 * (i % 2)), (0.04, 0.02), roll=15.0 * i)
        for i, s in enumerate((28.0, 44.0, 64.0))
    )
    edges = tuple(
        StressActor(p(i + 3), max(30.0, 56.0 * k), (0.3 + 0.4 * (i % 2), 0.3 + 0.4 * (i // 2)), (0.03, 0.03), edge=i)
        for i in range(4)
    )
    blur = (
        StressActor(p(0), max(30.0, 70 * k), (0.3, 0.4), (0.45, 0.1)),
        StressActor(p(1), max(24.0, 36 * k), (0.7, 0.6), (-0.4, -0.08)),
    )
    dark = tuple(
        StressActor(p(i + 4), max(24.0, s * k), (0.25 + 0.45 * i, 0.45), (0.03, 0.02), roll=10.0)
        for i, s in enumerate((40.0, 80.0))
    )

    def spec(name: str, actors: tuple[StressActor, ...], seed: int, **kw: object) -> StressSpec:
        return StressSpec(name, width, height, frames, actors, fps=fps, seed=seed, **kw)  # type: ignore[arg-type]

    return [
        spec("small", small, 1, noise=2.0),
        spec("tilt", tilt, 2, noise=2.0),
        spec("noise", noise, 3, noise=6.0),
        spec("edges", edges, 4, noise=2.0),
        spec("blur", blur, 5, motion_blur=max(5, round(9 * k))),
        spec("dark", dark, 6, noise=3.0, dark=True),
    ]


def render(spec: StressSpec) -> Iterator[tuple[Image, FloatArray]]:
    """Yield (BGR frame, ground-truth boxes [K,4]) for every frame of the segment."""
    base = demo.background(demo.ClipSpec(spec.width, spec.height))
    rng = np.random.default_rng(spec.seed)
    for i in range(spec.frames):
        t = i / spec.fps
        frame = base.copy()
        boxes = [b for a in spec.actors if (b := paste(frame, a, *_place(a, spec, t), _roll(a, t))) is not None]
        yield _degrade(frame, spec, i, rng), np.array(boxes, np.float32).reshape(-1, 4)


def _roll(actor: StressActor, t: float) -> float:
    if actor.roll_period <= 0:
        return actor.roll
    return actor.roll * math.sin(2 * math.pi * t / actor.roll_period + 0.7)


def _place(actor: StressActor, spec: StressSpec, t: float) -> tuple[float, float]:
    """Face centre in pixels at time t (bouncing inside the frame, or pinned across an edge)."""
    w, h = spec.width, spec.height

    def bounce(start: float, v: float, lo: float, hi: float) -> float:
        x = (start - lo) / (hi - lo) + v * t / (hi - lo)
        x = x % 2.0
        return lo + (hi - lo) * (x if x <= 1.0 else 2.0 - x)

    cx, cy = bounce(actor.start[0], actor.velocity[0], 0.1, 0.9) * w, bounce(actor.start[1], actor.velocity[1], 0.15, 0.85) * h
    if actor.edge < 0:
        return cx, cy
    inside = EDGE_INSIDE[actor.edge]
    fw, fh = actor.size, actor.size * 1.3  # the photos' face boxes are ~1.3x taller than wide
    if actor.edge == 0:
        return fw * (inside - 0.5), cy
    if actor.edge == 1:
        return cx, fh * (inside - 0.5)
    if actor.edge == 2:
        return w - fw * (inside - 0.5), cy
    return cx, h - fh * (inside - 0.5)


def _sprite(photo: FacePhoto, size: float, roll: float) -> tuple[Image, FloatArray, FloatArray]:
    """Head crop scaled so the face box is ``size`` wide, rolled by ``roll`` degrees; alpha; face corners."""
    x1, y1, x2, y2 = photo.box
    bw, bh = x2 - x1, y2 - y1
    m = 0.6 * max(bw, bh)
    h, w = photo.image.shape[:2]
    cx1, cy1, cx2, cy2 = int(max(0, x1 - m)), int(max(0, y1 - m)), int(min(w, x2 + m)), int(min(h, y2 + m))
    crop = photo.image[cy1:cy2, cx1:cx2]
    scale = size / bw
    sw, sh = max(2, round(crop.shape[1] * scale)), max(2, round(crop.shape[0] * scale))
    sprite = cv2.resize(crop, (sw, sh), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    corners = (np.array([[x1, y1], [x2, y1], [x2, y2], [x1, y2]], np.float32) - [cx1, cy1]) * scale
    centre = corners.mean(axis=0)
    rot = cv2.getRotationMatrix2D((float(centre[0]), float(centre[1])), roll, 1.0)
    sprite = cv2.warpAffine(sprite, rot, (sw, sh), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    corners = corners @ rot[:, :2].T + rot[:, 2]
    yy, xx = np.mgrid[0:sh, 0:sw].astype(np.float32)
    rx, ry = (bw / 2 + 0.45 * m) * scale, (bh / 2 + 0.45 * m) * scale
    r = np.sqrt(((xx - centre[0]) / rx) ** 2 + ((yy - centre[1]) / ry) ** 2)
    alpha = np.clip((1.0 - r) / 0.2, 0, 1)[:, :, None]
    return sprite, alpha, corners.astype(np.float32)


def paste(frame: Image, actor: StressActor, cx: float, cy: float, roll: float) -> FloatArray | None:
    """Blend the actor's face centred at (cx, cy) into ``frame``; its clipped ground-truth box or None."""
    sprite, alpha, corners = _sprite(actor.photo, actor.size, roll)
    centre = corners.mean(axis=0)
    ox, oy = int(round(cx - centre[0])), int(round(cy - centre[1]))
    if not demo.blend(frame, sprite, alpha, ox, oy):
        return None
    pts = corners + [ox, oy]
    box = np.array([pts[:, 0].min(), pts[:, 1].min(), pts[:, 0].max(), pts[:, 1].max()], np.float32)
    return demo.clip_box(box, frame.shape)


def _degrade(frame: Image, spec: StressSpec, index: int, rng: np.random.Generator) -> Image:
    """Motion blur, exposure dip and sensor noise, in the order a camera makes them."""
    out = frame
    if spec.motion_blur > 1:
        kernel = np.zeros((spec.motion_blur, spec.motion_blur), np.float32)
        kernel[spec.motion_blur // 2, :] = 1.0 / spec.motion_blur
        out = cv2.filter2D(out, -1, kernel)
    if spec.dark:
        # two dips per segment down to 25 % brightness
        level = 1.0 - 0.75 * abs(math.sin(2 * math.pi * index / max(spec.frames, 1)))
        out = cv2.convertScaleAbs(out, alpha=level)
    if spec.noise > 0:
        noisy = out.astype(np.float32) + rng.normal(0.0, spec.noise, out.shape).astype(np.float32)
        out = np.clip(noisy, 0, 255).astype(np.uint8)
    return out


def stress_frame(photos: list[FacePhoto], size: tuple[int, int], rng: np.random.Generator, variant: int) -> Image:
    """One random frame of several faces under one of the stress conditions (calibration data)."""
    w, h = size
    actors = tuple(
        StressActor(photos[int(rng.integers(len(photos)))], float(rng.uniform(18, 160)),
                    (float(rng.uniform(0.1, 0.9)), float(rng.uniform(0.15, 0.85))),
                    roll=float(rng.uniform(-35, 35)), roll_period=0.0,
                    edge=int(rng.integers(4)) if variant % 4 == 3 and j == 0 else -1)
        for j in range(int(rng.integers(2, 6)))
    )
    condition = variant % 6
    spec = StressSpec("calibration", w, h, 1, actors, noise=6.0 if condition == 2 else 2.0,
                      motion_blur=9 if condition == 4 else 0, dark=condition == 5, seed=variant)
    frame, _ = next(render(spec))
    if condition == 5:
        frame = cv2.convertScaleAbs(frame, alpha=0.3)
    return frame


FACE_FREE = ("chelsea", "coffee", "rocket", "coins", "page", "text", "hubble_deep_field", "immunohistochemistry",
             "retina", "horse", "cat", "logo", "brick", "grass", "gravel", "moon", "clock", "cell")


def face_free_photos(widths: tuple[int, ...] = (640, 1280, 1920)) -> list[tuple[str, Image]]:
    """Real photos without a human face that ship in scikit-image (:data:`FACE_FREE`: a cat, coins,
    coffee, text, a rocket, a galaxy field, cells, a horse...), BGR, each at every width: what a
    detector finds on them is a false face."""
    from skimage import data

    photos = []
    for name in FACE_FREE:
        image = np.asarray(getattr(data, name)())
        if image.dtype != np.uint8:
            image = (255 * (image.astype(np.float32) / max(float(image.max()), 1.0))).astype(np.uint8)
        image = np.repeat(image[:, :, None], 3, axis=2) if image.ndim == 2 else image[:, :, 2::-1]
        h, w = image.shape[:2]
        for width in widths:
            photos.append((f"{name}@{width}", cv2.resize(np.ascontiguousarray(image), (width, round(h * width / w)))))
    return photos
