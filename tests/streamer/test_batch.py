"""Batch mode: a folder of real-face clips, resumable, failures summarised."""

from __future__ import annotations

from pathlib import Path

import av
import pytest

from streamer import demo, verify
from streamer.batch import find_videos, partial_path
from streamer.cli import main


@pytest.fixture()
def clips(tmp_path: Path) -> Path:
    root = tmp_path / "in"
    (root / "day1").mkdir(parents=True)
    spec = demo.demo_spec(width=320, height=240, seconds=0.5)
    demo.write_clip(spec, root / "a.mp4")
    demo.write_clip(spec, root / "day1" / "b.mkv")
    (root / "day1" / "broken.mp4").write_bytes(b"\x00" * 1000)
    (root / "notes.txt").write_text("not a video")
    return root


def test_batch_anonymizes_all_resumes_and_reports_failures(clips: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert main(["run", str(clips), "-o", str(out), "--no-progress"]) == 1  # one broken file
    assert sorted(p.relative_to(out).as_posix() for p in find_videos(out)) == ["a.mp4", "day1/b.mkv"]
    assert not list(out.rglob("*.partial*"))
    truth = list(demo.render(demo.demo_spec(width=320, height=240, seconds=0.5)))
    with av.open(str(out / "a.mp4")) as container:
        frames = [f.to_ndarray(format="bgr24") for f in container.decode(video=0)]
    report = verify.face_recall((orig, got, gt) for (orig, gt), got in zip(truth, frames))
    assert len(frames) == len(truth) and report.recall == 1.0
    before = (out / "a.mp4").stat().st_mtime_ns
    (clips / "day1" / "broken.mp4").unlink()
    assert main(["run", str(clips), "-o", str(out), "--no-progress"]) == 0  # finished files skipped
    assert (out / "a.mp4").stat().st_mtime_ns == before


def test_partial_files_are_ignored_and_redone(clips: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    partial_path(out / "a.mp4").write_bytes(b"half")
    (clips / "day1" / "broken.mp4").unlink()
    assert main(["run", str(clips), "-o", str(out), "--no-progress"]) == 0
    assert (out / "a.mp4").stat().st_size > 1000
    assert not partial_path(out / "a.mp4").exists()


def test_empty_folder_is_an_error(tmp_path: Path) -> None:
    assert main(["run", str(tmp_path), "-o", str(tmp_path / "o"), "--no-progress"]) == 3
