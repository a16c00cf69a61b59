"""License plates rendered into real photos, with known boxes: media for plate tests and benchmarks.

Backgrounds are real photos that ship inside installed packages (scikit-image's
``rocket``, ``motorcycle_left``, ``coffee``, ``astronaut``, ``chelsea``; its
``gravel`` texture as the road). On them sit plates drawn by OpenCV (characters
with ``cv2.putText``) in the common layouts (EU 4.7:1 white/yellow with the
country strip, US 2:1, Mercosur 3.08:1 with its band), warped with a slight
perspective; plates move and the camera pans from frame to frame. (Flat-colour
car bodies drawn around them made the plates *harder* for a model trained on
real photos, not more realistic, so there are none.) Every plate's ground-truth box (the bounding box of its warped
corners) comes with each frame. No file is read but the packages' own images.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from streamer.core.types import Image

FloatArray = npt.NDArray[np.float32]


@dataclass(frozen=True)
class PlateStyle:
    """A plate layout: aspect (width / height), colours (BGR) and an optional band."""

    name: str
    aspect: float
    background: tuple[int, int, int]
    band: str | None  # "left" (EU country strip), "top" (Mercosur), or None
    band_color: tuple[int, int, int] = (150, 60, 10)
    pattern: str = "LLDDDLL"  # L letter, D digit, space kept


STYLES: dict[str, PlateStyle] = {
    "eu-white": PlateStyle("eu-white", 4.7, (240, 240, 240), "left", pattern="LL DDD LL"),
    "eu-yellow": PlateStyle("eu-yellow", 4.7, (20, 200, 250), "left", pattern="LL DDD LL"),
    "us": PlateStyle("us", 2.0, (235, 235, 235), None, pattern="DLLLDDD"),
    "mercosur": PlateStyle("mercosur", 3.08, (240, 240, 240), "top", pattern="LLLDLDD"),
}
BACKGROUNDS = ("rocket", "motorcycle_left", "coffee", "astronaut", "chelsea")


def plate_text(style: PlateStyle, rng: np.random.Generator) -> str:
    letters = "ABCDEFGHJKLMNPRSTUVWXYZ"
    return "".join(
        " " if c == " " else (letters[rng.integers(len(letters))] if c == "L" else str(rng.integers(10)))
        for c in style.pattern
    )


def render_plate(style: PlateStyle, text: str, width: int = 480) -> Image:
    """A flat plate image ``width`` px wide, black characters drawn with ``cv2.putText``."""
    h = int(round(width / style.aspect))
    img = np.full((h, width, 3), style.background, np.uint8)
    x0, y0 = 0, 0
    if style.band == "left":
        x0 = int(width * 0.09)
        img[:, :x0] = style.band_color
    elif style.band == "top":  # Mercosur: blue band with the country's name in white
        y0 = int(h * 0.24)
        img[:y0] = style.band_color
        band_scale = 0.6 * y0 / cv2.getTextSize("BRASIL", cv2.FONT_HERSHEY_SIMPLEX, 1.0, 1)[0][1]
        (bw, bh), _ = cv2.getTextSize("BRASIL", cv2.FONT_HERSHEY_SIMPLEX, band_scale, 1)
        cv2.putText(img, "BRASIL", ((width - bw) // 2, (y0 + bh) // 2), cv2.FONT_HERSHEY_SIMPLEX, band_scale,
                    (255, 255, 255), max(1, int(band_scale)), cv2.LINE_AA)
    font = cv2.FONT_HERSHEY_DUPLEX
    (tw, th), _ = cv2.getTextSize(text, font, 1.0, 1)
    scale = min(0.9 * (width - x0) / tw, 0.7 * (h - y0) / th)
    thick = max(1, int(round(scale * 2.2)))
    (tw, th), _ = cv2.getTextSize(text, font, scale, thick)
    org = (x0 + (width - x0 - tw) // 2, y0 + (h - y0 + th) // 2)
    cv2.putText(img, text, org, font, scale, (15, 15, 15), thick, cv2.LINE_AA)
    cv2.rectangle(img, (0, 0), (width - 1, h - 1), (25, 25, 25), max(2, h // 28))
    return img


def paste_warped(frame: Image, patch: Image, quad: FloatArray) -> None:
    """Warp ``patch`` onto the quadrilateral ``quad`` [4,2] (tl, tr, br, bl) of ``frame``, in place."""
    ph, pw = patch.shape[:2]
    src = np.array([[0, 0], [pw, 0], [pw, ph], [0, ph]], np.float32)
    m = cv2.getPerspectiveTransform(src, quad.astype(np.float32))
    h, w = frame.shape[:2]
    warped = cv2.warpPerspective(patch, m, (w, h), flags=cv2.INTER_AREA)
    mask = cv2.warpPerspective(np.full((ph, pw), 255, np.uint8), m, (w, h), flags=cv2.INTER_LINEAR)
    alpha = (mask.astype(np.float32) / 255.0)[:, :, None]
    x1, y1 = np.floor(quad.min(axis=0)).astype(int).clip(0)
    x2, y2 = np.ceil(quad.max(axis=0)).astype(int) + 1
    sl = (slice(y1, min(y2, h)), slice(x1, min(x2, w)))
    frame[sl] = (frame[sl] * (1 - alpha[sl]) + warped[sl] * alpha[sl] + 0.5).astype(np.uint8)


def plate_quad(x: float, y: float, width: float, aspect: float, skew: FloatArray) -> FloatArray:
    """Corners of a ``width`` px plate with top-left ``(x, y)``; ``skew`` [4,2] nudges each corner
    by a fraction of the plate height (a slight perspective)."""
    h = width / aspect
    quad = np.array([[x, y], [x + width, y], [x + width, y + h], [x, y + h]], np.float32)
    return (quad + skew * h).astype(np.float32)


def background(name: str, size: tuple[int, int], pan: float = 0.0) -> Image:
    """A real photo from scikit-image covering ``size`` (w, h), shifted ``pan`` px (camera motion)."""
    img = _skimage_photo(f"{name}.png" if name != "rocket" else "rocket.jpg")
    w, h = size
    scale = max((w + 200) / img.shape[1], h / img.shape[0])
    big = cv2.resize(img, (int(np.ceil(img.shape[1] * scale)), int(np.ceil(img.shape[0] * scale))))
    ox = int(np.clip(100 + pan, 0, big.shape[1] - w))
    out = np.ascontiguousarray(big[:h, ox:ox + w])
    road = _road(size)
    top = int(h * 0.62)
    out[top:] = road[top:]
    return out


def _skimage_photo(file: str) -> Image:
    import skimage

    path = Path(skimage.__file__).parent / "data" / file
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise FileNotFoundError(path)
    return img


def _road(size: tuple[int, int]) -> Image:
    gravel = _skimage_photo("gravel.png")
    w, h = size
    tiled = np.tile(gravel, (h // gravel.shape[0] + 1, w // gravel.shape[1] + 1, 1))[:h, :w]
    return (tiled.astype(np.float32) * 0.55).astype(np.uint8)


@dataclass
class MovingPlate:
    x: float  # top-left of the plate in the first frame
    y: float
    width: float  # plate width in px
    style: PlateStyle
    text: str
    velocity: tuple[float, float]
    skew: FloatArray


def draw_plate(frame: Image, plate: MovingPlate, x: float, y: float) -> FloatArray:
    """The plate warped onto ``frame`` with its top-left near ``(x, y)``; returns its box (xyxy)."""
    quad = plate_quad(x, y, plate.width, plate.style.aspect, plate.skew)
    paste_warped(frame, render_plate(plate.style, plate.text, max(240, int(plate.width * 3))), quad)
    return np.array([*quad.min(axis=0), *quad.max(axis=0)], np.float32)


def make_plates(
    size: tuple[int, int], widths: tuple[int, int], styles: tuple[str, ...], count: int, rng: np.random.Generator
) -> list[MovingPlate]:
    """``count`` plates ``widths`` px wide (min, max), spread along the road without overlap."""
    w, h = size
    plates: list[MovingPlate] = []
    slot = w / count
    for i in range(count):
        style = STYLES[styles[i % len(styles)]]
        pw = float(rng.uniform(*widths))
        x = slot * i + (slot - pw) / 2 + rng.uniform(-0.1, 0.1) * slot
        y = h * rng.uniform(0.6, 0.8)
        skew = rng.uniform(-0.12, 0.12, size=(4, 2)).astype(np.float32)
        velocity = (float(rng.uniform(-3, 3)), float(rng.uniform(-1, 1)))
        plates.append(MovingPlate(x, y, pw, style, plate_text(style, rng), velocity, skew))
    return plates


def plate_frames(
    size: tuple[int, int] = (1920, 1080),
    frames: int = 10,
    widths: tuple[int, int] = (60, 200),
    styles: tuple[str, ...] = tuple(STYLES),
    plates: int = 4,
    backdrop: str = "rocket",
    seed: int = 0,
) -> list[tuple[Image, FloatArray]]:
    """``frames`` BGR frames of ``size`` (w, h) with moving plates and a panning camera; each with
    its plates' ground-truth boxes [N,4] (xyxy, frame pixels)."""
    rng = np.random.default_rng(seed)
    fleet = make_plates(size, widths, styles, plates, rng)
    out = []
    for t in range(frames):
        frame = background(backdrop, size, pan=4.0 * t)
        boxes = [draw_plate(frame, c, c.x + c.velocity[0] * t, c.y + c.velocity[1] * t) for c in fleet]
        out.append((_camera(frame, rng), np.array(boxes, np.float32).reshape(-1, 4)))
    return out


