"""Batch mode: a folder of real-face clips, resumable, failures summarised."""

from __future__ import annotations

import json
from pathlib import Path

import av
import pytest

from streamer.cli.main import main
from streamer.io import demo
from streamer.runtime.batch import find_videos, partial_path
from streamer.tools import verify


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


def test_output_folder_equal_to_the_input_folder_is_refused(clips: Path) -> None:
    before = sorted(p.name for p in clips.rglob("*"))
    assert main(["run", str(clips), "-o", str(clips), "--no-progress"]) == 2
    assert main(["run", str(clips), "-o", str(clips / "day1" / ".."), "--no-progress"]) == 2
    assert sorted(p.name for p in clips.rglob("*")) == before


def test_an_output_folder_inside_the_input_folder_is_not_an_input(clips: Path) -> None:
    (clips / "day1" / "broken.mp4").unlink()
    out = clips / "anonymized"
    assert main(["run", str(clips), "-o", str(out), "--no-progress"]) == 0
    assert sorted(p.relative_to(out).as_posix() for p in find_videos(out)) == ["a.mp4", "day1/b.mkv"]
    assert main(["run", str(clips), "-o", str(out), "--no-progress"]) == 0  # its own outputs are not redone as inputs
    assert not (out / "anonymized").exists()


def test_resume_redoes_files_when_the_config_changed(clips: Path, tmp_path: Path) -> None:
    (clips / "day1" / "broken.mp4").unlink()
    out = tmp_path / "out"
    assert main(["run", str(clips), "-o", str(out), "--no-progress", "--method", "blur"]) == 0
    first = {p: (out / p).stat().st_mtime_ns for p in ("a.mp4", "day1/b.mkv")}
    assert main(["run", str(clips), "-o", str(out), "--no-progress", "--method", "blur"]) == 0
    assert {p: (out / p).stat().st_mtime_ns for p in first} == first  # same config: skipped
    assert main(["run", str(clips), "-o", str(out), "--no-progress", "--method", "solid"]) == 0
    assert all((out / p).stat().st_mtime_ns != t for p, t in first.items())  # another config: redone
    rows = [json.loads(line) for line in (out / "fawn-manifest.jsonl").read_text().splitlines()]
    assert len(rows) == 4 and len({r["config_hash"] for r in rows}) == 2 and all(r["status"] == "done" for r in rows)
