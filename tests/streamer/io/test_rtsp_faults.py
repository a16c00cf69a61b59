"""Fault injection through a real RTSP server on loopback: the whole pipeline keeps going, never raw.

A publisher streams a clip of real faces (like a camera) to gst-rtsp-server;
``pipeline.run`` reads it and writes an MP4. The server is killed and
restarted, paused (SIGSTOP: a stalled relay), the camera switches resolution,
or the link corrupts packets. Each test checks that frames flow again, that
the output kept going (held frames while nothing came), and that no output
frame shows a recognizable face of the input.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np
import pytest

from streamer.core.config import load_config
from streamer.core.stats import RunStats
from streamer.core.types import FaceDetections, Frame, Image
from streamer.io import demo
from streamer.io.sinks import letterbox
from streamer.runtime import pipeline
from streamer.runtime.pipeline import RunOptions
from streamer.tools import verify
from streamer.web.tracks import draw_stamp, read_stamp
from tests.conftest import CLIP_FPS, CLIP_SIZE
from tests.rtsp_server import Publisher, RtspServer, wait_for

pytestmark = pytest.mark.rtsp

STAMP_BLOCK = 6  # px per stamp bit at 320x240 (16 bits: the bottom-left 96x12 pixels)

IO = {"io.open_timeout": 2.0, "io.read_timeout": 1.0, "io.reconnect_attempts": 40, "io.reconnect_backoff": 0.1,
      "io.stall_after": 0.3, "io.preset": "ultrafast"}


def stamped_clip(path: Path, width: int, height: int, seconds: float) -> list[tuple[Image, np.ndarray]]:
    """Real faces at 15 fps, each frame's number stamped in the bottom-left corner (read back from the
    output to find the input frame it shows), a keyframe every 5 frames (a camera tuned for quick
    joins). Returns the stamped frames and their ground-truth face boxes."""
    truth = []
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=CLIP_FPS)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "20"}
        stream.codec_context.gop_size = 5
        for i, (image, boxes) in enumerate(demo.render(demo.demo_spec(width, height, seconds, CLIP_FPS))):
            block = STAMP_BLOCK * width // CLIP_SIZE[0]
            draw_stamp(image[-2 * block :], i, block=block)  # bottom-left: no face comes near it
            truth.append((image, boxes))
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="bgr24")))
        container.mux(stream.encode(None))
    return truth


@pytest.fixture(scope="module")
def camera(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[tuple[Image, np.ndarray]]]:
    path = tmp_path_factory.mktemp("faults") / "camera.mp4"
    return path, stamped_clip(path, *CLIP_SIZE, seconds=4.0)


class LiveRun:
    """``pipeline.run`` on a thread, recording when each real frame came out and its size."""

    def __init__(self, url: str, out: Path, overrides: dict[str, object] | None = None) -> None:
        self.cfg = load_config(None, {**IO, **(overrides or {})})
        self.out = out
        self.url = url
        self.times: list[float] = []
        self.sizes: list[tuple[int, ...]] = []
        self.stats = RunStats()
        self.error: BaseException | None = None
        self.stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _on_frame(self, frame: Frame, _dets: FaceDetections) -> None:
        self.times.append(time.monotonic())
        self.sizes.append(frame.image.shape)

    def _run(self) -> None:
        options = RunOptions(stop=self.stop, progress=False, on_frame=self._on_frame)
        try:
            pipeline.run(self.url, str(self.out), self.cfg, options, stats=self.stats)
        except BaseException as exc:  # reported by the test
            self.error = exc

    def __enter__(self) -> LiveRun:
        self._thread.start()
        assert wait_for(lambda: len(self.times) >= 10 or self.error is not None, 20), "no frames from the camera"
        assert self.error is None, self.error
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self._thread.join(20)

    def frames_after(self, t: float) -> int:
        return sum(1 for x in self.times if x > t)


def _decode(path: Path) -> list[Image]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="bgr24") for f in container.decode(video=0)]


def assert_no_face_shown(out: Path, truth: list[tuple[Image, np.ndarray]], min_checked: int = 20) -> int:
    """Every output frame whose stamp names an input frame hides that frame's ground-truth faces.

    Filler frames repeat a checked frame or are black; frames whose stamp the
    encoder smeared are skipped, but at least ``min_checked`` frames must be checked.
    Returns the number of output frames.
    """
    frames = _decode(out)
    assert frames and len({f.shape for f in frames}) == 1, "the output is empty or changed size"
    checked = assert_no_face_shown_in(frames, truth)
    assert checked >= min_checked, f"only {checked} of {len(frames)} output frames could be matched"
    return len(frames)


def assert_no_face_shown_in(frames: list[Image], truth: list[tuple[Image, np.ndarray]]) -> int:
    """The check of :func:`assert_no_face_shown` on decoded frames; returns how many were matched."""
    pairs = []
    for image in frames:
        index = read_stamp(image[-2 * STAMP_BLOCK :], block=STAMP_BLOCK)
        if index is not None and index < len(truth):
            original, boxes = truth[index]
            pairs.append((original, image, boxes))
    report = verify.face_recall(pairs)
    assert report.recall == 1.0, f"faces recognizable in matched output frames {report.leaked_frames}"
    return len(pairs)


def test_server_crash_and_restart_frames_flow_again_within_2s(
    rtsp_server: RtspServer, camera: tuple[Path, list[tuple[Image, np.ndarray]]], tmp_path: Path
) -> None:
    clip, truth = camera
    out = tmp_path / "restart.mp4"
    with Publisher(rtsp_server.url("/live"), clip) as publisher:
        assert publisher.wait_sent(3), publisher.errors
        with LiveRun(rtsp_server.url("/live"), out) as run:
            rtsp_server.stop(kill=True)
            time.sleep(1.5)
            rtsp_server.start()
            back = time.monotonic()
            assert wait_for(lambda: run.frames_after(back) > 0, 10), "no frame after the server came back"
            first = min(t for t in run.times if t > back)
            assert wait_for(lambda: run.frames_after(back) >= 15, 10)
    assert run.error is None, run.error
    logging.getLogger(__name__).info("frames back %.2fs after the server; %d held frames meanwhile",
                                     first - back, run.stats.frames_held)
    assert first - back < 2.0, f"frames came back {first - back:.2f}s after the server"
    assert run.stats.reconnects >= 1 and run.stats.frames_held > 0  # the output kept going meanwhile
    assert_no_face_shown(out, truth)


def test_stalled_server_output_holds_then_recovers(
    rtsp_server: RtspServer, camera: tuple[Path, list[tuple[Image, np.ndarray]]], tmp_path: Path
) -> None:
    clip, truth = camera
    out = tmp_path / "stall.mp4"
    with Publisher(rtsp_server.url("/live"), clip) as publisher:
        assert publisher.wait_sent(3), publisher.errors
        with LiveRun(rtsp_server.url("/live"), out) as run:
            rtsp_server.pause()  # TCP stays up, nothing flows
            try:
                time.sleep(2.5)
                frames_during = run.frames_after(time.monotonic() - 1.5)  # past what was buffered
            finally:
                rtsp_server.resume()
            back = time.monotonic()
            assert wait_for(lambda: run.frames_after(back) >= 10, 15), "frames did not come back after the stall"
    assert run.error is None, run.error
    assert frames_during <= 3  # at most a few decoded before the pause and processed late (busy CPU)
    assert run.stats.frames_held >= 15  # ~2 s of held frames at 15 fps
    written = assert_no_face_shown(out, truth)
    assert written == run.stats.frames_out + run.stats.frames_held + run.stats.frames_blank


@pytest.fixture
def cpu_hog() -> Iterator[None]:
    """Two busy processes for the test's length: privacy must not depend on the machine being idle
    (under load the live source drops frames and faces move further between processed frames)."""
    hogs = [subprocess.Popen([sys.executable, "-c", "while 1: pass"]) for _ in range(2)]
    try:
        yield
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()


def test_camera_switches_resolution_output_keeps_its_size(
    rtsp_server: RtspServer, camera: tuple[Path, list[tuple[Image, np.ndarray]]], tmp_path: Path, cpu_hog: None
) -> None:
    clip, truth = camera
    big = tmp_path / "big.mp4"
    truth_big = stamped_clip(big, 640, 480, seconds=2.0)
    out = tmp_path / "switch.mp4"
    first = Publisher(rtsp_server.url("/live"), clip).start()
    try:
        assert first.wait_sent(3), first.errors
        with LiveRun(rtsp_server.url("/live"), out) as run:
            first.stop()  # the camera reboots with another resolution
            with Publisher(rtsp_server.url("/live"), big) as second:
                assert second.wait_sent(3), second.errors
                assert wait_for(lambda: run.sizes.count((480, 640, 3)) >= 20, 20), "no frames at the new size"
    finally:
        first.stop()
    assert run.error is None, run.error
    frames = _decode(out)
    assert {f.shape for f in frames} == {(240, 320, 3)}  # the output keeps its size
    # the 640x480 camera's frames come out scaled into 320x240: check them against its faces, scaled
    scaled = [(letterbox(image, 320, 240), boxes * 0.5) for image, boxes in truth_big]
    small_checked = assert_no_face_shown_in(frames[: run.sizes.index((480, 640, 3))], truth)
    big_checked = assert_no_face_shown_in(frames[run.sizes.index((480, 640, 3)) :], scaled)
    assert small_checked >= 10 and big_checked >= 10


def test_corrupt_packets_are_survived_and_never_leak(
    rtsp_server: RtspServer, camera: tuple[Path, list[tuple[Image, np.ndarray]]], tmp_path: Path
) -> None:
    clip, truth = camera
    out = tmp_path / "corrupt.mp4"
    with Publisher(rtsp_server.url("/live"), clip, corrupt=0.15, seed=7) as publisher:
        assert publisher.wait_sent(3), publisher.errors
        with LiveRun(rtsp_server.url("/live"), out) as run:
            start = time.monotonic()
            assert wait_for(lambda: run.frames_after(start) >= 45, 20), "frames stopped flowing"
    assert run.error is None, run.error
    assert publisher.corrupted >= 5
    assert_no_face_shown(out, truth)


def test_one_camera_lost_for_good_the_other_streams_go_on(
    rtsp_server: RtspServer, camera: tuple[Path, list[tuple[Image, np.ndarray]]], tmp_path: Path
) -> None:
    from streamer.runtime.multistream import MultiStreamOptions, MultiStreamRun

    clip, truth = camera
    lost = Publisher(rtsp_server.url("/live"), clip).start()
    steady = Publisher(rtsp_server.url("/in"), clip).start()
    overrides = {**IO, "io.reconnect_attempts": 3, "streams": [
        {"name": "gone", "source": rtsp_server.url("/live"), "output": str(tmp_path / "gone.mp4")},
        {"name": "steady", "source": rtsp_server.url("/in"), "output": str(tmp_path / "steady.mp4")},
    ]}
    stop = threading.Event()
    multi = MultiStreamRun(load_config(None, overrides), MultiStreamOptions(stop=stop, progress=False))
    worker = threading.Thread(target=multi.run, daemon=True)
    try:
        assert lost.wait_sent(3) and steady.wait_sent(3)
        worker.start()
        gone, kept = multi.results
        assert wait_for(lambda: gone.stats.frames_out > 10 and kept.stats.frames_out > 10, 20)
        lost.stop()  # that camera is unplugged for good: its path answers 404 from now on
        assert wait_for(lambda: gone.state == "retrying", 20), gone.state  # reopened in the background
        lost_because = gone.error
        after = kept.stats.frames_out
        assert wait_for(lambda: kept.stats.frames_out >= after + 20, 10), "the other stream stalled"
        assert kept.state == "running"
    finally:
        stop.set()
        worker.join(20)
        lost.stop()
        steady.stop()
    assert "after 3 reconnect attempts" in (lost_because or "")
    assert gone.state == "failed" and gone.retries >= 1  # still away when the run stopped
    assert kept.state == "done" and kept.error is None
    assert_no_face_shown(tmp_path / "steady.mp4", truth)
    assert_no_face_shown(tmp_path / "gone.mp4", truth, min_checked=5)  # finalized and playable
