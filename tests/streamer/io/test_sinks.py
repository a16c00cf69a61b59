"""Sinks: real round trips through PyAV (frames, VFR timestamps, audio), crash safety, bad outputs."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from streamer.core.config import IOConfig
from streamer.core.errors import SinkError
from streamer.core.types import Frame, StreamInfo
from streamer.io.sinks import NullSink, open_sink
from streamer.io.sources import open_source
from tests.rtsp_server import free_port

IO = IOConfig(preset="ultrafast")
ROOT = Path(__file__).resolve().parents[3]


def transcode(src: Path, dst: Path, io: IOConfig = IO) -> int:
    source = open_source(str(src), io)
    sink = open_sink(str(dst), source.info, io)
    try:
        for item in source.read():
            sink.write(item)
    finally:
        sink.close()
        source.close()
    return sink.frames_written


def video_times(path: Path) -> list[float]:
    with av.open(str(path)) as container:
        return sorted(float(f.pts * f.time_base) for f in container.decode(video=0))


def audio_packets(path: Path) -> list[tuple[float, bytes]]:
    with av.open(str(path)) as container:
        return [(float(p.pts * p.time_base), bytes(p)) for p in container.demux(audio=0) if p.dts is not None]


def info_for(width: int = 320, height: int = 240, fps: float = 15.0, live: bool = False) -> StreamInfo:
    return StreamInfo("test", width, height, fps, Fraction(1, 90000), live=live)


def demo_frames(n: int, width: int = 320, height: int = 240) -> list[np.ndarray]:
    from streamer.io import demo

    spec = demo.demo_spec(width, height, seconds=n / 15, fps=15)
    return [image for image, _ in demo.render(spec)][:n]


@pytest.mark.parametrize("ext", ["mp4", "mkv"])
def test_round_trip_keeps_frames_vfr_timestamps_and_audio(av_clip: Path, tmp_path: Path, ext: str) -> None:
    out = tmp_path / f"out.{ext}"
    assert transcode(av_clip, out) == 30
    src_times, out_times = video_times(av_clip), video_times(out)
    assert len(out_times) == 30
    src_audio, out_audio = audio_packets(av_clip), audio_packets(out)
    assert [b for _, b in out_audio] == [b for _, b in src_audio]  # packets untouched, none lost
    if ext == "mp4":  # fragmented MP4 with delay_moov writes an edit list: timestamps come back exactly
        assert out_times == pytest.approx(src_times, abs=1e-6)
        assert [t for t, _ in out_audio] == pytest.approx([t for t, _ in src_audio], abs=1e-6)
    else:  # Matroska (1 ms clock) shifts every stream by the same amount to hide AAC's negative priming pts
        shift = out_times[0] - src_times[0]
        assert 0 <= shift < 0.05
        assert np.allclose(np.array(out_times) - shift, src_times, atol=0.0011)
        audio_shift = np.array([t for t, _ in out_audio]) - np.array([t for t, _ in src_audio])
        assert np.allclose(audio_shift, shift, atol=0.0011)  # audio stays in sync with video


@pytest.mark.parametrize("ext", ["mp4", "mkv", "mov"])
def test_round_trip_vfr_timestamps_exact(vfr_clip: Path, tmp_path: Path, ext: str) -> None:
    out = tmp_path / f"vfr.{ext}"
    assert transcode(vfr_clip, out) == 30
    assert video_times(out) == pytest.approx(video_times(vfr_clip), abs=1e-6)


def test_output_is_fragmented_mp4(demo_clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "frag.mp4"
    transcode(demo_clip, out)
    data = out.read_bytes()
    assert data.count(b"moof") >= 2  # 2 s of video in fragments of at most 1 s
    assert data.index(b"moov") < data.index(b"moof")


def test_killed_run_leaves_playable_mp4(tmp_path: Path) -> None:
    """Write 3 s of frames, then die without closing: every fragment flushed so far plays."""
    out = tmp_path / "killed.mp4"
    script = textwrap.dedent(
        f"""
        import os
        from fractions import Fraction
        from streamer.io import demo
        from streamer.core.config import IOConfig
        from streamer.io.sinks import open_sink
        from streamer.core.types import Frame, StreamInfo

        spec = demo.demo_spec(320, 240, seconds=3.0, fps=15)
        info = StreamInfo("t", 320, 240, 15.0, Fraction(1, 15), live=False)
        sink = open_sink({str(out)!r}, info, IOConfig(preset="ultrafast"))
        for i, (image, _) in enumerate(demo.render(spec)):
            sink.write(Frame(image, i, pts=i, time_base=Fraction(1, 15)))
        os._exit(9)  # no close(): no trailer, no encoder flush
        """
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, timeout=60, capture_output=True, text=True)
    assert done.returncode == 9, done.stderr
    with av.open(str(out)) as container:
        frames = list(container.decode(video=0))
    assert 15 <= len(frames) <= 45  # all but the last (unfinished) one-second fragment
    assert frames[0].width == 320


def test_unclosed_sink_in_process_still_leaves_fragments(tmp_path: Path) -> None:
    out = tmp_path / "open.mp4"
    sink = open_sink(str(out), info_for(fps=15), IO)
    for i, image in enumerate(demo_frames(40)):
        sink.write(Frame(image, i, pts=i * 6000, time_base=Fraction(1, 90000)))
    with av.open(str(out)) as container:
        assert len(list(container.decode(video=0))) >= 15
    sink.close()


def test_non_increasing_and_missing_pts_are_made_monotonic(tmp_path: Path) -> None:
    out = tmp_path / "mono.mkv"
    sink = open_sink(str(out), info_for(live=True), IO)
    pts_in = [0, 6000, 6000, None, 3000, 30000, None]
    for i, (image, pts) in enumerate(zip(demo_frames(len(pts_in)), pts_in)):
        sink.write(Frame(image, i, pts=pts, time_base=Fraction(1, 90000)))
    sink.close()
    times = video_times(out)
    assert len(times) == len(pts_in)
    assert all(b > a for a, b in zip(times, times[1:]))


def test_odd_frame_size_is_cropped_to_even(tmp_path: Path) -> None:
    out = tmp_path / "odd.mkv"
    sink = open_sink(str(out), info_for(321, 241), IO)
    for i, image in enumerate(demo_frames(5, 321, 241)):
        sink.write(Frame(image, i, pts=i * 6000, time_base=Fraction(1, 90000)))
    sink.close()
    with av.open(str(out)) as container:
        stream = container.streams.video[0]
        assert (stream.width, stream.height) == (320, 240)
        assert len(list(container.decode(stream))) == 5


def test_close_is_idempotent_and_write_after_close_fails(tmp_path: Path) -> None:
    sink = open_sink(str(tmp_path / "a.mkv"), info_for(), IO)
    sink.write(Frame(demo_frames(1)[0], 0, pts=0, time_base=Fraction(1, 90000)))
    sink.close()
    sink.close()
    assert sink.frames_written == 1
    with pytest.raises(SinkError, match="after close"):
        sink.write(Frame(demo_frames(1)[0], 1, pts=1, time_base=Fraction(1, 90000)))


def test_sink_with_no_frames_closes_cleanly(tmp_path: Path) -> None:
    sink = open_sink(str(tmp_path / "empty.mp4"), info_for(), IO)
    sink.close()
    assert sink.frames_written == 0


def test_null_sink_counts_frames_and_ignores_packets() -> None:
    sink = open_sink("null", info_for(), IO)
    assert isinstance(sink, NullSink)
    image = np.zeros((240, 320, 3), np.uint8)
    for i in range(7):
        sink.write(Frame(image, i))
    sink.write(av.Packet(b"\x00" * 8))
    sink.close()
    sink.close()
    assert sink.frames_written == 7


@pytest.mark.parametrize(
    "name, words",
    [
        ("a file for a folder", "cannot create the output folder"),
        ("a directory", "is a directory"),
        ("unknown container", "unknown container '.xyz'"),
        ("no extension", "no extension"),
        ("unwritable place", "cannot write"),
    ],
)
def test_bad_output_raises_sink_error(name: str, words: str, tmp_path: Path) -> None:
    spec = {
        "a file for a folder": tmp_path / "afile" / "out.mp4",
        "a directory": tmp_path,
        "unknown container": tmp_path / "out.xyz",
        "no extension": tmp_path / "out",
        "unwritable place": Path("/proc/fawn-test-output.mp4"),
    }[name]
    (tmp_path / "afile").write_text("a file, not a folder")
    start = time.monotonic()
    with pytest.raises(SinkError) as info:
        open_sink(str(spec), info_for(), IO)
    assert time.monotonic() - start < 2.0
    assert words in str(info.value) and "\n" not in str(info.value)


def test_missing_output_folders_are_created(tmp_path: Path) -> None:
    """``fawn run demo -o out/demo.mp4`` on a fresh checkout (no ``out/``)."""
    path = tmp_path / "out" / "day1" / "demo.mp4"
    sink = open_sink(str(path), info_for(), IO)
    sink.write(Frame(np.zeros((240, 320, 3), np.uint8), 0))
    sink.close()
    with av.open(str(path)) as container:
        assert len(list(container.decode(video=0))) == 1


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write to a read-only-mode folder")
def test_read_only_folder_raises_sink_error(tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    with pytest.raises(SinkError, match="not writable"):
        open_sink(str(folder / "out.mp4"), info_for(), IO)


def test_unknown_codec_raises_sink_error(tmp_path: Path) -> None:
    with pytest.raises(SinkError, match="codec 'no-such-codec'"):
        open_sink(str(tmp_path / "out.mp4"), info_for(), IOConfig(codec="no-such-codec"))


def test_unreachable_rtsp_server_raises_sink_error_quickly() -> None:
    url = f"rtsp://127.0.0.1:{free_port()}/out"
    start = time.monotonic()
    with pytest.raises(SinkError, match="cannot publish to rtsp://127.0.0.1"):
        open_sink(url, info_for(live=True), IOConfig(open_timeout=2.0))
    assert time.monotonic() - start < 2.5
