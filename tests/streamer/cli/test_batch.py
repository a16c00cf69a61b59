"""``fawn batch`` errors that need no cluster: one line, non-zero exit, in bounded time."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from streamer.cli.main import main
from tests.streamer.runtime.cluster.helpers import write_clip


def _one_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def test_missing_folder_and_empty_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["batch", str(tmp_path / "nowhere"), "-o", str(tmp_path / "o"), "--no-progress"]) == 3
    assert "input folder not found" in _one_line(capsys)
    assert main(["batch", str(tmp_path), "-o", str(tmp_path / "o"), "--no-progress"]) == 3
    assert "no video files" in _one_line(capsys)


def test_process_local_filesystem_bad_options_and_gallery(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_clip(tmp_path / "in" / "a.mp4")
    assert main(["batch", str(tmp_path / "in"), "-o", "memory://out", "--no-progress"]) == 2
    assert "Ray workers cannot see it" in _one_line(capsys)
    assert main(["batch", str(tmp_path / "in"), "-o", str(tmp_path / "o"), "--worker-env", "NOEQUALS"]) == 2
    assert "KEY=VALUE" in _one_line(capsys)
    assert main(["batch", str(tmp_path / "in"), "-o", str(tmp_path / "o"), "--max-retries", "-1"]) == 2
    assert "--max-retries" in _one_line(capsys)
    assert main(["batch", str(tmp_path / "in"), "-o", str(tmp_path / "o"), "--gallery", str(tmp_path / "no.fawn")]) == 2
    assert "gallery not found" in _one_line(capsys)
    assert main(["batch", str(tmp_path / "in"), "-o", str(tmp_path / "o"), "--ray", "nonsense"]) == 2
    assert "HOST:PORT" in _one_line(capsys)


def test_without_ray_installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    assert main(["batch", str(tmp_path), "-o", str(tmp_path / "o")]) == 2
    assert "install fawn[ray]" in _one_line(capsys)
