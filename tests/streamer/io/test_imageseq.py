"""Image sequences: 1080p dashcam-style frames from real photos in, the same files anonymized out."""

from __future__ import annotations

import json
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from PIL import Image as PILImage

from streamer.cli.main import main
from streamer.core.config import IOConfig, load_config
from streamer.core.errors import SinkError, SourceError
from streamer.io.imageseq import (
    ImageSequenceSink,
    ImageSequenceSource,
    folder_kind,
    list_images,
    natural_key,
    read_image,
)
from streamer.runtime.pipeline import RunOptions, run
from streamer.tools import verify
from tests.streamer.dashcam_media import render, write_sequence

GPS_IFD = 0x8825
ORIENTATION = 0x0112


def _recall(seq_frames: list[np.ndarray], out: Path, names: list[str], boxes: list[np.ndarray]) -> verify.RecallReport:
    outputs = [cv2.imread(str(out / name)) for name in names]
    return verify.face_recall(zip(seq_frames, outputs, boxes))


def test_natural_order_and_folder_kind(tmp_path: Path) -> None:
    names = ["frame_10.png", "frame_2.png", "frame_1.png", "Frame_3.jpg", "notes.txt"]
    for name in names:
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "frame_0.png").write_bytes(b"x")
    assert [p.name for p in list_images(tmp_path)] == ["frame_1.png", "frame_2.png", "Frame_3.jpg", "frame_10.png"]
    assert sorted(["b10", "b9", "a100"], key=natural_key) == ["a100", "b9", "b10"]
    assert folder_kind(tmp_path) == "sequence"
    videos = tmp_path / "videos"
    (videos / "day1").mkdir(parents=True)
    (videos / "day1" / "clip.mp4").write_bytes(b"x")
    assert folder_kind(videos) == "videos"  # a folder of videos (or of sequence folders) is a batch


def test_1080p_sequence_same_names_sizes_formats_every_face_hidden(tmp_path: Path) -> None:
    seq = write_sequence(tmp_path / "drive", n=6)
    out = tmp_path / "anon"
    assert main(["run", str(seq.folder), "-o", str(out), "-c", "dashcam", "--no-progress"]) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(seq.names)
    for name in seq.names:
        with PILImage.open(out / name) as img:
            assert (img.format, img.size) == ("JPEG", (1920, 1080))
    report = _recall(seq.frames, out, seq.names, seq.boxes)
    assert report.faces == 18  # 3 pedestrians x 6 frames, 26-40 px faces
    assert report.recall == 1.0, report.leaked_frames
    assert report.min_background_psnr > 30  # the rest of the frame survives the re-encode at quality 95


def test_png_output_is_lossless_outside_the_faces(tmp_path: Path) -> None:
    seq = write_sequence(tmp_path / "drive", n=3, suffix=".png")
    out = tmp_path / "anon"
    run(str(seq.folder), str(out), load_config("dashcam"), RunOptions(progress=False))
    report = _recall(seq.frames, out, seq.names, seq.boxes)
    assert report.faces == 9 and report.recall == 1.0
    assert report.min_background_psnr == float("inf")  # PNG: every pixel away from a face is unchanged
    with PILImage.open(out / seq.names[0]) as img:
        assert img.format == "PNG"


def test_mixed_sizes_each_frame_keeps_its_size_and_faces_stay_hidden(tmp_path: Path) -> None:
    folder = tmp_path / "mixed"
    big = write_sequence(folder, n=2)
    small_frames = render(2, 1280, 720)
    frames, boxes, names = list(big.frames), list(big.boxes), list(big.names)
    for i, (frame, gt) in enumerate(small_frames, 3):
        cv2.imwrite(str(folder / f"frame_{i}.jpg"), frame, [cv2.IMWRITE_JPEG_QUALITY, 95])
        frames.append(cv2.imread(str(folder / f"frame_{i}.jpg")))
        boxes.append(gt)
        names.append(f"frame_{i}.jpg")
    out = tmp_path / "anon"
    run(str(folder), str(out), load_config("dashcam"), RunOptions(progress=False))
    sizes = [PILImage.open(out / name).size for name in names]
    assert sizes == [(1920, 1080), (1920, 1080), (1280, 720), (1280, 720)]
    report = _recall(frames, out, names, boxes)
    assert report.faces == 12 and report.recall == 1.0


