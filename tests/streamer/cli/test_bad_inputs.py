"""Fuzzed and broken inputs: each gives one `fawn: error:` line, exit != 0, no traceback, in bounded time."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import av
import pytest

from streamer.io import demo
from streamer.tools import verify


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("clip") / "clip.mp4"
    demo.write_clip(demo.demo_spec(width=320, height=240, seconds=1.0), path)
    return path


def _truncated(d: Path, clip: Path) -> Path:
    out = d / "truncated.mp4"
    out.write_bytes(clip.read_bytes()[:2000])
    return out


def _garbage(d: Path, clip: Path) -> Path:
    out = d / "garbage.mkv"
    out.write_bytes(os.urandom(200_000))
    return out


def _header_then_garbage(d: Path, clip: Path) -> Path:
    out = d / "corrupt.mp4"
    data = bytearray(clip.read_bytes())
    data[len(data) // 3 :] = os.urandom(len(data) - len(data) // 3)
    out.write_bytes(bytes(data))
    return out


def _zero(d: Path, clip: Path) -> Path:
    out = d / "zero.mp4"
    out.write_bytes(b"")
    return out


def _image(d: Path, clip: Path) -> Path:
    out = d / "photo.mp4"
    out.write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(100))
    return out


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "streamer.cli", *args], capture_output=True, text=True, timeout=90
    )


def _one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode not in (0, 1), result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("fawn: error:")]
    assert len(errors) == 1, result.stderr
    return errors[0]


@pytest.mark.parametrize("make", [_truncated, _garbage, _zero, _image])
def test_broken_videos(tmp_path: Path, clip: Path, make: Callable[[Path, Path], Path]) -> None:
    source = make(tmp_path, clip)
    _one_line_error(_run("run", str(source), "-o", str(tmp_path / "out.mp4"), "--no-progress"))


def test_corrupt_middle_is_decoded_as_far_as_possible_or_refused(tmp_path: Path, clip: Path) -> None:
    """Damage after a valid header: either the readable frames come out anonymized, or one clear error."""
    source = _header_then_garbage(tmp_path, clip)
    out = tmp_path / "out.mp4"
    result = _run("run", str(source), "-o", str(out), "--no-progress")
    assert "Traceback" not in result.stderr
    if result.returncode != 0:
        _one_line_error(result)
        return
    with av.open(str(out)) as container:  # success: a playable file of anonymized frames
        frames = [f.to_ndarray(format="bgr24") for f in container.decode(video=0)]
    truth = list(demo.render(demo.demo_spec(width=320, height=240, seconds=1.0)))
    assert 1 <= len(frames) <= len(truth)
    report = verify.face_recall((image, got, boxes) for (image, boxes), got in zip(truth, frames))
    assert report.faces >= len(frames) and report.recall == 1.0, f"leaked in frames {report.leaked_frames}"


def test_wrong_extension_is_probed_by_content(tmp_path: Path, clip: Path) -> None:
    renamed = tmp_path / "clip.txt"
    renamed.write_bytes(clip.read_bytes())
    assert _run("run", str(renamed), "-o", "null", "--no-progress").returncode == 0


@pytest.mark.parametrize(
    "text",
    ["detector: [unclosed\n", "- just\n- a list\n", "detector:\n  threshold: high\n", "\x00\x01\x02binary"],
)
def test_corrupt_yaml(tmp_path: Path, text: str) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text(text)
    line = _one_line_error(_run("run", "demo", "-o", "null", "-c", str(config)))
    assert "bad.yaml" in line or "detector" in line


@pytest.mark.parametrize("content", [b"", b"{not json", b'{"model_id": 3}', os.urandom(500)])
def test_corrupt_gallery(tmp_path: Path, content: bytes) -> None:
    gallery = tmp_path / "people.fawn"
    gallery.write_bytes(content)
    gallery.chmod(0o600)  # private, so the error is about the content
    line = _one_line_error(_run("run", "demo", "-o", "null", "--gallery", str(gallery), "--no-progress"))
    assert "people.fawn" in line
