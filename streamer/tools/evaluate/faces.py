"""An identity-labelled face set made from real photos that ship in installed packages.

Real people, several photos each, without downloading anything: scikit-image's
``astronaut`` and matplotlib's ``grace_hopper.jpg`` (both public domain) and the
six people of insightface's ``t1.jpg`` (when that wheel is installed). Each
person's extra "photos" are augmentations of the one real photo: a different
crop and scale, a small rotation, a mirror, brightness/contrast and JPEG
quality. They are not independent photos (same expression, same lighting), so
recognition across them is easier than across real photo sessions; every
report made from this set says so.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from streamer.core.types import Image
from streamer.io import demo

log = logging.getLogger(__name__)

AUGMENTATION_NOTE = (
    "identity-labelled set built in code from real photos shipped in packages (scikit-image astronaut, "
    "matplotlib grace_hopper, insightface t1.jpg): each person's photos are augmentations of one real photo "
    "(crop, scale, rotation, mirror, brightness/contrast, JPEG), so same-person matching is easier than "
    "across independent photos"
)


@dataclass(frozen=True)
class LabelledPhoto:
    """One photo, the person in it and a file-like name (``person/NN.jpg``)."""

    name: str
    person: str
    image: Image


def package_people() -> list[demo.FacePhoto]:
    """The real people available offline: astronaut and Grace Hopper first, then t1.jpg's six."""
    return [*demo.default_photos(), *demo.t1_photos()]


def augment(photo: demo.FacePhoto, rng: np.random.Generator, side: int = 224, plain: bool = False) -> Image:
    """A square ``side`` px photo of the face in ``photo``, randomly re-framed and re-exposed.

    ``plain``: the first photo of a person, framed straight and unaltered but for the scale.
    """
    x1, y1, x2, y2 = photo.box
    face = max(x2 - x1, y2 - y1)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    zoom = 2.2 if plain else rng.uniform(1.8, 2.6)
    angle = 0.0 if plain else rng.uniform(-12, 12)
    if not plain:
        cx += rng.uniform(-0.12, 0.12) * face
        cy += rng.uniform(-0.12, 0.12) * face
    scale = side / (zoom * face)
    matrix = cv2.getRotationMatrix2D((cx, cy), angle, scale)
    matrix[:, 2] += np.array([side / 2 - cx, side / 2 - cy])
    image = cv2.warpAffine(photo.image, matrix, (side, side), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REFLECT)
    if plain:
        return image
    if rng.random() < 0.5:
        image = np.ascontiguousarray(image[:, ::-1])
    image = cv2.convertScaleAbs(image, alpha=rng.uniform(0.75, 1.25), beta=rng.uniform(-20, 20))
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(40, 91))])
    decoded = cv2.imdecode(data, cv2.IMREAD_COLOR) if ok else None
    return decoded if decoded is not None else image


def builtin_faces(per_person: int = 4, people: int | None = None, seed: int = 0, side: int = 224) -> list[LabelledPhoto]:
    """``per_person`` photos of each package person (first ``people`` of them), deterministic for a seed."""
    rng = np.random.default_rng(seed)
    photos = []
    for photo in package_people()[:people]:
        for i in range(per_person):
            image = augment(photo, rng, side, plain=i == 0)
            photos.append(LabelledPhoto(f"{photo.name}/{i:02d}.jpg", photo.name, image))
    if not photos:
        log.warning("no face photos found in the installed packages")
    return photos


def write_faces(folder: str | Path, photos: list[LabelledPhoto]) -> Path:
    """Write photos as ``folder/person/NN.jpg`` (one sub-folder per identity); returns the folder."""
    root = Path(folder)
    for photo in photos:
        path = root / photo.name
        path.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(path), photo.image, [cv2.IMWRITE_JPEG_QUALITY, 95])
    return root
