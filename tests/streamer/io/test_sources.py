"""Sources: real clips made from face photos, and every kind of bad input a user can give."""

from __future__ import annotations

import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from streamer.core.config import IOConfig
from streamer.core.errors import SourceError, SourceLostError
from streamer.core.types import Frame
from streamer.io.sources import open_source, redact_url
from tests.rtsp_server import free_port

IO = IOConfig(open_timeout=3.0, reconnect_attempts=2, reconnect_backoff=0.05)


def read_all(spec: str | Path, io: IOConfig = IO) -> tuple[list[Frame], list[av.Packet]]:
    source = open_source(str(spec), io)
    frames: list[Frame] = []
    packets: list[av.Packet] = []
    try:
        for item in source.read():
            (frames if isinstance(item, Frame) else packets).append(item)  # type: ignore[arg-type]
    finally:
        source.close()
    return frames, packets


def test_file_source_reads_every_frame_in_order(demo_clip: Path) -> None:
    source = open_source(str(demo_clip), IO)
    info = source.info
    assert (info.width, info.height, info.live, info.audio) == (320, 240, False, None)
    assert info.fps == pytest.approx(15.0)
    assert info.frames == 30
    frames = [item for item in source.read() if isinstance(item, Frame)]
    source.close()
    assert [f.index for f in frames] == list(range(30))
    assert all(f.image.shape == (240, 320, 3) and f.image.dtype == np.uint8 for f in frames)
    pts = [f.pts for f in frames]
    assert all(p is not None for p in pts) and pts == sorted(pts) and len(set(pts)) == 30
    assert frames[0].time_base == info.time_base
    stamps = [f.t_decoded for f in frames]
    assert stamps == sorted(stamps) and stamps[0] > 0


def test_file_source_frames_are_bgr(demo_clip: Path) -> None:
    """The decoded image matches the demo renderer's BGR frame (not RGB)."""
    from streamer.io import demo

    expected = next(demo.render(demo.demo_spec(320, 240, seconds=2.0, fps=15)))[0]
    frames, _ = read_all(demo_clip)
    diff = np.abs(frames[0].image.astype(int) - expected.astype(int)).mean()
    swapped = np.abs(frames[0].image[:, :, ::-1].astype(int) - expected.astype(int)).mean()
    assert diff < 6 < swapped


def test_file_source_keeps_vfr_timestamps(vfr_clip: Path) -> None:
    frames, _ = read_all(vfr_clip)
    assert len(frames) == 30
    times = [float(f.pts * f.time_base) for f in frames]  # type: ignore[operator]
    steps = {round(b - a, 3) for a, b in zip(times, times[1:])}
    assert steps == {0.033, 0.05, 0.067, 0.1, 0.04}


def test_file_source_yields_audio_packets_in_demux_order(av_clip: Path) -> None:
    source = open_source(str(av_clip), IO)
    assert source.info.audio is not None and source.info.audio.codec_context.name == "aac"
    items = list(source.read())
    source.close()
    packets = [i for i in items if isinstance(i, av.Packet)]
    with av.open(str(av_clip)) as container:
        expected = [bytes(p) for p in container.demux(audio=0) if p.dts is not None]
    assert [bytes(p) for p in packets] == expected
    assert all(p.dts is not None for p in packets)
    first_frame = next(n for n, i in enumerate(items) if isinstance(i, Frame))
    last_frame = max(n for n, i in enumerate(items) if isinstance(i, Frame))
    assert any(isinstance(i, av.Packet) for i in items[first_frame:last_frame])  # interleaved, not appended


def test_demo_source() -> None:
    source = open_source("demo", IO)
    info = source.info
    assert (info.name, info.width, info.height, info.live, info.frames) == ("demo", 640, 480, False, 180)
    assert info.time_base == Fraction(1, 30)
    reader = source.read()
    frames = [next(reader) for _ in range(3)]
    source.close()
    assert [(f.index, f.pts, f.time_base) for f in frames] == [(i, i, Fraction(1, 30)) for i in range(3)]  # type: ignore[union-attr]