def _camera(frame: Image, rng: np.random.Generator) -> Image:
    """A camera's softness and sensor noise (rendered edges are sharper than any lens)."""
    soft = cv2.GaussianBlur(frame, (0, 0), 0.8)
    noise = rng.normal(0.0, 3.0, frame.shape).astype(np.float32)
    return np.clip(soft.astype(np.float32) + noise, 0, 255).astype(np.uint8)


COVERED = 0.95  # a plate counts as covered when this share of its box lies inside one anonymized box
# (the box of a plate seen in perspective has background corners the plate itself does not fill)


def coverage(gt: FloatArray, boxes: FloatArray, padding: float = 0.0) -> FloatArray:
    """For each ground-truth box, the largest fraction of its area inside one of ``boxes``
    (each enlarged by ``padding`` of its size on every side, as the anonymizer does)."""
    gt = np.asarray(gt, np.float32).reshape(-1, 4)
    b = np.asarray(boxes, np.float32).reshape(-1, 4)
    if len(b) == 0 or len(gt) == 0:
        return np.zeros(len(gt), np.float32)
    wh = b[:, 2:] - b[:, :2]
    b = np.concatenate([b[:, :2] - padding * wh, b[:, 2:] + padding * wh], axis=1)
    tl = np.maximum(gt[:, None, :2], b[None, :, :2])
    br = np.minimum(gt[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(br - tl, 0, None), axis=2)
    area = np.prod(np.clip(gt[:, 2:] - gt[:, :2], 1e-6, None), axis=1)
    return (inter.max(axis=1) / area).astype(np.float32)
