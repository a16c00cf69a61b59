"""`fawn` end to end: real encode/decode of a clip made from real face photos."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import numpy as np
import pytest

import engines
from streamer.cli.main import main
from streamer.io import demo
from streamer.tools import verify


def _decode(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="bgr24") for f in container.decode(video=0)]


def test_run_demo_hides_every_face_and_keeps_the_rest(tmp_path: Path) -> None:
    out, stats = tmp_path / "demo.mp4", tmp_path / "stats.json"
    assert main(["run", "demo", "-o", str(out), "--stats-json", str(stats), "--no-progress"]) == 0
    truth = list(demo.render(demo.demo_spec()))
    frames = _decode(out)
    assert len(frames) == len(truth)
    report = verify.face_recall((orig, got, gt) for (orig, gt), got in zip(truth, frames))
    assert report.faces == sum(len(gt) for _, gt in truth)
    assert report.recall == 1.0, f"faces left recognizable in frames {report.leaked_frames}"
    assert report.min_background_psnr > 30.0
    data = json.loads(stats.read_text())
    assert data["frames"] == len(truth)
    assert data["tracks"] >= 2 and data["faces_anonymized"] >= report.faces
    assert {"detect", "track", "anonymize"} <= set(data["stage_ms"])


def test_file_to_file_keeps_frame_count(tmp_path: Path) -> None:
    clip = tmp_path / "in.mp4"
    truths = demo.write_clip(demo.demo_spec(seconds=1.0), clip)
    out = tmp_path / "out.mkv"
    assert main(["run", str(clip), "-o", str(out), "--method", "pixelate", "--no-progress"]) == 0
    assert len(_decode(out)) == len(truths)


def test_null_output_and_max_frames(tmp_path: Path) -> None:
    stats = tmp_path / "s.json"
    assert main(["run", "demo", "-o", "null", "--max-frames", "10", "--stats-json", str(stats), "--no-progress"]) == 0
    assert json.loads(stats.read_text())["frames"] == 10


def _fawn(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "streamer.cli", *args], capture_output=True, text=True, timeout=timeout
    )


@pytest.mark.parametrize(
    ("make", "needle"),
    [
        (lambda d: d / "missing.mp4", "not found"),
        (lambda d: d, "no video files"),
        (lambda d: (d / "notes.mp4").write_text("hello, not a video") and d / "notes.mp4", "not a readable video file"),
        (lambda d: (d / "empty.mp4").write_bytes(b"") or d / "empty.mp4", "input file is empty"),
    ],
)
def test_bad_inputs_one_line_error(tmp_path: Path, make: object, needle: str) -> None:
    source = make(tmp_path)  # type: ignore[operator]
    result = _fawn("run", str(source), "-o", str(tmp_path / "o.mp4"), "--no-progress")
    assert result.returncode not in (0, 1), result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("fawn: error:")]
    assert len(errors) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert needle and needle in errors[0]


def test_bad_config_rejected_before_models_load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("anonymizer:\n  method: swirl\n")

    def no_models(*args: object, **kwargs: object) -> None:
        raise AssertionError("a model was loaded before the config was validated")

    monkeypatch.setattr(engines, "create", no_models)
    assert main(["run", "demo", "-o", "null", "-c", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "anonymizer.method: 'swirl' is not valid (choices: blur, pixelate, solid, ksame, diffusion)" in err


def test_bad_output_folder(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("a file where the output folder should be")
    result = _fawn("run", "demo", "-o", str(tmp_path / "afile" / "dir" / "o.mp4"), "--no-progress")
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "fawn: error: cannot create the output folder" in result.stderr


def test_missing_output_folders_are_created(tmp_path: Path) -> None:
    """``fawn run demo -o out/demo.mp4`` on a fresh checkout, where ``out/`` does not exist."""
    out = tmp_path / "out" / "demo.mp4"
    assert main(["run", "demo", "-o", str(out), "--max-frames", "5", "--no-progress"]) == 0
    assert out.stat().st_size > 0


@pytest.mark.parametrize("link", [False, True])
def test_output_equal_to_the_input_is_refused_before_anything_opens(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], link: bool
) -> None:
    source = tmp_path / "a.mp4"
    assert main(["run", "demo", "-o", str(source), "--max-frames", "5", "--no-progress"]) == 0
    data = source.read_bytes()
    output = tmp_path / "alias.mp4" if link else source
    if link:
        output.symlink_to(source)

    def no_models(*args: object, **kwargs: object) -> None:
        raise AssertionError("a model was loaded before the output was checked")

    monkeypatch.setattr(engines, "create", no_models)
    capsys.readouterr()
    assert main(["run", str(source), "-o", str(output), "--no-progress"]) == 2
    assert "is the input file" in capsys.readouterr().err
    assert source.read_bytes() == data  # not truncated


def test_doctor_reports_cpu_provider_and_models() -> None:
    result = _fawn("doctor", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["execution_providers"]["cpu"].startswith("ok")
    assert data["codecs"]["libx264"] == "encoder"
    assert set(data["models"]) == {"centerface", "centerface-int8", "dlib-resnet"}


def _start_long_run(tmp_path: Path, out: Path) -> subprocess.Popen[str]:
    clip = tmp_path / "long.mp4"
    demo.write_clip(demo.demo_spec(seconds=20.0), clip)
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamer.cli", "run", str(clip), "-o", str(out), "--no-progress"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (not out.exists() or out.stat().st_size < 50_000):
        time.sleep(0.2)
    return proc


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_finalizes_a_playable_file(tmp_path: Path, sig: signal.Signals) -> None:
    out = tmp_path / "interrupted.mp4"
    proc = _start_long_run(tmp_path, out)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    frames = _decode(out)
    assert 0 < len(frames) < 600
    assert "Traceback" not in err


def test_killed_run_leaves_a_playable_file(tmp_path: Path) -> None:
    out = tmp_path / "killed.mp4"
    proc = _start_long_run(tmp_path, out)
    time.sleep(1.5)  # at least one fragment (1 s) written
    proc.kill()
    proc.wait(timeout=30)
    assert len(_decode(out)) >= 30
