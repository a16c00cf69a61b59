"""k-Same: fixed-size clusters of at least k people, one average face per cluster, in the stream."""

from pathlib import Path

import cv2
import numpy as np
import pytest

from streamer.core.config import AnonymizerConfig, IdentityConfig, KSameConfig, TrackerConfig
from streamer.core.errors import ConfigError, GalleryError
from streamer.core.types import FaceDetections, Frame, Image
from streamer.runtime.processor import FrameProcessor
from streamer.stages.anonymize import create_anonymizer
from streamer.stages.anonymize.filters import BlurAnonymizer
from streamer.stages.anonymize.ksame import (
    KSameAnonymizer,
    KSameGallery,
    build_gallery,
    chip_template,
    cluster_fixed_size,
    face_mask,
)
from streamer.stages.identity.align import similarity_transform
from streamer.stages.identity.embed import create_embedder
from streamer.stages.identity.resolver import AnonymizeEveryone
from streamer.stages.track import SortTracker
from streamer.tools import verify
from streamer.tools.evaluate.faces import builtin_faces, package_people, write_faces


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@pytest.mark.parametrize(("n", "k", "sizes"), [(10, 3, [3, 3, 4]), (6, 3, [3, 3]), (5, 3, [5]), (9, 2, [2, 2, 2, 3])])
def test_clusters_partition_into_groups_of_at_least_k(n: int, k: int, sizes: list[int]) -> None:
    clusters = cluster_fixed_size(_unit(np.random.default_rng(n).normal(size=(n, 8))), k)
    assert [len(c) for c in clusters] == sizes
    assert sorted(np.concatenate(clusters).tolist()) == list(range(n))


def test_well_separated_groups_are_recovered() -> None:
    rng = np.random.default_rng(0)
    centres = np.eye(3, 8) * 10
    points = _unit(np.concatenate([c + rng.normal(size=(3, 8)) * 0.1 for c in centres]))
    clusters = cluster_fixed_size(points, 3)
    assert sorted(sorted(c.tolist()) for c in clusters) == [[0, 1, 2], [3, 4, 5], [6, 7, 8]]


def test_fewer_faces_than_k_is_an_error() -> None:
    with pytest.raises(ConfigError, match="at least k=3"):
        cluster_fixed_size(np.eye(2, dtype=np.float32), 3)


def test_clusters_group_people_not_photos() -> None:
    """Three photos of one person must not make a cluster on their own (its average would be that person)."""
    crops = np.zeros((6, 32, 32, 3), np.uint8)
    for i in range(6):
        crops[i] = 40 * i
    emb = _unit(np.array([[1, 0.01], [1, 0.02], [1, 0.03], [0.01, 1], [0.02, 1], [0.5, 0.5]], np.float32))
    gallery = KSameGallery(crops, emb, k=2, padding=0.35, identities=["a", "a", "a", "b", "c", "d"])
    assert all(len(people) >= 2 for people in gallery.people)
    assert sorted(p for people in gallery.people for p in people) == ["a", "b", "c", "d"]
    with pytest.raises(ConfigError, match="at least 5 different people"):
        KSameGallery(crops, emb, k=5, padding=0.35, identities=["a", "a", "a", "b", "c", "d"])


@pytest.fixture(scope="module")
def embedder():  # type: ignore[no-untyped-def]
    return create_embedder(IdentityConfig(threads=2))


@pytest.fixture(scope="module")
def photos() -> list:  # type: ignore[type-arg]
    if len(package_people()) < 4:
        pytest.skip("the insightface wheel (t1.jpg's six people) is not installed")
    return builtin_faces(2)  # 8 real people, 2 photos each


@pytest.fixture(scope="module")
def gallery(photos, detector, embedder) -> KSameGallery:  # type: ignore[no-untyped-def]
    return build_gallery([(p.name, p.person, p.image) for p in photos], detector, embedder, 3, 128, 0.35)


def test_real_gallery_clusters_have_at_least_k_people(gallery: KSameGallery) -> None:
    assert gallery.n_clusters == 2  # 8 people, k=3: one cluster of 3, the last of 5
    assert sorted(len(p) for p in gallery.people) == [3, 5]
    for c in range(gallery.n_clusters):
        people = {gallery.identities[i] for i in gallery.members(c)}
        assert people == set(gallery.people[c]) and len(people) >= gallery.k
    assert (gallery.assign(gallery.embeddings) == gallery.labels).all()  # members map to their own cluster


def _aligned(image: Image, landmarks: np.ndarray, gallery: KSameGallery) -> np.ndarray:
    matrix = similarity_transform(landmarks, chip_template(gallery.size, gallery.padding))
    return cv2.warpAffine(image, matrix, (gallery.size, gallery.size), flags=cv2.INTER_LINEAR).astype(np.float32)


