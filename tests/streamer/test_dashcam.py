"""A dashcam drive end to end: a folder of 1080p frames from real photos with small pedestrians'
faces *and* licence plates (real cars with their real plates, tests/streamer/car_photos.py, and
rendered plates on the road), camera motion, through ``fawn run -c dashcam --plates`` with an
annotation record. Same names and sizes out, every face and every plate hidden, each hidden
region in the record.

The plate model is the ONNX file inside the ``platedet`` wheel (AGPL-3.0, test-only, read and never
imported; see tests/streamer/stages/test_plates.py). Its plates are Mercosur-style, the layout that model
was trained on (docs/benchmarks.md §8 has its recall on other layouts); the real cars' plates are a
US and a Czech (EU) one.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from streamer.cli.main import main
from streamer.io import demo
from streamer.tools import plate_scenes, verify
from tests.streamer import car_photos, dashcam_media

FRAMES = 4


def _platedet() -> Path:
    spec = importlib.util.find_spec("platedet")
    if spec is None or not spec.submodule_search_locations:
        pytest.fail("platedet is not installed: run `make setup` (it installs it for the tests only)")
    return Path(list(spec.submodule_search_locations)[0]) / "artifacts" / "platedet.onnx"


def _drive(folder: Path) -> tuple[list[str], list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
    """1080p frames of a panning camera over a real photo and a road with four moving Mercosur plates
    (streamer.tools.plate_scenes), two real cars with their plates (photos, moving with the pan) and
    three walking pedestrians' faces (real photos, 26-40 px), as JPEG."""
    photos = demo.default_photos()
    walkers = [(photos[0], 40.0, 0.30, 0.59, 6.0), (photos[1], 32.0, 0.55, 0.59, -4.0), (photos[0], 26.0, 0.78, 0.59, 3.0)]
    folder.mkdir(parents=True)
    names, written, faces, plates = [], [], [], []
    scenes = plate_scenes.plate_frames((1920, 1080), FRAMES, styles=("mercosur",), backdrop="rocket", seed=0)
    for i, (frame, road_plates) in enumerate(scenes, 1):
        cars = [car_photos.paste(frame, "us-police-rear", 20 - 4 * i, -140, 1.6, crop=(150, 0, 642, 450)),
                car_photos.paste(frame, "cz-front", 1240 - 4 * i, 60, 1.5)]
        plate_boxes = np.concatenate([road_plates, *cars])
        face_boxes = []
        for photo, size, fx, fy, vx in walkers:
            box = demo._paste(frame, demo.Actor(photo, size, (0, 0), (0, 0)), fx * 1920 + vx * i, fy * 1080, size)
            assert box is not None
            face_boxes.append(box)
        name = f"frame_{i}.jpg"
        assert cv2.imwrite(str(folder / name), frame, [cv2.IMWRITE_JPEG_QUALITY, 95])
        names.append(name)
        written.append(cv2.imread(str(folder / name)))
        faces.append(np.array(face_boxes, np.float32))
        plates.append(plate_boxes)
    return names, written, faces, plates


def _config(tmp_path: Path) -> Path:
    """The dashcam preset with the plate model on (its plate settings: 2x1 tiles and the whole frame)."""
    preset = dashcam_media.dashcam_preset()
    assert preset["plates"]["model"] is None and preset["plates"]["whole_frame"]
    return dashcam_media.dashcam_config_with_plates(tmp_path, str(_platedet()))


def _check(out: Path, record: Path, drive: tuple[list[str], list[np.ndarray], list[np.ndarray], list[np.ndarray]]) -> None:
    """Same names and sizes, every face and plate hidden, every hidden region in the record."""
    names, frames, faces, plates = drive
    assert sorted(p.name for p in out.iterdir()) == sorted(names)
    outputs = [cv2.imread(str(out / name)) for name in names]
    assert all(o.shape == f.shape for o, f in zip(outputs, frames))
    face_report = verify.face_recall(zip(frames, outputs, faces))
    plate_report = verify.face_recall(zip(frames, outputs, plates))  # the plates' characters are gone too
    assert face_report.faces == sum(len(b) for b in faces) > 0 and face_report.recall == 1.0, face_report
    assert plate_report.faces == (4 + 2) * FRAMES and plate_report.recall == 1.0, plate_report
    records = [json.loads(line) for line in record.read_text().splitlines()]
    assert [r["file"] for r in records] == names
    for r, face_boxes, plate_boxes in zip(records, faces, plates):
        kinds = [region["class"] for region in r["regions"]]
        assert kinds.count("plate") >= len(plate_boxes) and kinds.count("face") >= len(face_boxes)
        for region in r["regions"]:
            assert region["method"] == "blur" and region["decision"] in ("pending", "unknown")
            assert set(region) >= {"class", "box", "track_id", "decision", "method"}


def test_a_drive_of_1080p_frames_comes_out_with_every_face_and_plate_hidden(tmp_path: Path) -> None:
    drive = _drive(tmp_path / "drive")
    out, record = tmp_path / "out", tmp_path / "drive.jsonl"
    assert main(["run", str(tmp_path / "drive"), "-o", str(out), "-c", str(_config(tmp_path)),
                 "--annotations", str(record), "--no-progress"]) == 0
    _check(out, record, drive)


@pytest.mark.ray
def test_the_same_drive_through_fawn_batch_on_ray_resumable(tmp_path: Path) -> None:
    rel = "drive1/cam_front"
    drive = _drive(tmp_path / "in" / rel)
    out = tmp_path / "out"
    base = ["batch", (tmp_path / "in").as_uri(), "-o", out.as_uri(), "--workers", "1", "-c", str(_config(tmp_path)),
            "--annotations", "--no-progress"]
    assert main([*base, "--summary-json", str(tmp_path / "1.json")]) == 0
    assert json.loads((tmp_path / "1.json").read_text())["done"] == [rel]
    _check(out / rel, out / f"{rel}.annotations.jsonl", drive)
    assert main([*base, "--summary-json", str(tmp_path / "2.json")]) == 0  # resumed: nothing to do
    assert json.loads((tmp_path / "2.json").read_text())["skipped"] == [rel]
