"""Image sequences as units of ``fawn batch``: planning, checksums, and real Ray runs (resumable)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import cv2
import fsspec
import numpy as np
import pytest

from streamer.cli.main import main
from streamer.core.config import load_config
from streamer.core.errors import SourceError
from streamer.runtime.cluster import uris
from streamer.runtime.cluster.manifest import DONE, MANIFEST_NAME, read_rows
from streamer.runtime.cluster.worker import FileAnonymizer, FileTask, WorkerSetup
from streamer.tools import verify
from tests.streamer.dashcam_media import Sequence, write_sequence
from tests.streamer.runtime.cluster.conftest import RayCluster
from tests.streamer.runtime.cluster.helpers import face_recall, write_clip

SEQUENCES = ("drive1/cam_front", "drive2/cam_front")
CLIP = "drive1/overview.mp4"


def test_list_units_videos_and_image_folders(tmp_path: Path) -> None:
    for rel in ("a.mp4", "d1/cam0/frame_1.jpg", "d1/cam0/frame_2.jpg", "d1/cam1/0001.png", "d2/clip.mkv",
                "d1/cam0.partial.d/frame_1.jpg", "anon/d1/cam0/frame_1.jpg", "d1/notes.txt"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    found = uris.list_units(str(tmp_path), exclude=str(tmp_path / "anon"))
    assert found.files == ("a.mp4", "d1/cam0", "d1/cam1", "d2/clip.mkv")
    with pytest.raises(SourceError, match="itself holds images"):
        uris.list_units(str(tmp_path / "d1" / "cam0"))


def test_sequence_checksum_and_stat_follow_its_images(tmp_path: Path) -> None:
    seq = tmp_path / "cam"
    seq.mkdir()
    for i in (1, 2, 10):
        (seq / f"f_{i}.png").write_bytes(bytes([i]) * 10)
    fs, path = uris.resolve(str(seq))
    first = uris.unit_sha256(fs, path)
    assert [os.path.basename(p) for p in uris.sequence_files(fs, path)] == ["f_1.png", "f_2.png", "f_10.png"]
    assert uris.unit_stat(fs, path)[0] == 30
    (seq / "f_2.png").write_bytes(b"changed!!!")
    assert uris.unit_sha256(fs, path) != first


@pytest.fixture(scope="module")
def footage(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Sequence]]:
    """Two 1080p drives (3 frames each, small real faces, camera motion) and a video clip."""
    root = tmp_path_factory.mktemp("drives")
    seqs = {rel: write_sequence(root / rel, n=3) for rel in SEQUENCES}
    write_clip(root / CLIP)
    return root, seqs


def _check_sequence(out: Path, seq: Sequence) -> None:
    assert sorted(p.name for p in out.iterdir()) == sorted(seq.names)
    outputs = [cv2.imread(str(out / name)) for name in seq.names]
    assert all(o.shape == (1080, 1920, 3) for o in outputs)
    report = verify.face_recall(zip(seq.frames, outputs, seq.boxes))
    assert report.faces == 9 and report.recall == 1.0, report.leaked_frames


# Runs before the cluster test, as in test_job.py: a local ray.init (Ray 2.60) writes ~/.ray/auth_token and
# switches this process to token auth, which the cluster nodes then inherit; a cluster started first in a
# process while a stale token sits in ~/.ray fails to join its worker node (InvalidAuthToken).
@pytest.mark.ray
def test_batch_on_a_local_ray_instance_with_file_uris(footage: tuple[Path, dict[str, Sequence]], tmp_path: Path) -> None:
    root, seqs = footage
    src = tmp_path / "in"
    rel = SEQUENCES[0]
    (src / rel).mkdir(parents=True)
    for name in seqs[rel].names:
        (src / rel / name).write_bytes((root / rel / name).read_bytes())
    out = tmp_path / "out"
    assert main(["batch", src.as_uri(), "-o", out.as_uri(), "--workers", "1", "-c", "dashcam", "--no-progress",
                 "--jpeg-quality", "90", "--summary-json", str(tmp_path / "s.json")]) == 0
    assert json.loads((tmp_path / "s.json").read_text())["done"] == [rel]
    _check_sequence(out / rel, seqs[rel])


@pytest.mark.ray
def test_batch_on_a_ray_cluster_sequences_and_videos_resumable(
    ray_cluster: RayCluster, footage: tuple[Path, dict[str, Sequence]], tmp_path: Path
) -> None:
    root, seqs = footage
    out = tmp_path / "anon"
    base = ["batch", str(root), "-o", str(out), "--ray", ray_cluster.address, "-c", "dashcam", "--no-progress",
            "--annotations"]
    assert main([*base, "--summary-json", str(tmp_path / "1.json")]) == 0
    first = json.loads((tmp_path / "1.json").read_text())
    assert sorted(first["done"]) == sorted([CLIP, *SEQUENCES])
    for rel, seq in seqs.items():
        _check_sequence(out / rel, seq)
        records = [json.loads(line) for line in (out / f"{rel}.annotations.jsonl").read_text().splitlines()]
        assert [r["file"] for r in records] == seq.names
        assert sum(len(r["regions"]) for r in records) == 9  # one region per hidden face
    assert face_recall(out / CLIP) == 1.0
    rows = read_rows(str(out / MANIFEST_NAME))
    assert {rows[rel].status for rel in SEQUENCES} == {DONE} and rows[SEQUENCES[0]].frames == 3
    assert not list(out.rglob("*.partial*"))

    assert main([*base, "--summary-json", str(tmp_path / "2.json")]) == 0  # resumed: nothing to do
    second = json.loads((tmp_path / "2.json").read_text())
    assert second["done"] == [] and sorted(second["skipped"]) == sorted([CLIP, *SEQUENCES])

    frame = seqs[SEQUENCES[1]].folder / "frame_2.jpg"  # a changed input frame: only that sequence re-runs
    frame.write_bytes(frame.read_bytes() + b"\0")
    assert main([*base, "--summary-json", str(tmp_path / "3.json")]) == 0
    assert json.loads((tmp_path / "3.json").read_text())["done"] == [SEQUENCES[1]]

    assert main([*base, "--method", "solid", "--summary-json", str(tmp_path / "4.json")]) == 0  # changed config
    assert sorted(json.loads((tmp_path / "4.json").read_text())["done"]) == sorted([CLIP, *SEQUENCES])
    for rel, seq in seqs.items():
        _check_sequence(out / rel, seq)


@pytest.fixture(scope="module")
def session() -> Iterator[FileAnonymizer]:
    worker = FileAnonymizer(WorkerSetup(load_config("dashcam"), threads=1))
    yield worker
    worker.close()


def test_worker_sequence_through_an_object_store(session: FileAnonymizer, tmp_path: Path) -> None:
    """memory:// stands for s3:// and the like: images downloaded, anonymized, uploaded, moved into place."""
    seq = write_sequence(tmp_path / "seq", n=2, width=640, height=360)
    fs = fsspec.filesystem("memory")
    for name in seq.names:
        fs.pipe_file(f"/fawn-seq/in/d1/cam/{name}", (seq.folder / name).read_bytes())
    result = session.process(FileTask("d1/cam", "memory://fawn-seq/in/d1/cam", "memory://fawn-seq/out/d1/cam"))
    assert result.ok, result.error
    assert result.frames == 2 and result.input_sha256 == uris.unit_sha256(*uris.resolve(str(seq.folder)))
    assert fs.ls("/fawn-seq/out/d1", detail=False) == ["/fawn-seq/out/d1/cam"]  # no partial folder left
    outputs = [cv2.imdecode(np.frombuffer(fs.cat_file(f"/fawn-seq/out/d1/cam/{n}"), np.uint8), cv2.IMREAD_COLOR)
               for n in seq.names]
    report = verify.face_recall(zip(seq.frames, outputs, seq.boxes))
    assert report.faces == 6 and report.recall == 1.0
    fs.rm("/fawn-seq", recursive=True)


