"""k-Same: replace each face with the average face of a cluster of at least k gallery people.

The gallery is a set of real face photos (``ksame.faces``: a folder, one
sub-folder per person, or one person per loose photo). Every gallery face is
aligned from its 5 landmarks onto dlib's template (re-padded to ``padding``)
and embedded with the identity model. People (a person's photos averaged into
one face and one embedding) are grouped into clusters of at least ``k`` by a
fixed-size microaggregation in embedding space: the person farthest from the
centroid of those left seeds a cluster with their k-1 nearest, repeated; the
last cluster takes the k..2k-1 left over. A cluster's replacement face is the
pixel average of its people's faces.

A face in a frame is aligned the same way, embedded, assigned to a cluster (its
own cluster if it is a gallery photo, else the nearest cluster centroid) and
replaced by that cluster's average face, warped back with the inverse affine
and blended through a feathered ellipse. Every member of a cluster is replaced
by the very same face, so the inner face narrows a person down to at best k
people (hair, ears and background outside the ellipse are left as they are). A
track keeps its cluster (one embedding per track, again when its box jumps),
so the face shown does not flicker.

A ``fawn enroll`` gallery holds embeddings only (never photos), so it cannot
make average faces: k-Same refuses it with an explanation.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np
import numpy.typing as npt

from streamer.core.boxes import iou
from streamer.core.config import AnonymizerConfig, DetectorConfig, IdentityConfig, KSameConfig
from streamer.core.errors import ConfigError, GalleryError
from streamer.core.media import IMAGE_SUFFIXES
from streamer.core.types import FaceDetections, FloatArray, Image, IntArray
from streamer.stages.anonymize.base import Anonymizer, feathered_mask
from streamer.stages.anonymize.filters import BlurAnonymizer
from streamer.stages.identity.align import (
    DLIB_TEMPLATE_150,
    ellipse_covers_box,
    similarity_transform,
)

log = logging.getLogger(__name__)

DLIB_TEMPLATE_PADDING = 0.25  # DLIB_TEMPLATE_150 is dlib's chip at padding 0.25
# the face ellipse in dlib's unpadded chip coordinates (0..1 from jaw to jaw, brows to chin)
FACE_CENTER = (0.5, 0.42)
FACE_RADII = (0.64, 0.74)
MEMBER_SIMILARITY = 0.9999  # an embedding this close to a gallery face is that face
REEMBED_IOU = 0.3  # a track whose box moved more than this (IoU below) is embedded again
FORGET_AFTER = 300  # drop a track's cluster after this many frames unseen


def chip_template(size: int, padding: float) -> FloatArray:
    """dlib's 5-point template for a ``size`` px chip at ``padding`` (dlib's get_face_chip convention)."""
    unpadded = DLIB_TEMPLATE_150 / 150.0 * (1 + 2 * DLIB_TEMPLATE_PADDING) - DLIB_TEMPLATE_PADDING
    return ((unpadded + padding) / (1 + 2 * padding) * size).astype(np.float32)


def face_ellipse(size: int, padding: float) -> tuple[tuple[float, float], tuple[float, float]]:
    """Centre and radii (chip pixels) of the face ellipse in a ``size`` px chip at ``padding``."""
    scale = size / (1 + 2 * padding)
    cx, cy = ((c + padding) * scale for c in FACE_CENTER)
    return (cx, cy), (FACE_RADII[0] * scale, FACE_RADII[1] * scale)


def face_mask(size: int, padding: float, feather: float) -> FloatArray:
    """Feathered face ellipse in a chip, [size, size, 1] in [0, 1] (opaque inside ``1 - feather`` of the radii)."""
    center, radii = face_ellipse(size, padding)
    return feathered_mask(size, size, center, radii, feather)[:, :, None]


def cluster_fixed_size(embeddings: FloatArray, k: int) -> list[IntArray]:
    """Partition rows into clusters of at least ``k`` (all of size k but the last, k..2k-1).

    Repeatedly: the row farthest (cosine) from the centroid of the rows left
    seeds a cluster with its k-1 nearest rows left. Deterministic.
    """
    vectors = np.asarray(embeddings, np.float64)
    n = len(vectors)
    if k < 1 or n < k:
        raise ConfigError(f"k-Same needs at least k={k} gallery faces, got {n}")
    left = np.arange(n)
    clusters: list[IntArray] = []
    while len(left) >= 2 * k:
        centroid = vectors[left].mean(axis=0)
        seed = left[int(np.argmin(vectors[left] @ centroid))]
        nearest = np.argsort(-(vectors[left] @ vectors[seed]), kind="stable")[:k]
        members = np.sort(left[nearest])
        clusters.append(members.astype(np.int64))
        left = np.setdiff1d(left, members)
    clusters.append(left.astype(np.int64))
    return clusters


@dataclass
class KSameGallery:
    """Aligned gallery faces, their clusters and each cluster's average face.

    Clusters group *people*, not photos: ``identities`` names the person of each
    crop (default: every crop a different person), a person's photos are first
    averaged into one face and one embedding, and each cluster holds at least
    ``k`` people. (k-Same over photos would let k photos of one person form a
    cluster whose average is that person.) A cluster's face is the mean of its
    people's faces, each person weighing the same.
    """

    crops: npt.NDArray[np.uint8]  # [N, S, S, 3] aligned BGR
    embeddings: FloatArray  # [N, D] unit rows
    k: int
    padding: float
    identities: list[str] = field(default_factory=list)
    labels: IntArray = field(init=False)  # cluster of each gallery crop
    averages: npt.NDArray[np.uint8] = field(init=False)  # [C, S, S, 3]
    centroids: FloatArray = field(init=False)  # [C, D] unit rows
    people: list[list[str]] = field(init=False)  # the people of each cluster

    def __post_init__(self) -> None:
        if len(self.crops) != len(self.embeddings):
            raise ValueError(f"{len(self.crops)} crops but {len(self.embeddings)} embeddings")
        if not self.identities:
            self.identities = [f"face{i}" for i in range(len(self.crops))]
        if len(self.identities) != len(self.crops):
            raise ValueError(f"{len(self.crops)} crops but {len(self.identities)} identities")
        names = list(dict.fromkeys(self.identities))
        person = np.array([names.index(n) for n in self.identities], np.int64)
        faces = np.stack([self.crops[person == p].astype(np.float32).mean(axis=0) for p in range(len(names))])
        vectors = _unit(np.stack([self.embeddings[person == p].mean(axis=0) for p in range(len(names))]))
        if len(names) < self.k:
            raise ConfigError(f"k-Same with k={self.k} needs faces of at least {self.k} different people, got {len(names)}")
        clusters = cluster_fixed_size(vectors, self.k)
        of_person = np.zeros(len(names), np.int64)
        for c, members in enumerate(clusters):
            of_person[members] = c
        self.labels = of_person[person]
        self.averages = np.stack([_to_uint8(faces[m].mean(axis=0)) for m in clusters])
        self.centroids = _unit(np.stack([vectors[m].mean(axis=0) for m in clusters]))
        self.people = [[names[i] for i in m] for m in clusters]

    @property
    def size(self) -> int:
        return int(self.crops.shape[1])

    @property
    def n_clusters(self) -> int:
        return len(self.averages)

    def members(self, cluster: int) -> IntArray:
        """Indices of the gallery crops in ``cluster``."""
        return np.flatnonzero(self.labels == cluster).astype(np.int64)

    def assign(self, embeddings: FloatArray) -> IntArray:
        """Cluster of each embedding: a gallery face's own cluster, else the nearest centroid."""
        e = np.asarray(embeddings, np.float32).reshape(-1, self.embeddings.shape[1])
        to_members = e @ self.embeddings.T
        nearest = np.argmax(e @ self.centroids.T, axis=1)
        best = np.argmax(to_members, axis=1)
        own = to_members[np.arange(len(e)), best] >= MEMBER_SIMILARITY
        return np.where(own, self.labels[best], nearest).astype(np.int64)


