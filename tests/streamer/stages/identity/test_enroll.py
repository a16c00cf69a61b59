"""``fawn enroll`` on real photos: names, one face per photo, re-enrolment, a private file."""

from __future__ import annotations

import argparse
import stat
from pathlib import Path

import cv2
import numpy as np
import pytest

from streamer.cli.enroll import IDENTITY_RUN_OPTIONS, add_enroll_parser, add_identity_run_args
from streamer.core.errors import GalleryError
from streamer.io import demo
from streamer.stages.detect import CenterFaceDetector
from streamer.stages.identity.enroll import ENROLL_THRESHOLD, collect_photos
from streamer.stages.identity.gallery import Gallery


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fawn")
    add_enroll_parser(parser.add_subparsers(dest="command", required=True))
    return parser


def _enroll(*argv: str) -> int:
    args = _parser().parse_args(["enroll", *argv])
    code: int = args.func(args)
    return code


def _t1() -> np.ndarray:
    path = demo.insightface_t1_path()
    assert path is not None, "insightface's t1.jpg is needed: pip install --no-deps insightface==2.1"
    image = cv2.imread(str(path))
    assert image is not None
    return image


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """people/grace/{a.jpg,b.png}, people/eileen.png (file stem), group.jpg (6 faces), wall.png (no face)."""
    root = tmp_path_factory.mktemp("photos")
    grace = demo.grace_hopper().image
    (root / "people" / "grace").mkdir(parents=True)
    cv2.imwrite(str(root / "people" / "grace" / "a.jpg"), grace)
    cv2.imwrite(str(root / "people" / "grace" / "b.png"), cv2.resize(cv2.flip(grace, 1)[60:420, 60:460], None, fx=0.7, fy=0.7))
    cv2.imwrite(str(root / "people" / "eileen.png"), demo.astronaut().image)
    (root / "people" / ".hidden.png").write_bytes(b"")  # ignored
    cv2.imwrite(str(root / "group.jpg"), _t1())
    cv2.imwrite(str(root / "wall.png"), demo.background(demo.ClipSpec(width=320, height=240)))
    return root


def test_names_from_name_flag_subfolder_or_stem(photos: Path) -> None:
    found = collect_photos([str(photos / "people")])
    assert sorted((p.person, p.path.name) for p in found) == [("eileen", "eileen.png"), ("grace", "a.jpg"), ("grace", "b.png")]
    assert {p.person for p in collect_photos([str(photos / "people")], name="Rear Admiral")} == {"Rear Admiral"}
    assert [p.person for p in collect_photos([str(photos / "wall.png")])] == ["wall"]
    with pytest.raises(GalleryError, match="not found: .*nowhere"):
        collect_photos([str(photos / "nowhere")])


def test_enroll_a_folder_of_people(photos: Path, tmp_path: Path) -> None:
    out = tmp_path / "people.fawn"
    assert _enroll(str(photos / "people"), "-o", str(out)) == 0
    gallery = Gallery.load(out)
    assert sorted(gallery.people) == ["eileen", "grace"]
    assert len(gallery.people["grace"]) == 2 and len(gallery.people["eileen"]) == 1
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert gallery.model_id.startswith("dlib-resnet:")
    # the two photos of Grace agree, and differ from Eileen
    g = gallery.people["grace"]
    assert float(g[0] @ g[1]) > 0.95 and float((g @ gallery.people["eileen"].T).max()) < 0.93


def test_re_enrolling_adds_photos_to_a_person(photos: Path, tmp_path: Path) -> None:
    out = tmp_path / "people.fawn"
    _enroll(str(photos / "people" / "grace" / "a.jpg"), "-o", str(out), "--name", "grace")
    assert len(Gallery.load(out).people["grace"]) == 1
    _enroll(str(photos / "people" / "grace" / "b.png"), "-o", str(out), "--name", "grace")
    _enroll(str(photos / "people" / "eileen.png"), "-o", str(out))
    gallery = Gallery.load(out)
    assert len(gallery.people["grace"]) == 2 and list(gallery.people["eileen"].shape) == [1, 128]


def test_photos_without_one_face_are_named_and_nothing_is_written(photos: Path, tmp_path: Path) -> None:
    out = tmp_path / "people.fawn"
    with pytest.raises(GalleryError) as caught:
        _enroll(str(photos / "group.jpg"), str(photos / "wall.png"), str(photos / "people"), "-o", str(out))
    message = str(caught.value)
    assert "2 of 5 photos cannot be enrolled" in message
    assert "group.jpg: 6 faces found (use --largest" in message
    assert "wall.png: no face found" in message
    assert not out.exists()


def test_largest_takes_the_biggest_face_of_a_group_photo(photos: Path, tmp_path: Path) -> None:
    out = tmp_path / "group.fawn"
    assert _enroll(str(photos / "group.jpg"), "-o", str(out), "--largest", "--name", "friend") == 0
    assert list(Gallery.load(out).people) == ["friend"]


def test_a_tight_face_crop_is_enrolled(tmp_path: Path, detector: CenterFaceDetector) -> None:
    """A photo that is only the face, which the detector misses as it is, is found on a padded copy."""
    face = demo.grace_hopper().image[142:326, 185:347]
    tight = cv2.resize(face, None, fx=2, fy=2, interpolation=cv2.INTER_LINEAR)
    assert not (detector.detect(tight).score >= ENROLL_THRESHOLD).any()
    path = tmp_path / "tight.png"
    cv2.imwrite(str(path), tight)
    out = tmp_path / "t.fawn"
    assert _enroll(str(path), "-o", str(out)) == 0
    _enroll(str(Path(demo.insightface_t1_path() or "").parent / "Tom_Hanks_54745.png"), "-o", str(out))
    gallery = Gallery.load(out)
    assert sorted(gallery.people) == ["Tom_Hanks_54745", "tight"]
    assert float(gallery.people["tight"][0] @ gallery.people["Tom_Hanks_54745"][0]) < 0.93


def test_run_identity_options_map_to_config_keys() -> None:
    parser = argparse.ArgumentParser()
    add_identity_run_args(parser)
    args = parser.parse_args(["--audit", "a.jsonl", "--identity-model", "arcface", "--identity-model-path", "/m"])
    overrides = {key: getattr(args, name) for name, key in IDENTITY_RUN_OPTIONS.items()}
    assert overrides == {"identity.audit": "a.jsonl", "identity.model": "arcface", "identity.model_path": "/m"}