def test_worker_broken_sequence_fails_and_leaves_no_output(session: FileAnonymizer, tmp_path: Path) -> None:
    seq = write_sequence(tmp_path / "seq", n=2, width=320, height=240)
    (seq.folder / "frame_3.jpg").write_bytes(b"\xff\xd8 truncated")
    result = session.process(FileTask("seq", str(seq.folder), str(tmp_path / "out" / "seq")))
    assert not result.ok and "frame_3.jpg" in (result.error or "")
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_worker_uploads_the_annotation_record_next_to_a_remote_output(tmp_path: Path) -> None:
    seq = write_sequence(tmp_path / "seq", n=2, width=640, height=360)
    fs = fsspec.filesystem("memory")
    for name in seq.names:
        fs.pipe_file(f"/fawn-rec/in/cam/{name}", (seq.folder / name).read_bytes())
    worker = FileAnonymizer(WorkerSetup(load_config("dashcam", {"annotations.path": "per-unit"}), threads=1))
    try:
        result = worker.process(FileTask("cam", "memory://fawn-rec/in/cam", "memory://fawn-rec/out/cam"))
    finally:
        worker.close()
    assert result.ok, result.error
    lines = fs.cat_file("/fawn-rec/out/cam.annotations.jsonl").decode().splitlines()
    assert [json.loads(line)["file"] for line in lines] == seq.names
    assert sum(len(json.loads(line)["regions"]) for line in lines) == 6
    fs.rm("/fawn-rec", recursive=True)