def _unit(vectors: npt.NDArray[np.floating]) -> FloatArray:
    v = np.asarray(vectors, np.float32)
    return (v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)).astype(np.float32)


def _to_uint8(image: npt.NDArray[np.floating]) -> npt.NDArray[np.uint8]:
    return np.clip(image + 0.5, 0, 255).astype(np.uint8)


class _Embedder(Protocol):
    """What k-Same needs of an identity model (:class:`streamer.stages.identity.embed.Embedder` is one)."""

    def align(self, image: Image, landmarks: FloatArray) -> Image: ...

    def embed(self, crops: list[Image]) -> FloatArray: ...


@dataclass
class _TrackState:
    cluster: int
    box: FloatArray
    seen: int


class KSameAnonymizer:
    """``Anonymizer`` replacing every non-visible face with its k-Same cluster's average face.

    ``fallback`` hides the rare face that cannot be aligned (degenerate landmarks);
    a face whose pasted average would not cover its detector box (checked with
    :func:`~streamer.stages.identity.align.ellipse_covers_box`, as the diffusion anonymizer does)
    is hidden by ``fallback`` first and the average pasted over it, so no part of
    the box shows the real face; privacy fails closed.
    """

    def __init__(self, gallery: KSameGallery, embedder: _Embedder, fallback: Anonymizer, feather: float = 0.15) -> None:
        self.gallery = gallery
        self.embedder = embedder
        self.fallback = fallback
        self.template = chip_template(gallery.size, gallery.padding)
        self.mask = face_mask(gallery.size, gallery.padding, feather)
        center, radii = face_ellipse(gallery.size, gallery.padding)
        opaque = max(0.0, 1.0 - feather)
        self._opaque = center, (radii[0] * opaque, radii[1] * opaque)  # where the paste hides everything
        self._tracks: dict[int, _TrackState] = {}
        self._calls = 0

    def apply(self, image: Image, dets: FaceDetections) -> Image:
        """Anonymize every non-visible face of ``image`` in place and return it."""
        self._calls += 1
        assert dets.visible is not None and dets.track_id is not None
        hide = np.flatnonzero(~dets.visible)
        if not len(hide):
            return image
        unaligned = np.zeros(len(dets), bool)
        if dets.landmarks is None:
            unaligned[hide] = True
        else:
            clusters = self.clusters_for(image, dets, hide)
            matrices = {int(i): _chip_matrix(dets.landmarks[i], self.template) for i in hide}
            unaligned[[i for i, m in matrices.items() if m is None]] = True
            uncovered = np.zeros(len(dets), bool)
            uncovered[[i for i, m in matrices.items() if m is not None and not ellipse_covers_box(dets.xyxy[i], m, *self._opaque)]] = True
            if uncovered.any():  # the average face alone would leave part of the real one showing
                log.debug("k-Same: %d face(s) the paste does not cover: blurred under the paste", int(uncovered.sum()))
                self.fallback.apply(image, dets[uncovered])
            for i, matrix in matrices.items():
                if matrix is not None:
                    self.paste(image, int(clusters[i]), matrix)
        if unaligned.any():
            log.warning("k-Same: %d face(s) without usable landmarks: blurred instead", int(unaligned.sum()))
            self.fallback.apply(image, dets[unaligned])
        self._forget()
        return image

    def clusters_for(self, image: Image, dets: FaceDetections, rows: IntArray) -> IntArray:
        """Cluster of each row in ``rows`` (indexed by row of ``dets``; -1 elsewhere)."""
        assert dets.landmarks is not None and dets.track_id is not None
        clusters = np.full(len(dets), -1, np.int64)
        todo = []
        for i in rows:
            state = self._tracks.get(int(dets.track_id[i])) if dets.track_id[i] >= 0 else None
            if state is not None and iou(state.box, dets.xyxy[i]) >= REEMBED_IOU:
                clusters[i] = state.cluster
                state.box, state.seen = dets.xyxy[i].copy(), self._calls
            else:
                todo.append(int(i))
        if todo:
            crops = [self.embedder.align(image, dets.landmarks[i]) for i in todo]
            assigned = self.gallery.assign(self.embedder.embed(crops))
            for i, c in zip(todo, assigned):
                clusters[i] = int(c)
                if dets.track_id[i] >= 0:
                    self._tracks[int(dets.track_id[i])] = _TrackState(int(c), dets.xyxy[i].copy(), self._calls)
        return clusters

    def paste(self, image: Image, cluster: int, matrix: npt.NDArray[np.float64]) -> None:
        """Blend cluster ``cluster``'s average face into ``image`` where ``matrix`` (frame -> chip) puts it."""
        size = self.gallery.size
        corners = np.array([[0, 0], [size, 0], [0, size], [size, size]], np.float64)
        inverse = cv2.invertAffineTransform(matrix)
        frame_pts = corners @ inverse[:, :2].T + inverse[:, 2]
        h, w = image.shape[:2]
        x1, y1 = (max(0, int(np.floor(v))) for v in frame_pts.min(axis=0))
        x2, y2 = min(w, int(np.ceil(frame_pts[:, 0].max()))), min(h, int(np.ceil(frame_pts[:, 1].max())))
        if x2 <= x1 or y2 <= y1:
            return
        shifted = matrix.copy()
        shifted[:, 2] += matrix[:, :2] @ np.array([x1, y1], np.float64)
        flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
        face = cv2.warpAffine(self.gallery.averages[cluster], shifted, (x2 - x1, y2 - y1), flags=flags)
        alpha = cv2.warpAffine(self.mask, shifted, (x2 - x1, y2 - y1), flags=flags)[:, :, None]
        roi = image[y1:y2, x1:x2]
        blended = roi.astype(np.float32) * (1.0 - alpha) + face.astype(np.float32) * alpha
        roi[...] = np.clip(blended + 0.5, 0, 255).astype(np.uint8)

    def _forget(self) -> None:
        stale = [t for t, s in self._tracks.items() if self._calls - s.seen > FORGET_AFTER]
        for t in stale:
            del self._tracks[t]


