"""The worker's model session, in-process: local files and an fsspec object store (memory://)."""

from __future__ import annotations

from pathlib import Path

import fsspec
import pytest

from streamer.core.config import load_config
from streamer.runtime.cluster.worker import FileAnonymizer, FileTask, WorkerSetup
from tests.streamer.runtime.cluster.helpers import face_recall, write_clip


@pytest.fixture(scope="module")
def session() -> FileAnonymizer:
    worker = FileAnonymizer(WorkerSetup(load_config(), threads=1))
    yield worker
    worker.close()


def test_local_files_are_anonymized_and_renamed_when_complete(session: FileAnonymizer, tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "in" / "a.mp4")
    for name in ("a.mp4", "b.mp4"):  # one session, two files
        out = tmp_path / "out" / "day1" / name
        result = session.process(FileTask(name, str(clip), str(out)))
        assert result.ok and result.frames == 15 and result.faces_anonymized > 0
        assert result.input_sha256 is not None and len(result.input_sha256) == 64
        assert face_recall(out) == 1.0
    assert sorted(p.name for p in (tmp_path / "out" / "day1").iterdir()) == ["a.mp4", "b.mp4"]


def test_object_store_round_trip(session: FileAnonymizer, tmp_path: Path) -> None:
    fs = fsspec.filesystem("memory")
    fs.pipe_file("/fawn-test/in/x/c.mp4", write_clip(tmp_path / "c.mp4").read_bytes())
    result = session.process(FileTask("x/c.mp4", "memory://fawn-test/in/x/c.mp4", "memory://fawn-test/out/x/c.mp4"))
    assert result.ok, result.error
    assert fs.ls("/fawn-test/out/x", detail=False) == ["/fawn-test/out/x/c.mp4"]  # no partial left
    assert face_recall(fs.cat_file("/fawn-test/out/x/c.mp4")) == 1.0
    fs.rm("/fawn-test", recursive=True)


def test_broken_file_is_a_failed_result_and_leaves_no_output(session: FileAnonymizer, tmp_path: Path) -> None:
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00" * 1000)
    result = session.process(FileTask("broken.mp4", str(broken), str(tmp_path / "out" / "broken.mp4")))
    assert not result.ok and result.error
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").rglob("*"))


def test_gallery_travels_as_bytes_and_decisions_are_reported(tmp_path: Path) -> None:
    """The worker never reads the driver's gallery path: it gets the bytes (as Ray ships them)."""
    import cv2

    from streamer.cli.main import main
    from streamer.io import demo

    cv2.imwrite(str(tmp_path / "astronaut.png"), demo.astronaut().image)
    assert main(["enroll", str(tmp_path / "astronaut.png"), "--name", "astronaut", "-o", str(tmp_path / "team.fawn")]) == 0
    cfg = load_config(None, {"identity.gallery": str(tmp_path / "not-on-this-worker.fawn")})
    worker = FileAnonymizer(WorkerSetup(cfg, (tmp_path / "team.fawn").read_bytes()))
    try:
        clip = write_clip(tmp_path / "a.mp4")
        result = worker.process(FileTask("a.mp4", str(clip), str(tmp_path / "out.mp4")))
    finally:
        worker.close()
    assert result.ok, result.error
    assert result.identity["calls"] > 0 and "registered:astronaut" in result.identity["decided"].values()
    assert result.identity["visible_face_frames"] > 0  # exempt mode: the registered person stays visible
