"""Shared pytest fixtures. Each group of fixtures lives under its own header."""

from __future__ import annotations

from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from tests.rtsp_server import RtspServer, unavailable_reason

# ============================================================================
# IO fixtures: media clips made in code from real face photos (streamer.io.demo),
# and a real RTSP server on loopback (tests/rtsp_server.py).
# Used by tests/streamer/io/test_sources.py, test_sinks.py, test_threads.py, test_rtsp.py.
# ============================================================================

CLIP_SIZE = (320, 240)
CLIP_FPS = 15
VFR_STEPS_MS = (33, 50, 67, 100, 40)  # irregular frame durations of the VFR clips


def _write_clip(
    path: Path,
    seconds: float,
    *,
    vfr: bool = False,
    audio: bool = False,
    gop: int | None = None,
) -> Path:
    """Encode demo frames (real faces) with PyAV: H.264, optionally VFR and with an AAC sine track."""
    from streamer.io import demo

    spec = demo.demo_spec(*CLIP_SIZE, seconds=seconds, fps=CLIP_FPS)
    tb = Fraction(1, 1000)
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=CLIP_FPS)
        video.width, video.height, video.pix_fmt = *CLIP_SIZE, "yuv420p"
        video.time_base = video.codec_context.time_base = tb
        video.options = {"preset": "ultrafast", "crf": "26"}
        if gop is not None:
            video.codec_context.gop_size = gop
        sound = container.add_stream("aac", rate=44100) if audio else None
        if sound is not None:
            sound.layout = "mono"
        pts = 0
        for i, (image, _boxes) in enumerate(demo.render(spec)):
            frame = av.VideoFrame.from_ndarray(image, format="bgr24")
            frame.pts, frame.time_base = pts, tb
            container.mux(video.encode(frame))
            pts += VFR_STEPS_MS[i % len(VFR_STEPS_MS)] if vfr else round(1000 / CLIP_FPS)
        container.mux(video.encode(None))
        if sound is not None:
            _write_tone(container, sound, pts / 1000)
    return path


def _write_tone(container: av.container.OutputContainer, stream: av.audio.stream.AudioStream, seconds: float) -> None:
    rate, chunk = 44100, 1024
    t = np.arange(int(rate * seconds)) / rate
    samples = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    for start in range(0, len(samples), chunk):
        frame = av.AudioFrame.from_ndarray(samples[None, start : start + chunk], format="fltp", layout="mono")
        frame.sample_rate, frame.pts = rate, start
        container.mux(stream.encode(frame))
    container.mux(stream.encode(None))


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="session")
def demo_clip(media_dir: Path) -> Path:
    """2 s, 15 fps, 320x240 H.264 MP4 written by streamer.io.demo.write_clip (30 frames)."""
    from streamer.io import demo

    path = media_dir / "demo.mp4"
    demo.write_clip(demo.demo_spec(*CLIP_SIZE, seconds=2.0, fps=CLIP_FPS), path)
    return path


@pytest.fixture(scope="session")
def av_clip(media_dir: Path) -> Path:
    """VFR video (30 frames) with an AAC 440 Hz tone, in MP4."""
    return _write_clip(media_dir / "av.mp4", 2.0, vfr=True, audio=True)


@pytest.fixture(scope="session")
def vfr_clip(media_dir: Path) -> Path:
    """VFR video only (30 frames, irregular durations), in Matroska."""
    return _write_clip(media_dir / "vfr.mkv", 2.0, vfr=True)


@pytest.fixture(scope="session")
def live_clip(media_dir: Path) -> Path:
    """4 s at 15 fps with a keyframe every second: what a camera sends (for RTSP publishing)."""
    return _write_clip(media_dir / "live.mp4", 4.0, gop=CLIP_FPS)


@pytest.fixture
def rtsp_server() -> Iterator[RtspServer]:
    """A fresh gst-rtsp-server relay on a free loopback port (mounts /in, /out, /live)."""
    reason = unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    server = RtspServer()
    server.start()
    try:
        yield server
    finally:
        server.close()
