"""Face alignment from 5 landmarks, and cheap per-face quality measures.

Landmark order everywhere: left eye, right eye, nose, mouth-left, mouth-right
(image coordinates, as the detectors return them).

The alignment is a least-squares similarity transform (rotation, uniform
scale, translation; no reflection, no shear) from the 5 landmarks onto a
model's template, then one ``cv2.warpAffine``. It is solved in closed form
with complex numbers: the template point ``w`` is ``a*z + b`` for the landmark
``z``, ``a`` a complex scale-rotation and ``b`` a complex shift; the
least-squares ``a`` is ``sum(conj(z - mean z) * (w - mean w)) / sum(|z - mean z|^2)``.
This is the same transform as Umeyama's method (what insightface's
``norm_crop`` uses through scikit-image), without its dependency, and it is
deterministic (unlike ``cv2.estimateAffinePartial2D``'s default RANSAC).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from streamer.core.types import FloatArray, Image

# dlib ResNet v1 (150 px chip): eye, eye, nose, mouth-left, mouth-right
DLIB_TEMPLATE_150: FloatArray = np.array(
    [[46.4, 48.6], [101.1, 45.4], [73.9, 81.0], [56.5, 108.0], [102.8, 105.1]], np.float32
)
# the ArcFace 112x112 template (the one insightface's norm_crop aligns to)
ARCFACE_TEMPLATE_112: FloatArray = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    np.float32,
)


def similarity_transform(src: FloatArray, dst: FloatArray) -> npt.NDArray[np.float64]:
    """The 2x3 least-squares similarity matrix mapping points ``src`` [K,2] onto ``dst`` [K,2]."""
    s = np.asarray(src, np.float64).reshape(-1, 2)
    d = np.asarray(dst, np.float64).reshape(-1, 2)
    if s.shape != d.shape or len(s) < 2:
        raise ValueError(f"similarity_transform needs two equal [K>=2, 2] point sets, got {s.shape} and {d.shape}")
    z = s[:, 0] + 1j * s[:, 1]
    w = d[:, 0] + 1j * d[:, 1]
    zc, wc = z - z.mean(), w - w.mean()
    spread = float(np.sum(np.abs(zc) ** 2))
    if spread < 1e-12:
        raise ValueError("similarity_transform: the source points coincide")
    a = np.sum(np.conj(zc) * wc) / spread
    b = w.mean() - a * z.mean()
    return np.array([[a.real, -a.imag, b.real], [a.imag, a.real, b.imag]], np.float64)


def transform_points(matrix: npt.NDArray[np.float64], points: FloatArray) -> FloatArray:
    """Apply a 2x3 affine matrix to points [K,2]."""
    pts = np.asarray(points, np.float64).reshape(-1, 2)
    return (pts @ matrix[:, :2].T + matrix[:, 2]).astype(np.float32)


def ellipse_covers_box(
    box: FloatArray,
    matrix: npt.NDArray[np.float64],
    center: tuple[float, float],
    radii: tuple[float, float],
    inset: float = 0.9,
) -> bool:
    """Whether the ellipse (``center``, ``radii``, in crop pixels) that ``matrix`` (frame -> crop) maps
    a pasted face from covers the ellipse inscribed in the detector's ``box`` (shrunk by ``inset``).

    Anonymizers that paste a face warped from landmarks (k-Same, diffusion) check
    this: odd landmarks, or a box much larger than the landmarks say, would leave
    part of the real face showing; such a face is blurred instead.
    """
    x1, y1, x2, y2 = (float(v) for v in box)
    cx, cy, rx, ry = (x1 + x2) / 2, (y1 + y2) / 2, inset * (x2 - x1) / 2, inset * (y2 - y1) / 2
    angles = np.linspace(0, 2 * np.pi, 16, endpoint=False)
    points = np.stack([cx + rx * np.cos(angles), cy + ry * np.sin(angles)], axis=1).astype(np.float32)
    crop = transform_points(matrix, points)
    r = np.sqrt(((crop[:, 0] - center[0]) / radii[0]) ** 2 + ((crop[:, 1] - center[1]) / radii[1]) ** 2)
    return bool(np.all(r <= 1.0))


def template_for(template: FloatArray, template_size: int, size: int) -> FloatArray:
    """A template scaled from its native square size to ``size`` pixels."""
    return (np.asarray(template, np.float32) * (size / template_size)).astype(np.float32)


def align_face(image: Image, landmarks: FloatArray, template: FloatArray, size: int) -> Image:
    """Warp the face whose 5 landmarks are given onto ``template`` in a ``size`` x ``size`` crop (black border)."""
    matrix = similarity_transform(landmarks, template)
    crop: Image = cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_LINEAR, borderValue=(0, 0, 0))
    return crop


def alignment_residual(landmarks: FloatArray, template: FloatArray) -> float:
    """RMS distance between the warped landmarks and the template, as a fraction of the template's eye distance.

    Large values mean the 5 points do not look like a face (bad landmarks).
    """
    matrix = similarity_transform(landmarks, template)
    warped = transform_points(matrix, landmarks)
    rms = float(np.sqrt(np.mean(np.sum((warped - template) ** 2, axis=1))))
    eye = float(np.linalg.norm(template[1] - template[0]))
    return rms / max(eye, 1e-6)


def frontalness(landmarks: FloatArray) -> float:
    """1.0 for a frontal face, towards 0 for a turned (yaw) or tilted (pitch) one.

    Roll-invariant: the points are expressed in the frame of the eye line.
    Yaw: where the nose falls between the eyes (0.5 when frontal). Pitch: the
    nose's depth below the eye line relative to the mouth's (about 0.55 on real
    frontal faces, lower when looking up, higher when looking down).
    """
    pts = np.asarray(landmarks, np.float64).reshape(5, 2)
    left, right, nose = pts[0], pts[1], pts[2]
    mouth = (pts[3] + pts[4]) / 2
    axis = right - left
    eye_dist = float(np.linalg.norm(axis))
    if eye_dist < 1e-6:
        return 0.0
    ux = axis / eye_dist
    uy = np.array([-ux[1], ux[0]])
    along = float((nose - left) @ ux) / eye_dist
    yaw = 1.0 - min(1.0, abs(along - 0.5) * 2.0)
    nose_depth = float((nose - left) @ uy)
    mouth_depth = float((mouth - left) @ uy)
    if mouth_depth <= 1e-6 or nose_depth <= 0:
        return 0.0
    pitch = 1.0 - min(1.0, abs(nose_depth / mouth_depth - 0.55) / 0.55)
    return float(min(yaw, pitch))


def sharpness(crop: Image) -> float:
    """Variance of the Laplacian of the grey crop: low for blurred or upscaled faces."""
    gray = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY) if crop.ndim == 3 else crop
    return float(cv2.Laplacian(gray, cv2.CV_64F).var())


@dataclass(frozen=True)
class FaceQuality:
    """How fit a face is to be embedded: box size (px, shorter side), sharpness, frontalness, residual."""

    size: float
    sharpness: float
    frontal: float
    residual: float

    def good(self, min_size: float, min_sharpness: float, min_frontal: float, max_residual: float = 0.35) -> bool:
        return (
            self.size >= min_size
            and self.sharpness >= min_sharpness
            and self.frontal >= min_frontal
            and self.residual <= max_residual
        )


def face_quality(box: FloatArray, landmarks: FloatArray, crop: Image, template: FloatArray) -> FaceQuality:
    """Quality of one face: its box, its landmarks and its aligned crop (on ``template``)."""
    x1, y1, x2, y2 = (float(v) for v in box)
    return FaceQuality(
        size=max(0.0, min(x2 - x1, y2 - y1)),
        sharpness=sharpness(crop),
        frontal=frontalness(landmarks),
        residual=alignment_residual(landmarks, template),
    )


def appearance_signature(image: Image, landmarks: FloatArray, size: int = 32) -> tuple[FloatArray, FloatArray]:
    """A cheap appearance fingerprint of a face: hue-saturation histogram and a normalized grey thumbnail.

    Computed on a small aligned crop (one tiny warp, no network), so it can run
    on every frame of a decided track to notice a different person in it.
    """
    template = template_for(DLIB_TEMPLATE_150, 150, size)
    matrix = similarity_transform(landmarks, template)
    crop = cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_AREA, borderValue=(0, 0, 0))
    margin = size // 8  # the inner face: little background, hair or neighbour
    inner = crop[margin : size - margin, margin : size - margin]
    hsv = cv2.cvtColor(inner, cv2.COLOR_BGR2HSV)
    hist = cv2.calcHist([hsv], [0, 1], None, [12, 8], [0, 180, 0, 256]).astype(np.float32)
    hist /= max(float(hist.sum()), 1e-6)
    gray = cv2.cvtColor(inner, cv2.COLOR_BGR2GRAY)
    thumb = cv2.resize(gray, (12, 12), interpolation=cv2.INTER_AREA).astype(np.float32).ravel()
    thumb -= thumb.mean()
    thumb /= max(float(np.linalg.norm(thumb)), 1e-6)
    return hist, thumb


def appearance_distance(a: tuple[FloatArray, FloatArray], b: tuple[FloatArray, FloatArray]) -> float:
    """0 for the same look, about 0.4 and more for another face: mean of the histograms' Bhattacharyya
    distance and one minus the thumbnails' correlation."""
    bhatta = float(cv2.compareHist(a[0], b[0], cv2.HISTCMP_BHATTACHARYYA))
    ncc = float(a[1] @ b[1])
    return 0.5 * (bhatta + (1.0 - ncc))