def test_truncated_matroska_reads_what_is_there(vfr_clip: Path, tmp_path: Path) -> None:
    data = vfr_clip.read_bytes()
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(data[: len(data) * 2 // 3])
    frames, _ = read_all(cut)
    assert 5 < len(frames) < 30


def _bad_inputs(tmp: Path, demo_clip: Path) -> dict[str, tuple[str, str]]:
    """name -> (spec, words the message must contain)."""
    text = tmp / "notes.mp4"
    text.write_text("this is a shopping list, not a video\n" * 20)
    empty = tmp / "empty.mp4"
    empty.touch()
    truncated = tmp / "truncated.mp4"
    truncated.write_bytes(demo_clip.read_bytes()[: demo_clip.stat().st_size // 2])  # moov is at the end
    audio_only = tmp / "tone.m4a"
    with av.open(str(audio_only), "w") as container:
        stream = container.add_stream("aac", rate=44100)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        frame.sample_rate, frame.pts = 44100, 0
        container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return {
        "missing": (str(tmp / "nope.mp4"), "not found"),
        "directory": (str(tmp), "directory"),
        "text renamed .mp4": (str(text), "not a readable video"),
        "zero bytes": (str(empty), "empty"),
        "truncated mp4": (str(truncated), "not a readable video"),
        "audio only": (str(audio_only), "no video stream"),
        "missing webcam": ("cam:99", "/dev/video99"),
        "bad webcam spec": ("cam:front", "cam:N"),
    }


BAD_INPUTS = ["missing", "directory", "text renamed .mp4", "zero bytes", "truncated mp4", "audio only",
              "missing webcam", "bad webcam spec"]


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_bad_input_raises_source_error_quickly(case: str, tmp_path: Path, demo_clip: Path) -> None:
    spec, words = _bad_inputs(tmp_path, demo_clip)[case]
    with pytest.raises(SourceError) as info:
        open_source(spec, IO)
    message = str(info.value)
    assert words in message
    assert "\n" not in message


def test_corrupt_video_data_raises_source_error(demo_clip: Path, tmp_path: Path) -> None:
    """A valid container whose video packets are garbage: no frame decodes."""
    corrupt = tmp_path / "corrupt.mkv"
    rng = np.random.default_rng(1)
    with av.open(str(demo_clip)) as src, av.open(str(corrupt), "w") as dst:
        stream = dst.add_stream_from_template(src.streams.video[0])
        for packet in src.demux(video=0):
            if packet.dts is None:
                continue
            junk = av.Packet(rng.integers(0, 256, packet.size, dtype=np.uint8).tobytes())
            junk.pts, junk.dts, junk.time_base, junk.stream = packet.pts, packet.dts, packet.time_base, stream
            dst.mux(junk)
    with pytest.raises(SourceError, match="no decodable video frame|cannot decode|not a readable"):
        open_source(str(corrupt), IO)


def test_unreachable_rtsp_raises_source_lost_after_bounded_retries() -> None:
    url = f"rtsp://127.0.0.1:{free_port()}/nothing"
    io = IOConfig(open_timeout=2.0, reconnect_attempts=3, reconnect_backoff=0.05)
    start = time.monotonic()
    with pytest.raises(SourceLostError, match="after 3 reconnect attempts"):
        open_source(url, io)
    elapsed = time.monotonic() - start
    assert 0.05 + 0.1 + 0.2 <= elapsed  # the three backoff sleeps happened (a loaded machine only adds time)


def test_unresolvable_rtsp_host_fails_within_open_timeout() -> None:
    io = IOConfig(open_timeout=1.0, reconnect_attempts=0)
    with pytest.raises(SourceError):  # no retry: one open bounded by io.open_timeout, then the error
        open_source("rtsp://fawn-test-host.invalid/stream", io)


def test_redact_url_hides_password() -> None:
    assert redact_url("rtsp://admin:secret@cam.local/stream") == "rtsp://admin:***@cam.local/stream"
    assert redact_url("rtsp://cam.local/stream") == "rtsp://cam.local/stream"


def test_demo_live_is_a_paced_live_h264_camera() -> None:
    source = open_source("demo-live:320x240@20", IOConfig())
    assert source.info.live and (source.info.width, source.info.height, source.info.fps) == (320, 240, 20.0)
    start = time.monotonic()
    frames = []
    for item in source.read():
        frames.append(item)
        if len(frames) == 20:
            break
    source.close()
    elapsed = time.monotonic() - start
    assert [f.index for f in frames] == list(range(20)) and frames[0].image.shape == (240, 320, 3)
    assert elapsed >= 0.8  # paced at 20 fps, not as fast as it can decode (load can only slow it down)
    steps = {float((b.pts - a.pts) * b.time_base) for a, b in zip(frames, frames[1:])}
    assert steps == {0.05}  # timestamps at 20 fps
    assert float(np.std(frames[-1].image)) > 20


@pytest.mark.parametrize("spec", ["demo-live:640", "demo-live:axb", "demo-live@0", "demo-liveX"])
def test_demo_live_bad_spec_is_one_clear_error(spec: str) -> None:
    with pytest.raises(SourceError, match="expected demo-live"):
        open_source(spec, IOConfig())