def test_every_member_of_a_cluster_gets_the_same_face(photos, gallery, detector, embedder) -> None:  # type: ignore[no-untyped-def]
    anonymizer = KSameAnonymizer(gallery, embedder, BlurAnonymizer(), feather=0.15)
    core = face_mask(gallery.size, gallery.padding, 0.0)[:, :, 0] * (face_mask(gallery.size, gallery.padding, 0.3)[:, :, 0] >= 1)
    inner = core > 0
    shown: dict[int, list[np.ndarray]] = {}
    for photo in photos:
        dets = detector.detect(photo.image)
        row = int(np.argmax(dets.area))
        out = anonymizer.apply(photo.image.copy(), dets)
        cluster = int(anonymizer.clusters_for(photo.image, dets, np.array([row]))[row])
        face = _aligned(out, dets.landmarks[row], gallery)
        average = gallery.averages[cluster].astype(np.float32)
        assert np.abs(face - average)[inner].mean() < 4.0  # the cluster's face, up to resampling
        shown.setdefault(cluster, []).append(face)
    assert set(shown) == set(range(gallery.n_clusters))
    a, b = (np.mean(faces, axis=0) for faces in shown.values())
    assert np.abs(a - b)[inner].mean() > 8.0  # different clusters show different faces


def test_enroll_gallery_is_refused_with_an_explanation(tmp_path: Path) -> None:
    enrolled = tmp_path / "people.fawn"
    enrolled.write_text('{"format": "fawn-gallery"}')
    enrolled.chmod(0o600)
    cfg = AnonymizerConfig(method="ksame")
    with pytest.raises(GalleryError, match="face photos.*fawn enroll|fawn enroll.*face"):
        create_anonymizer(cfg, ksame=KSameConfig(faces=str(enrolled)))
    with pytest.raises(ConfigError, match="ksame.faces"):
        create_anonymizer(cfg, ksame=KSameConfig())


def test_ksame_in_the_streaming_pipeline(tmp_path: Path, demo_frames, detector) -> None:  # type: ignore[no-untyped-def]
    """Gallery from a folder of photos (one sub-folder per person); demo faces hidden, one embedding per track.

    The gallery holds other people than the clip (t1.jpg's six): the demo's faces become averages of strangers.
    """
    strangers = [p for p in builtin_faces(1) if p.person.startswith("t1_")]
    if len(strangers) < 6:
        pytest.skip("the insightface wheel (t1.jpg's six people) is not installed")
    folder = write_faces(tmp_path / "faces", strangers)
    anonymizer = create_anonymizer(
        AnonymizerConfig(method="ksame"), ksame=KSameConfig(k=3, faces=str(folder)), identity=IdentityConfig(threads=2)
    )
    assert isinstance(anonymizer, KSameAnonymizer)
    calls: list[int] = []
    embed = anonymizer.embedder.embed
    anonymizer.embedder.embed = lambda crops: calls.append(len(crops)) or embed(crops)  # type: ignore[method-assign]
    t = TrackerConfig()
    processor = FrameProcessor(detector, SortTracker(t.max_coast, t.iou_threshold, t.max_center_jump, t.box_grow_per_frame),
                               AnonymizeEveryone(), anonymizer)
    for index, (image, gt) in enumerate(demo_frames[:8]):
        frame = Frame(image.copy(), index)
        processor.process(frame)
        for box in gt:
            assert verify.face_hidden(image, frame.image, box)
    assert sum(calls) == 2  # the demo's two tracks, each embedded once


def test_faces_without_landmarks_fall_back_to_blur(gallery, embedder, demo_frames) -> None:  # type: ignore[no-untyped-def]
    image, gt = demo_frames[0]
    anonymizer = KSameAnonymizer(gallery, embedder, BlurAnonymizer())
    out = anonymizer.apply(image.copy(), FaceDetections(gt, np.ones(len(gt))))
    assert all(verify.face_hidden(image, out, box) for box in gt)


def test_a_paste_that_misses_part_of_the_box_falls_back_to_blur(gallery, embedder, demo_frames, detector) -> None:  # type: ignore[no-untyped-def]
    """Landmarks squeezed into the box's top-left quarter: the average face would cover only that
    quarter and leave the rest of the real face showing; the whole box is blurred instead."""
    image, _ = demo_frames[0]
    dets = detector.detect(image)
    assert len(dets) >= 1 and dets.landmarks is not None
    box = dets.xyxy[:1]
    x1, y1 = box[0, :2]
    squeezed = (dets.landmarks[:1] - np.array([x1, y1])) * 0.4 + np.array([x1, y1])
    anonymizer = KSameAnonymizer(gallery, embedder, BlurAnonymizer())
    out = anonymizer.apply(image.copy(), FaceDetections(box, dets.score[:1], squeezed, track_id=np.array([1])))
    x1, y1, x2, y2 = (int(v) for v in box[0])
    lower_right = np.array([(x1 + x2) / 2, (y1 + y2) / 2, x2, y2], np.float32)
    assert verify.face_hidden(image, out, lower_right), "the part of the face the paste missed is still showing"
    assert verify.face_hidden(image, out, box[0])
