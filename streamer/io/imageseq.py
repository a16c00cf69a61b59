"""Image sequences: a folder of frames (dashcam drives, KITTI/Cityscapes-style layouts) in and out.

A folder that directly holds image files is *one* sequence, read in natural
order (``frame_2`` before ``frame_10``) and run through the same stages as a
video (tracking, coasting, identity per track). :func:`folder_kind` is the one
place that decides what a folder is: a sequence (images directly in it) or a
batch of videos.

:class:`ImageSequenceSource` decodes with Pillow: EXIF orientation is applied
(the pixels are stored upright), grey and alpha images are processed as colour
and get their mode back on output. :class:`ImageSequenceSink` writes each frame
under its input's file name and format in the output folder: JPEG/WebP at
``io.jpeg_quality``, PNG/BMP/TIFF lossless. Metadata (EXIF with GPS, camera
serials, PNG text) is stripped unless ``io.keep_metadata``; the ICC colour
profile is kept (it is colour, not information about the scene).
Frames of different sizes in one folder are handled: each frame keeps its size
and the tracker starts over at a size change.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from streamer.core.config import IOConfig
from streamer.core.errors import SinkError, SourceError
from streamer.core.media import IMAGE_SUFFIXES
from streamer.core.types import Frame, Image, StreamInfo

log = logging.getLogger(__name__)

SEQUENCE_FPS = 10.0  # timestamps of a sequence (frames carry no time): index / 10 s, the rate of KITTI-style drives
_ORIENTATION = 0x0112
_LOSSY = {".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP"}
_LOSSLESS = {".png": "PNG", ".bmp": "BMP", ".tif": "TIFF", ".tiff": "TIFF"}


def natural_key(name: str) -> tuple[Any, ...]:
    """Sort key that orders digit runs by value: ``frame_2`` < ``frame_10``."""
    parts = tuple((0, int(part), "") if part.isdigit() else (1, 0, part.lower())
                  for part in re.split(r"(\d+)", name) if part)
    return (*parts, (2, 0, name))  # ties (frame_01, frame_1; case) broken by the name itself


def is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES and ".partial." not in path.name


def list_images(folder: Path) -> list[Path]:
    """The image files directly in ``folder`` (not in sub-folders), in natural order."""
    return sorted((p for p in folder.iterdir() if p.is_file() and is_image(p)), key=lambda p: natural_key(p.name))


def folder_kind(path: Path) -> str:
    """``"sequence"`` for a folder that directly holds images, ``"videos"`` for any other folder."""
    return "sequence" if any(is_image(p) and p.is_file() for p in path.iterdir()) else "videos"


def is_sequence(spec: str) -> bool:
    path = Path(spec)
    return path.is_dir() and folder_kind(path) == "sequence"


@dataclass(frozen=True)
class SequenceInfo(StreamInfo):
    """A :class:`StreamInfo` that says "image sequence": sinks write a folder of images."""

    files: tuple[str, ...] = ()


def read_image(path: Path) -> tuple[Image, dict[str, Any]]:
    """(BGR uint8 pixels, upright per EXIF, the file's metadata) for one image file."""
    from PIL import Image as PILImage
    from PIL import ImageOps, UnidentifiedImageError

    try:
        with PILImage.open(path) as img:
            img.load()
            upright = ImageOps.exif_transpose(img) or img
            meta = _metadata(img)  # after the transpose: it drops the orientation tag
            mode = upright.mode
            alpha = np.asarray(upright.getchannel("A")) if "A" in upright.getbands() else None
            rgb = _to_rgb(upright)
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise SourceError(f"not a readable image: {path} ({exc})") from None
    meta.update(mode=mode, alpha=alpha)
    return np.ascontiguousarray(rgb[:, :, ::-1]), meta


def _to_rgb(img: Any) -> Image:
    """8-bit RGB pixels; 16-bit and float grey frames are scaled down, not clipped."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        grey = np.asarray(img, dtype=np.float64)
        top = 65535.0 if img.mode.startswith("I;16") or grey.max() > 255 else 255.0
        grey8 = np.clip(grey * (255.0 / top), 0, 255).astype(np.uint8)
        return np.repeat(grey8[:, :, None], 3, axis=2)
    return np.asarray(img.convert("RGB"))


def _metadata(img: Any) -> dict[str, Any]:
    exif = img.getexif()
    if _ORIENTATION in exif:
        del exif[_ORIENTATION]  # the pixels are written upright
    return {"exif": exif.tobytes() if len(exif) else None, "icc_profile": img.info.get("icc_profile"),
            "dpi": img.info.get("dpi")}


class ImageSequenceSource:
    """A folder of images as one stream; every frame carries its file name in ``frame.extra["name"]``."""

    def __init__(self, folder: str, io: IOConfig) -> None:
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise SourceError(f"input folder not found: {self.folder}")
        self.files = list_images(self.folder)
        if not self.files:
            raise SourceError(f"no images in {self.folder} (looked for {', '.join(sorted(IMAGE_SUFFIXES))})")
        first, meta = read_image(self.files[0])  # an unreadable first frame fails here, before any thread
        self._first: tuple[Image, dict[str, Any]] | None = (first, meta)
        self.info: StreamInfo = SequenceInfo(
            name=str(self.folder), width=first.shape[1], height=first.shape[0], fps=SEQUENCE_FPS,
            time_base=Fraction(1, int(SEQUENCE_FPS)), live=False, frames=len(self.files),
            files=tuple(p.name for p in self.files),
        )
        self._closed = False

    def read(self) -> Iterator[Frame]:
        for index, path in enumerate(self.files):
            if self._closed:
                return
            if index == 0 and self._first is not None:
                image, meta = self._first
                self._first = None
            else:
                image, meta = read_image(path)
            extra = {"name": path.name, **meta}
            yield Frame(image, index, pts=index, time_base=self.info.time_base, t_decoded=time.monotonic(), extra=extra)

    def close(self) -> None:
        self._closed = True


class ImageSequenceSink:
    """Writes each frame as ``OUT_DIR/<its input file name>`` in the input's format and size."""

    def __init__(self, folder: str, info: StreamInfo, io: IOConfig) -> None:
        self.folder = Path(folder)
        self.quality = io.jpeg_quality
        self.keep_metadata = io.keep_metadata
        self.frames_written = 0
        if self.folder.suffix.lower() in IMAGE_SUFFIXES or self.folder.is_file():
            raise SinkError(f"an image sequence needs an output folder, got the file '{folder}'")
        if self.folder.resolve() == Path(info.name).resolve():
            raise SinkError(f"the output folder is the input folder ({folder}): that would overwrite the frames")
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SinkError(f"cannot create the output folder {self.folder}: {exc.strerror or exc}") from None
        if not os.access(self.folder, os.W_OK | os.X_OK):
            raise SinkError(f"output folder is not writable: {self.folder}")

    def write(self, item: Any) -> None:
        if not isinstance(item, Frame):
            return
        name = item.extra.get("name") or f"{item.index:06d}.png"
        path = self.folder / name
        try:
            self._save(item.image, item.extra, path)
        except (OSError, ValueError) as exc:
            raise SinkError(f"writing {path} failed: {exc}") from None
        self.frames_written += 1

    def _save(self, image: Image, meta: dict[str, Any], path: Path) -> None:
        from PIL import Image as PILImage

        img = PILImage.fromarray(np.ascontiguousarray(image[:, :, ::-1]), "RGB")
        img = _restore_mode(img, meta)
        suffix = path.suffix.lower()
        fmt = _LOSSY.get(suffix) or _LOSSLESS.get(suffix, "PNG")
        options: dict[str, Any] = {}
        if fmt in ("JPEG", "WEBP"):
            options["quality"] = self.quality
        if fmt == "JPEG":
            options["subsampling"] = 0 if self.quality >= 90 else 2  # 4:4:4 keeps high-quality colour edges
        if fmt == "PNG":
            options["compress_level"] = 3  # still lossless; level 6 is several times slower at 1080p
        if meta.get("icc_profile") and fmt in ("JPEG", "PNG", "WEBP", "TIFF"):
            options["icc_profile"] = meta["icc_profile"]
        if self.keep_metadata:
            if meta.get("exif") and fmt in ("JPEG", "PNG", "WEBP", "TIFF"):
                options["exif"] = meta["exif"]
            if meta.get("dpi"):
                options["dpi"] = meta["dpi"]
        img.save(path, format=fmt, **options)

    def close(self) -> None:
        return None


def _restore_mode(img: Any, meta: dict[str, Any]) -> Any:
    """Grey frames go back to grey, frames with alpha get their alpha back."""
    mode = meta.get("mode")
    alpha = meta.get("alpha")
    if alpha is not None and alpha.shape[:2] == (img.height, img.width):
        from PIL import Image as PILImage

        img = img.convert("RGBA")
        img.putalpha(PILImage.fromarray(alpha))
        return img
    if mode in ("L", "LA", "I;16", "I", "F"):
        return img.convert("L")
    return img
