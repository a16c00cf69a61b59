"""The annotation record: every hidden region per frame (JSON Lines and COCO), registered faces recorded as shown."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from streamer.cli.main import main
from streamer.core.boxes import iou_matrix
from streamer.core.config import load_config
from streamer.core.stats import RunStats
from streamer.core.types import FaceDetections, Frame
from streamer.io import demo
from streamer.io.annotations import AnnotationWriter
from streamer.stages.identity.enroll import EnrollOptions, enroll
from tests.streamer.dashcam_media import HEIGHT, WIDTH, scene, write_sequence


@pytest.fixture(scope="module")
def drive(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """4 frames with 3 pedestrians each, then frame_5: the street with nobody in it."""
    seq = write_sequence(tmp_path_factory.mktemp("drive") / "cam0", n=4)
    empty = np.ascontiguousarray(scene()[:HEIGHT, :WIDTH])
    cv2.imwrite(str(seq.folder / "frame_5.jpg"), empty, [cv2.IMWRITE_JPEG_QUALITY, 95])
    return seq


def _matches(boxes: list[list[float]], truth: np.ndarray) -> bool:
    """Each ground-truth face is covered by exactly one recorded box."""
    if len(boxes) != len(truth):
        return False
    iou = iou_matrix(np.array(boxes, np.float32).reshape(-1, 4), truth)
    return bool((iou.max(axis=0) > 0.5).all())


def test_jsonl_one_record_per_frame_one_region_per_hidden_face(drive: Any, tmp_path: Path) -> None:
    record = tmp_path / "hidden.jsonl"
    assert main(["run", str(drive.folder), "-o", str(tmp_path / "out"), "-c", "dashcam",
                 "--annotations", str(record), "--no-progress"]) == 0
    lines = [json.loads(line) for line in record.read_text().splitlines()]
    assert [r["file"] for r in lines] == [*drive.names, "frame_5.jpg"]
    assert [r["frame"] for r in lines] == [0, 1, 2, 3, 4]
    assert lines[1]["time"] == pytest.approx(0.1) and (lines[0]["width"], lines[0]["height"]) == (1920, 1080)
    for rec, truth in zip(lines, drive.boxes):
        assert _matches([r["box"] for r in rec["regions"]], truth), rec
        assert {(r["class"], r["method"], r["decision"]) for r in rec["regions"]} == {("face", "blur", "pending")}
    tracks = [sorted(r["track_id"] for r in rec["regions"]) for rec in lines[:4]]
    assert all(t == tracks[0] for t in tracks) and min(tracks[0]) >= 0  # one track per pedestrian throughout
    assert lines[4]["regions"] == [] or all(r["coasting"] for r in lines[4]["regions"])  # nobody there: no new faces
    assert "embedding" not in record.read_text()


def test_coco_images_annotations_categories(drive: Any, tmp_path: Path) -> None:
    record = tmp_path / "hidden.json"
    assert main(["run", str(drive.folder), "-o", str(tmp_path / "out"), "-c", "dashcam", "--annotations",
                 str(record), "--annotations-format", "coco", "--no-progress"]) == 0
    coco = json.loads(record.read_text())
    assert [c["name"] for c in coco["categories"]][:2] == ["face", "plate"]
    assert [im["file_name"] for im in coco["images"]] == [*drive.names, "frame_5.jpg"]
    assert all((im["width"], im["height"]) == (1920, 1080) for im in coco["images"])
    for image, truth in zip(coco["images"], drive.boxes):
        anns = [a for a in coco["annotations"] if a["image_id"] == image["id"]]
        xyxy = [[x, y, x + w, y + h] for x, y, w, h in (a["bbox"] for a in anns)]
        assert _matches(xyxy, truth)
        assert all(a["category_id"] == 1 and a["method"] == "blur" and a["track_id"] >= 0 for a in anns)
    assert len({a["id"] for a in coco["annotations"]}) == len(coco["annotations"])


@pytest.fixture(scope="module")
def grace_gallery(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("gallery")
    image = demo.grace_hopper().image
    h, w = image.shape[:2]
    other = cv2.warpAffine(image, cv2.getRotationMatrix2D((w / 2, h / 2), 10, 0.6), (w, h), borderValue=(90, 90, 90))
    cv2.imwrite(str(folder / "grace.jpg"), other, [cv2.IMWRITE_JPEG_QUALITY, 60])
    enroll(EnrollOptions((str(folder / "grace.jpg"),), str(folder / "people.fawn")), load_config(None))
    return folder / "people.fawn"


def test_registered_face_is_recorded_as_shown(grace_gallery: Path, tmp_path: Path) -> None:
    folder = tmp_path / "seq"
    folder.mkdir()
    frames = list(demo.render(demo.demo_spec(seconds=0.7)))  # astronaut and Grace Hopper, 21 frames
    for i, (image, _) in enumerate(frames):
        cv2.imwrite(str(folder / f"{i:04d}.png"), image)
    record = tmp_path / "hidden.jsonl"
    assert main(["run", str(folder), "-o", str(tmp_path / "out"), "--gallery", str(grace_gallery), "--mode",
                 "exempt", "--annotations", str(record), "--no-progress"]) == 0
    regions = [r for line in record.read_text().splitlines() for r in json.loads(line)["regions"]]
    shown = [r for r in regions if r["method"] == "none"]
    assert shown and all(r["decision"] == "registered:grace" for r in shown)
    assert all(r["method"] == "blur" for r in regions if not r["decision"].startswith("registered:"))
    hidden = [r for r in regions if r["method"] == "blur"]
    assert len(hidden) >= len(frames)  # the astronaut at least, in every frame


def test_class_from_the_detections_kind_and_whole_frame_blur_recorded(tmp_path: Path) -> None:
    stats = RunStats()
    writer = AnnotationWriter(str(tmp_path / "a.jsonl"), "jsonl", "pixelate", stats, plate_method="solid")
    dets = FaceDetections(np.array([[10, 10, 50, 30], [60, 60, 90, 90]], np.float32), np.array([0.9, 0.8]),
                          track_id=np.array([4, 5]), identity=[None, "unknown"])
    dets.kind = ["plate", "face"]  # type: ignore[attr-defined]  # the class field plates add
    frame = Frame(np.zeros((120, 160, 3), np.uint8), 0, pts=0, time_base=Fraction(1, 10), extra={"name": "a.png"})
    writer.observe(frame, dets)
    stats.frame_errors += 1  # the next frame failed: the processor blurred it whole
    writer.observe(Frame(frame.image, 1, pts=1, time_base=Fraction(1, 10)), FaceDetections.empty())
    writer.close()
    first, second = (json.loads(line) for line in (tmp_path / "a.jsonl").read_text().splitlines())
    assert [(r["class"], r["track_id"], r["decision"], r["method"]) for r in first["regions"]] == [
        ("plate", 4, "pending", "solid"), ("face", 5, "unknown", "pixelate")]
    assert second["regions"] == [{"class": "frame", "box": [0.0, 0.0, 160.0, 120.0], "track_id": -1,
                                  "decision": "error", "method": "blur_frame", "coasting": False, "score": 1.0}]
    assert second["file"] is None and second["time"] == pytest.approx(0.1)


def test_unwritable_annotations_path_fails_before_the_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    seq = write_sequence(tmp_path / "seq", n=1, width=320, height=240)
    rc = main(["run", str(seq.folder), "-o", str(tmp_path / "out"), "--annotations",
               str(tmp_path / "missing" / "a.jsonl"), "--no-progress"])
    assert rc != 0
    assert "cannot write the annotations file" in capsys.readouterr().err
    with pytest.raises(Exception, match="annotations.format"):
        load_config(None, {"annotations.format": "xml"})
