"""``fawn enroll``: photos of registered people -> a gallery of face embeddings.

Each photo must show exactly one face (``--largest`` takes the largest of
several). A person's name comes from ``--name``, else the sub-folder of a
directory argument the photo sits in, else the photo's file stem. Enrolling
into an existing gallery adds photos (and people) to it. Only embeddings and
the identity model's id are stored, never the photos; the file is 0600.

Also here: the identity options of ``fawn run`` (:func:`add_identity_run_args`).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np

from streamer.core.config import PipelineConfig
from streamer.core.errors import GalleryError
from streamer.core.media import IMAGE_SUFFIXES
from streamer.core.types import FaceDetections, Image
from streamer.stages.detect import Detector, create_detector
from streamer.stages.identity.embed import Embedder, create_embedder
from streamer.stages.identity.gallery import Gallery, check_name

log = logging.getLogger(__name__)

ENROLL_THRESHOLD = 0.5  # detector score a face in an enrolment photo needs

@dataclass(frozen=True)
class Photo:
    path: Path
    person: str


@dataclass(frozen=True)
class EnrollOptions:
    inputs: tuple[str, ...]
    output: str
    name: str | None = None
    largest: bool = False


def collect_photos(inputs: tuple[str, ...] | list[str], name: str | None = None) -> list[Photo]:
    """Photos and their person names from files and directories (searched recursively)."""
    photos: list[Photo] = []
    for item in inputs:
        root = Path(item).expanduser()
        if root.is_file():
            photos.append(Photo(root, name or root.stem))
        elif root.is_dir():
            photos.extend(_photos_in(root, name))
        else:
            raise GalleryError(f"photo or folder not found: {item}")
    if not photos:
        raise GalleryError(f"no photos found in {', '.join(inputs)} (looked for {', '.join(sorted(IMAGE_SUFFIXES))})")
    for photo in photos:
        check_name(photo.person)
    return photos


def _photos_in(root: Path, name: str | None) -> list[Photo]:
    found = []
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if path.suffix.lower() not in IMAGE_SUFFIXES or any(p.startswith(".") for p in rel.parts) or not path.is_file():
            continue
        person = name or (rel.parts[0] if len(rel.parts) > 1 else path.stem)
        found.append(Photo(path, person))
    return found


def find_face(detector: Detector, image: Image, largest: bool) -> tuple[Image, FaceDetections]:
    """The one face of a photo (image it was found in, one-row detections), or a message why not.

    A tightly cropped face is detected again on a padded copy of the photo.
    """
    faces = detector.detect(image)
    if not len(faces):
        pad = max(image.shape[:2]) // 2
        image = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=(127, 127, 127))
        faces = detector.detect(image)
    if not len(faces):
        raise _PhotoProblem("no face found")
    if len(faces) > 1 and not largest:
        raise _PhotoProblem(f"{len(faces)} faces found (use --largest to take the largest, or crop the photo)")
    return image, faces[int(np.argmax(faces.area))]


class _PhotoProblem(Exception):
    """Why one photo cannot be enrolled (collected, then reported together)."""


def embed_photo(path: Path, detector: Detector, embedder: Embedder, largest: bool) -> np.ndarray:
    """The embedding [1, dim] of the face in one photo."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise _PhotoProblem("cannot be read as an image")
    image, face = find_face(detector, image, largest)
    assert face.landmarks is not None
    size = float(min(face.xyxy[0, 2] - face.xyxy[0, 0], face.xyxy[0, 3] - face.xyxy[0, 1]))
    if size < 40:
        log.warning("%s: the face is small (%.0f px): a larger photo recognizes better", path, size)
    return embedder.embed([embedder.align(image, face.landmarks[0])])


def enroll(options: EnrollOptions, cfg: PipelineConfig) -> Gallery:
    """Embed every photo and add it to the gallery at ``options.output`` (created if missing).

    Nothing is written when any photo fails: every failing photo is named in the error.
    """
    photos = collect_photos(options.inputs, options.name)
    embedder = create_embedder(cfg.identity)
    output = Path(options.output)
    gallery = Gallery.load(output) if output.exists() else Gallery(embedder.model_id, embedder.dim)
    gallery.check_model(embedder.model_id, str(output))
    # enrolment photos are portraits: a stricter detector threshold than the stream's
    # (which favours recall) keeps stray low-score detections from counting as faces
    detector = create_detector(replace(cfg.detector, threshold=max(cfg.detector.threshold, ENROLL_THRESHOLD)))
    vectors: dict[str, list[np.ndarray]] = defaultdict(list)
    problems = []
    for photo in photos:
        try:
            vectors[photo.person].append(embed_photo(photo.path, detector, embedder, options.largest))
        except _PhotoProblem as exc:
            problems.append(f"{photo.path}: {exc}")
    if problems:
        raise GalleryError(f"{len(problems)} of {len(photos)} photos cannot be enrolled (nothing written):\n  " + "\n  ".join(problems))
    for person, rows in vectors.items():
        added = gallery.add(person, np.concatenate(rows))
        log.info("enrolled %s: %d new photo(s), %d in all", person, added, len(gallery.people[check_name(person)]))
    gallery.save(output)
    return gallery
