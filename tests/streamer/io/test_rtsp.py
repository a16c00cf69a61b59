"""RTSP in and out against a real server on loopback (gst-rtsp-server, see tests/rtsp_server.py).

A publisher pushes a clip of real faces like a camera would; fawn's source reads
it; fawn's sink publishes and fawn's source reads that back. The server is
killed and restarted to check reconnection, and removed for good to check that
SourceLostError comes after the bounded attempts.
"""

from __future__ import annotations

import logging
import statistics
import threading
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from streamer.core.config import IOConfig
from streamer.core.errors import SourceError, SourceLostError
from streamer.core.types import Frame, StreamInfo
from streamer.io.sinks import open_sink
from streamer.io.sources import open_source
from streamer.io.threads import FrameReader
from tests.rtsp_server import Publisher, RtspServer

pytestmark = pytest.mark.rtsp

IO = IOConfig(open_timeout=3.0, reconnect_attempts=6, reconnect_backoff=0.1, preset="ultrafast")
MARKS = 25  # frame i carries the gray level of (i % MARKS) in its top-left corner


def read_frames(reader: FrameReader, count: int, timeout: float = 10.0) -> list[Frame]:
    frames: list[Frame] = []
    deadline = time.monotonic() + timeout
    while len(frames) < count and time.monotonic() < deadline:
        item = reader.get(timeout=max(0.01, deadline - time.monotonic()))
        if isinstance(item, Frame):
            frames.append(item)
    return frames


def assert_monotonic(frames: list[Frame]) -> None:
    indices = [f.index for f in frames]
    assert indices == sorted(set(indices)), "frame indices must keep counting up"
    times = [float(f.pts * f.time_base) for f in frames]  # type: ignore[operator]
    assert all(b > a for a, b in zip(times, times[1:])), "pts must be strictly increasing"


def test_rtsp_source_reads_a_published_stream(rtsp_server: RtspServer, live_clip: Path) -> None:
    with Publisher(rtsp_server.url("/in"), live_clip) as publisher:
        assert publisher.wait_sent(3), publisher.errors
        start = time.monotonic()
        source = open_source(rtsp_server.url("/in"), IO)
        opened = time.monotonic() - start
        try:
            reader = source.read()
            frames = [next(reader) for _ in range(30)]
        finally:
            source.close()
    assert opened < 2.5, f"RTSP open took {opened:.2f}s"
    info = source.info
    assert (info.width, info.height, info.live, info.audio) == (320, 240, True, None)
    assert all(isinstance(f, Frame) and f.image.shape == (240, 320, 3) for f in frames)
    assert [f.index for f in frames] == list(range(30))  # type: ignore[union-attr]
    assert_monotonic(frames)  # type: ignore[arg-type]
    assert float(np.std(frames[-1].image)) > 20  # real picture content, not a blank frame  # type: ignore[union-attr]


def _marked(image: np.ndarray, i: int) -> np.ndarray:
    out = image.copy()
    out[:32, :32] = 20 + 8 * (i % MARKS)
    return out


def _mark_of(image: np.ndarray) -> int:
    return int(round((float(image[8:24, 8:24].mean()) - 20) / 8)) % MARKS


def test_rtsp_sink_publishes_a_stream_that_reads_back(rtsp_server: RtspServer) -> None:
    from streamer.io import demo

    images = [image for image, _ in demo.render(demo.demo_spec(320, 240, seconds=2.0, fps=15))]
    info = StreamInfo("camera", 320, 240, 15.0, Fraction(1, 90000), live=True)
    sink = open_sink(rtsp_server.url("/out"), info, IO)
    sent: dict[int, float] = {}
    stop = threading.Event()

    def publish() -> None:
        i = 0
        while not stop.is_set() and i < 600:
            sent[i % MARKS] = time.monotonic()
            sink.write(Frame(_marked(images[i % len(images)], i), i, pts=i * 6000, time_base=Fraction(1, 90000)))
            i += 1
            stop.wait(1 / 15)

    thread = threading.Thread(target=publish, daemon=True)
    thread.start()
    try:
        time.sleep(0.2)
        source = open_source(rtsp_server.url("/out"), IO)
        reader = FrameReader(source, queue_size=4, drop_oldest=True)
        reader.start()
        frames = read_frames(reader, 30)
        latencies = [f.t_decoded - sent[_mark_of(f.image)] for f in frames[5:]]
        reader.stop()
    finally:
        stop.set()
        thread.join(5)
        sink.close()
    assert len(frames) == 30
    assert (source.info.width, source.info.height) == (320, 240)
    assert_monotonic(frames)
    assert sink.frames_written >= 30
    latency = statistics.median(latencies)
    logging.getLogger(__name__).info("RTSP loopback latency (encode -> relay -> decode): %.0f ms", latency * 1000)
    assert 0 <= latency < 0.5


def test_rtsp_source_reconnects_after_server_restart(
    rtsp_server: RtspServer, live_clip: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="streamer.io.sources")
    with Publisher(rtsp_server.url("/live"), live_clip) as publisher:
        assert publisher.wait_sent(3), publisher.errors
        source = open_source(rtsp_server.url("/live"), IO)
        reader = FrameReader(source, queue_size=8, drop_oldest=True)
        reader.start()
        try:
            before = read_frames(reader, 10)
            rtsp_server.stop(kill=True)  # a crash: connections drop at once
            time.sleep(0.5)
            rtsp_server.start()
            after = read_frames(reader, 20, timeout=20)
        finally:
            reader.stop()
    assert len(before) == 10 and len(after) == 20, f"frames after restart: {len(after)}"
    assert_monotonic(before + after)
    assert publisher.connections >= 2
    assert any("reconnect" in r.getMessage() for r in caplog.records)


def test_rtsp_source_lost_for_good_raises_after_bounded_attempts(rtsp_server: RtspServer, live_clip: Path) -> None:
    io = IOConfig(open_timeout=2.0, reconnect_attempts=3, reconnect_backoff=0.1)
    with Publisher(rtsp_server.url("/live"), live_clip) as publisher:
        assert publisher.wait_sent(3), publisher.errors
        source = open_source(rtsp_server.url("/live"), io)
    reader = FrameReader(source, queue_size=4, drop_oldest=True)
    reader.start()
    try:
        rtsp_server.stop(kill=True)
        start = time.monotonic()
        with pytest.raises(SourceLostError, match="after 3 reconnect attempts"):
            while reader.get(timeout=15) is not None:
                pass
        elapsed = time.monotonic() - start
    finally:
        reader.stop()
    assert elapsed < 6.0, f"SourceLostError took {elapsed:.1f}s"


def test_rtsp_path_without_publisher_fails_within_bounded_time(rtsp_server: RtspServer) -> None:
    io = IOConfig(open_timeout=1.0, reconnect_attempts=1, reconnect_backoff=0.1)
    start = time.monotonic()
    with pytest.raises(SourceError):
        open_source(rtsp_server.url("/in"), io)
    assert time.monotonic() - start < 6.0
