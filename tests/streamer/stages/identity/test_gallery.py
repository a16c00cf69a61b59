"""The gallery file: real face embeddings in, no photos stored, 0600, refused by another model."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import cv2
import numpy as np
import pytest

from streamer.core.config import IdentityConfig
from streamer.core.errors import ConfigError, GalleryError
from streamer.io import demo
from streamer.stages.detect import CenterFaceDetector
from streamer.stages.identity.embed import OnnxEmbedder, create_embedder
from streamer.stages.identity.gallery import Gallery
from streamer.stages.identity.resolver import (
    AnonymizeEveryone,
    TrackIdentityResolver,
    create_identity,
)


@pytest.fixture(scope="module")
def embeddings(detector: CenterFaceDetector) -> dict[str, np.ndarray]:
    """dlib embeddings [1,128] of real faces: Grace Hopper (photo and a mirrored copy), the astronaut, two of t1.jpg."""
    embedder = create_embedder(IdentityConfig(threads=2))
    grace = demo.grace_hopper().image
    t1_path = demo.insightface_t1_path()
    assert t1_path is not None, "insightface's t1.jpg is needed: pip install --no-deps insightface==2.1"
    t1 = cv2.imread(str(t1_path))
    t1_faces = detector.detect(t1)
    order = np.argsort(t1_faces.xyxy[:, 0])
    assert t1_faces.landmarks is not None
    out = {}
    for name, image in {"grace": grace, "grace_mirror": cv2.flip(grace, 1), "astronaut": demo.astronaut().image}.items():
        found = detector.detect(image)
        assert found.landmarks is not None and len(found) == 1
        out[name] = embedder.embed([embedder.align(image, found.landmarks[0])])
    for k in (0, 2):
        out[f"t1_{k}"] = embedder.embed([embedder.align(t1, t1_faces.landmarks[order[k]])])
    return out


@pytest.fixture(scope="module")
def model_id() -> str:
    return create_embedder(IdentityConfig()).model_id


def _gallery(model_id: str, embeddings: dict[str, np.ndarray]) -> Gallery:
    gallery = Gallery(model_id, 128)
    gallery.add("grace", embeddings["grace"])
    gallery.add("astronaut", embeddings["astronaut"])
    return gallery


def test_round_trip_keeps_people_and_matches(tmp_path: Path, model_id: str, embeddings: dict[str, np.ndarray]) -> None:
    gallery = _gallery(model_id, embeddings)
    path = tmp_path / "people.fawn"
    gallery.save(path)
    loaded = Gallery.load(path)
    assert loaded.model_id == model_id and loaded.dim == 128
    assert sorted(loaded.people) == ["astronaut", "grace"]
    np.testing.assert_allclose(loaded.people["grace"], gallery.people["grace"], atol=0)
    probes = np.concatenate([embeddings["grace_mirror"], embeddings["t1_0"]])
    names, scores = loaded.match(probes)
    assert names[0] == "grace" and scores[0] > 0.95
    assert scores[1] < 0.93  # a stranger's best match stays below dlib's threshold


def test_file_is_private_and_holds_no_photo(tmp_path: Path, model_id: str, embeddings: dict[str, np.ndarray]) -> None:
    path = tmp_path / "people.fawn"
    _gallery(model_id, embeddings).save(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    data = json.loads(path.read_text())
    assert set(data) == {"format", "version", "model", "dim", "people"}
    assert all(set(p) == {"name", "embeddings"} for p in data["people"])
    assert path.stat().st_size < 3000  # two 128-d vectors; a face crop would be tens of kB
    assert not list(tmp_path.glob(".people.fawn.*"))  # no temporary file left behind


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o622])
def test_a_gallery_others_can_access_is_refused(
    tmp_path: Path, model_id: str, embeddings: dict[str, np.ndarray], mode: int
) -> None:
    """Not just a warning: the file is refused, the one-line error names it and the fix."""
    path = tmp_path / "people.fawn"
    _gallery(model_id, embeddings).save(path)
    path.chmod(mode)
    with pytest.raises(GalleryError) as caught:
        Gallery.load(path)
    message = str(caught.value)
    assert str(path) in message and f"chmod 600 {path}" in message and "\n" not in message
    with pytest.raises(GalleryError, match="chmod 600"):
        create_identity(IdentityConfig(gallery=str(path)))
    path.chmod(0o600)
    assert set(Gallery.load(path).people) == {"grace", "astronaut"}  # the same file, private: accepted


def test_adding_photos_to_a_person_ignores_duplicates(model_id: str, embeddings: dict[str, np.ndarray]) -> None:
    gallery = _gallery(model_id, embeddings)
    assert gallery.add("grace", embeddings["grace_mirror"]) == 1
    assert gallery.add("grace", embeddings["grace"]) == 0  # the same photo again
    assert len(gallery.people["grace"]) == 2 and gallery.photo_count == 3


def test_refused_by_another_model(tmp_path: Path, embeddings: dict[str, np.ndarray]) -> None:
    path = tmp_path / "arc.fawn"
    Gallery("arcface:0123456789abcdef", 128, {"grace": embeddings["grace"]}).save(path)
    cfg = IdentityConfig(gallery=str(path))
    with pytest.raises(GalleryError, match=r"made with identity model arcface:0123456789abcdef, this run uses dlib-resnet:"):
        create_identity(cfg)


@pytest.mark.parametrize(
    "content, message",
    [
        (b"\x89PNG\r\n", "not a fawn gallery"),
        (b'{"format": "fawn-gallery", "version": 99}', "version 99 not supported"),
        (b'{"format": "fawn-gallery", "version": 1, "model": "m", "dim": 128, "people": [{"name": "x", "embeddings": "AAAA"}]}',
         "not a multiple of 128"),
        (b'{"format": "fawn-gallery", "version": 1, "model": "m", "dim": 128, "people": [{"name": "", "embeddings": ""}]}',
         "invalid person name"),
    ],
)
def test_corrupt_files_are_reported(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad.fawn"
    path.write_bytes(content)
    path.chmod(0o600)
    with pytest.raises(GalleryError, match=message):
        Gallery.load(path)


def test_missing_gallery_says_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(GalleryError, match="fawn enroll"):
        create_identity(IdentityConfig(gallery=str(tmp_path / "none.fawn")))


def test_factory_picks_the_resolver(tmp_path: Path, model_id: str, embeddings: dict[str, np.ndarray]) -> None:
    path = tmp_path / "people.fawn"
    _gallery(model_id, embeddings).save(path)
    assert isinstance(create_identity(IdentityConfig()), AnonymizeEveryone)
    assert isinstance(create_identity(IdentityConfig(gallery=str(path), mode="all")), AnonymizeEveryone)
    resolver = create_identity(IdentityConfig(gallery=str(path), mode="exempt"))
    assert isinstance(resolver, TrackIdentityResolver) and isinstance(resolver.embedder, OnnxEmbedder)
    with pytest.raises(ConfigError, match="needs identity.gallery"):
        create_identity(IdentityConfig(mode="target"))
    empty = tmp_path / "empty.fawn"
    Gallery(model_id, 128).save(empty)
    with pytest.raises(GalleryError, match="no registered people"):
        create_identity(IdentityConfig(gallery=str(empty)))


def test_wrong_dimension_is_refused(model_id: str, embeddings: dict[str, np.ndarray]) -> None:
    gallery = Gallery(model_id, 512)
    with pytest.raises(GalleryError, match="do not fit a 512-d gallery"):
        gallery.add("grace", embeddings["grace"])