def _exif_jpeg(path: Path, image: np.ndarray, orientation: int) -> None:
    """A JPEG as a phone/dashcam stores it: pixels rotated, an Orientation tag and GPS coordinates."""
    img = PILImage.fromarray(image[:, :, ::-1])
    exif = PILImage.Exif()
    exif[ORIENTATION] = orientation
    exif[0x010F] = "DashCamCo"  # Make
    exif.get_ifd(GPS_IFD).update({1: "N", 2: (48.0, 51.0, 30.0), 3: "E", 4: (2.0, 17.0, 40.0)})
    img.save(path, exif=exif.tobytes(), quality=95)


def test_exif_orientation_applied_and_gps_stripped(tmp_path: Path) -> None:
    upright, gt = render(1, 640, 360)[0]
    folder = tmp_path / "rotated"
    folder.mkdir()
    # Orientation 6: the viewer turns the stored pixels 90 degrees clockwise, so store them turned back
    _exif_jpeg(folder / "frame_1.jpg", np.ascontiguousarray(np.rot90(upright, 1)), orientation=6)
    image, _meta = read_image(folder / "frame_1.jpg")
    assert image.shape == upright.shape
    assert float(np.abs(image.astype(int) - upright.astype(int)).mean()) < 4  # upright, not rotated
    out = tmp_path / "anon"
    run(str(folder), str(out), load_config("dashcam"), RunOptions(progress=False))
    with PILImage.open(out / "frame_1.jpg") as img:
        exif = img.getexif()
        assert img.size == (640, 360)
        assert ORIENTATION not in exif and GPS_IFD not in exif and 0x010F not in exif
    result = cv2.imread(str(out / "frame_1.jpg"))
    assert verify.face_recall([(image, result, gt)]).recall == 1.0


def test_keep_metadata_keeps_gps_but_not_the_orientation(tmp_path: Path) -> None:
    upright, _ = render(1, 640, 360)[0]
    folder = tmp_path / "rotated"
    folder.mkdir()
    _exif_jpeg(folder / "frame_1.jpg", np.ascontiguousarray(np.rot90(upright, 1)), orientation=6)
    out = tmp_path / "anon"
    assert main(["run", str(folder), "-o", str(out), "-c", "dashcam", "--keep-metadata", "--no-progress"]) == 0
    with PILImage.open(out / "frame_1.jpg") as img:
        exif = img.getexif()
        assert exif.get(0x010F) == "DashCamCo" and exif.get_ifd(GPS_IFD).get(1) == "N"
        assert exif.get(ORIENTATION, 1) == 1  # the pixels are stored upright now
        assert img.size == (640, 360)


def test_jpeg_quality_is_configurable(tmp_path: Path) -> None:
    frame, _ = render(1, 640, 360)[0]
    folder = tmp_path / "seq"
    folder.mkdir()
    cv2.imwrite(str(folder / "a.jpg"), frame)
    source = ImageSequenceSource(str(folder), IOConfig())
    item = next(iter(source.read()))
    sizes = {}
    for quality in (50, 95):
        sink = ImageSequenceSink(str(tmp_path / f"q{quality}"), source.info, IOConfig(jpeg_quality=quality))
        sink.write(item)
        sizes[quality] = (tmp_path / f"q{quality}" / "a.jpg").stat().st_size
    assert sizes[95] > 1.5 * sizes[50]


def test_bad_sequences_fail_with_one_line_errors(tmp_path: Path) -> None:
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "frame_1.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(SourceError, match="not a readable image: .*frame_1.jpg"):
        ImageSequenceSource(str(folder), IOConfig())
    good = write_sequence(tmp_path / "good", n=1, width=320, height=240)
    source = ImageSequenceSource(str(good.folder), IOConfig())
    with pytest.raises(SinkError, match="needs an output folder"):
        ImageSequenceSink(str(tmp_path / "out.jpg"), source.info, IOConfig())
    with pytest.raises(Exception, match="io.jpeg_quality"):
        IOConfig(jpeg_quality=0)