def _chip_matrix(landmarks: FloatArray, template: FloatArray) -> npt.NDArray[np.float64] | None:
    try:
        matrix = similarity_transform(landmarks, template)
    except ValueError:
        return None
    return matrix if np.isfinite(matrix).all() and abs(np.linalg.det(matrix[:, :2])) > 1e-9 else None


# ---------------------------------------------------------------- building a gallery from photos


class _Detector(Protocol):
    def detect(self, image: Image) -> FaceDetections: ...


def gallery_photos(folder: str | Path) -> list[Path]:
    """Image files under ``folder`` (recursive); a ``fawn enroll`` gallery file is refused."""
    root = Path(folder).expanduser()
    if root.is_file():
        raise GalleryError(
            f"ksame.faces: {root} is a file; k-Same needs a folder of face photos to average "
            "(a 'fawn enroll' gallery stores only embeddings, never photos, so it cannot make "
            "average faces): point ksame.faces (or --gallery with --method ksame) at a folder of face images"
        )
    if not root.is_dir():
        raise ConfigError(f"ksame.faces: folder not found: {root}")
    photos = sorted(
        p for p in root.rglob("*")
        if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file() and not any(s.startswith(".") for s in p.relative_to(root).parts)
    )
    if not photos:
        raise ConfigError(f"ksame.faces: no face photos in {root} (looked for {', '.join(sorted(IMAGE_SUFFIXES))})")
    return photos


def largest_face(detector: _Detector, image: Image) -> tuple[Image, FloatArray] | None:
    """(image the face was found in, its landmarks) for the largest face; a tight crop is padded and retried."""
    for attempt in range(2):
        if attempt:
            pad = max(image.shape[:2]) // 2
            image = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=(127, 127, 127))
        faces = detector.detect(image)
        if len(faces) and faces.landmarks is not None:
            return image, faces.landmarks[int(np.argmax(faces.area))]
    return None


def build_gallery(
    images: Sequence[tuple[str, str, Image]], detector: _Detector, embedder: _Embedder, k: int, size: int, padding: float
) -> KSameGallery:
    """A k-Same gallery from (name, person, photo) triples: the largest face of each photo
    (photos without a face are skipped)."""
    template = chip_template(size, padding)
    crops, embeddings, people = [], [], []
    for name, person, image in images:
        found = largest_face(detector, image)
        if found is None:
            log.warning("k-Same gallery: no face found in %s: skipped", name)
            continue
        frame, landmarks = found
        matrix = _chip_matrix(landmarks, template)
        if matrix is None:
            continue
        crops.append(cv2.warpAffine(frame, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE))
        embeddings.append(embedder.embed([embedder.align(frame, landmarks)])[0])
        people.append(person)
    if len(set(people)) < k:
        raise ConfigError(
            f"ksame.faces: usable faces of {len(set(people))} people; k-Same with k={k} needs at least {k} people"
        )
    log.info("k-Same gallery: %d faces of %d people, k=%d", len(crops), len(set(people)), k)
    return KSameGallery(np.stack(crops), np.stack(embeddings).astype(np.float32), k, padding, people)


def load_gallery(folder: str | Path, detector: _Detector, embedder: _Embedder, k: int, size: int, padding: float) -> KSameGallery:
    """A k-Same gallery from a folder of face photos: one sub-folder per person, or one person per loose photo."""
    root = Path(folder).expanduser()
    images = []
    for path in gallery_photos(root):
        rel = path.relative_to(root)
        person = rel.parts[0] if len(rel.parts) > 1 else rel.stem
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            log.warning("k-Same gallery: %s cannot be read as an image: skipped", path)
            continue
        images.append((str(path), person, image))
    return build_gallery(images, detector, embedder, k, size, padding)


def create_ksame(cfg: AnonymizerConfig, ksame: KSameConfig, identity: IdentityConfig) -> KSameAnonymizer:
    """The k-Same anonymizer of a config: gallery from ``ksame.faces``, embeddings from ``identity.model``."""
    from streamer.stages.detect import create_detector
    from streamer.stages.identity.embed import create_embedder

    if ksame.faces is None:
        raise ConfigError(
            "anonymizer.method 'ksame' needs ksame.faces: a folder of face photos to build the k-Same "
            "gallery from (a 'fawn enroll' gallery holds no photos, so it cannot be used)"
        )
    photos = gallery_photos(ksame.faces)  # fail on a bad folder before loading models
    log.info("k-Same: building the gallery from %d photo(s) in %s", len(photos), ksame.faces)
    detector = create_detector(DetectorConfig(threads=identity.threads))
    embedder = create_embedder(identity)
    gallery = load_gallery(ksame.faces, detector, embedder, ksame.k, ksame.size, ksame.padding)
    fallback = BlurAnonymizer(strength=max(cfg.strength, 0.5), padding=cfg.padding, feather=cfg.feather, shape=cfg.shape)
    return KSameAnonymizer(gallery, embedder, fallback, ksame.feather)