def test_output_folder_must_not_be_the_input_and_a_corrupt_frame_stops_the_run(tmp_path: Path) -> None:
    seq = write_sequence(tmp_path / "seq", n=2, width=320, height=240)
    before = (seq.folder / seq.names[0]).read_bytes()
    with pytest.raises(SinkError, match="would overwrite the frames"):
        run(str(seq.folder), str(seq.folder), load_config(None), RunOptions(progress=False))
    assert (seq.folder / seq.names[0]).read_bytes() == before
    (seq.folder / "frame_3.jpg").write_bytes(b"\xff\xd8 truncated")
    with pytest.raises(SourceError, match="not a readable image: .*frame_3.jpg"):
        run(str(seq.folder), str(tmp_path / "out"), load_config(None), RunOptions(progress=False))


def test_a_sequence_can_be_encoded_to_a_video(tmp_path: Path) -> None:
    seq = write_sequence(tmp_path / "seq", n=3, width=640, height=360)
    out = tmp_path / "drive.mp4"
    stats = run(str(seq.folder), str(out), load_config("dashcam"), RunOptions(progress=False))
    assert stats.frames_out == 3 and out.stat().st_size > 0
    with av.open(str(out)) as container:
        frames = [f.to_ndarray(format="bgr24") for f in container.decode(video=0)]
    assert len(frames) == 3 and frames[0].shape == (360, 640, 3)
    report = verify.face_recall(zip(seq.frames, frames, seq.boxes))
    assert report.faces == 9 and report.recall == 1.0


def test_fawn_run_on_a_folder_of_drives_does_each_sequence_and_resumes(tmp_path: Path) -> None:
    drives = tmp_path / "drives"
    seqs = {rel: write_sequence(drives / rel, n=2, width=640, height=360) for rel in ("d1/cam0", "d2/cam0")}
    out = tmp_path / "anon"
    assert main(["run", str(drives), "-o", str(out), "--no-progress", "--stats-json", str(tmp_path / "s.json"),
                 "--annotations", "on"]) == 0
    for rel, seq in seqs.items():
        report = _recall(seq.frames, out / rel, seq.names, seq.boxes)
        assert report.faces == 6 and report.recall == 1.0
        records = [json.loads(line) for line in (out / f"{rel}.annotations.jsonl").read_text().splitlines()]
        assert [r["file"] for r in records] == seq.names and sum(len(r["regions"]) for r in records) == 6
    assert not list(out.rglob("*.partial*"))
    assert main(["run", str(drives), "-o", str(out), "--no-progress", "--stats-json", str(tmp_path / "t.json"),
                 "--annotations", "on"]) == 0
    assert sorted(json.loads((tmp_path / "t.json").read_text())["skipped"]) == ["d1/cam0", "d2/cam0"]
    # a changed config (no annotation record) redoes every sequence over its old output folder
    assert main(["run", str(drives), "-o", str(out), "--no-progress", "--stats-json", str(tmp_path / "u.json")]) == 0
    assert json.loads((tmp_path / "u.json").read_text())["skipped"] == []
    for rel, seq in seqs.items():
        assert _recall(seq.frames, out / rel, seq.names, seq.boxes).recall == 1.0
    assert not list(out.rglob("*.partial*"))


def test_16_bit_grey_png_is_scaled_not_clipped(tmp_path: Path) -> None:
    ramp = (np.linspace(0, 65535, 64 * 48).reshape(48, 64)).astype(np.uint16)
    PILImage.fromarray(ramp).save(tmp_path / "f.png")
    image, meta = read_image(tmp_path / "f.png")
    assert image.shape == (48, 64, 3) and image.dtype == np.uint8
    assert int(image[0, 0, 0]) == 0 and int(image[-1, -1, 0]) == 255 and 120 < int(image[24, 32, 0]) < 135
