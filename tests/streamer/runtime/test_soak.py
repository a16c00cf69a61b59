"""Soak: a live source faster than the pipeline for a bounded time (``slow`` marker).

The source replays the demo clip's real faces as a live stream at an
accelerated rate (120 fps), so the pipeline falls behind all the time: the
decode queue must stay bounded (oldest frames dropped), memory must stay flat,
and every delivered frame must still be anonymized. Length: FAWN_SOAK_SECONDS
(default 60).
"""

from __future__ import annotations

import os
import resource
import threading
import time
from collections.abc import Iterator
from fractions import Fraction

import numpy as np
import pytest

from streamer.core.config import load_config
from streamer.core.types import FaceDetections, Frame, StreamInfo
from streamer.io import demo
from streamer.runtime import pipeline
from streamer.runtime.pipeline import RunOptions
from streamer.tools import verify

SECONDS = float(os.environ.get("FAWN_SOAK_SECONDS", "60"))


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


class LoopingLiveSource:
    """The demo clip as an endless live source at 4x real time (120 fps)."""

    def __init__(self, stop: threading.Event) -> None:
        self.frames = list(demo.render(demo.demo_spec(seconds=2.0)))
        self.stop = stop
        self.info = StreamInfo("soak", 640, 480, 30.0, Fraction(1, 30), live=True)
        self.sent = 0  # frames handed to the pipeline's reader

    def read(self) -> Iterator[Frame]:
        index = 0
        while not self.stop.is_set():
            image, _ = self.frames[index % len(self.frames)]
            self.sent += 1
            yield Frame(image.copy(), index, pts=index, time_base=self.info.time_base, t_decoded=time.monotonic())
            index += 1
            time.sleep(1 / 120)

    def close(self) -> None:
        self.stop.set()


def _assert_backlog_bounded(sent: int, processed: int, dropped: int, queue_size: int) -> None:
    """Every frame the source sent was processed or dropped, but for at most a queue's worth (plus the
    one the reader holds) still waiting at the stop: the backlog is bounded however fast the machine is."""
    waiting = sent - processed - dropped
    assert 0 <= waiting <= queue_size + 1, f"{sent} sent, {processed} processed, {dropped} dropped"


@pytest.mark.slow
def test_soak_memory_flat_queues_bounded_no_leak(monkeypatch: pytest.MonkeyPatch) -> None:
    stop = threading.Event()
    source = LoopingLiveSource(stop)
    monkeypatch.setattr(pipeline, "open_source", lambda spec, io: source)
    cfg = load_config(None, {"io.queue_size": 4})
    rss: list[float] = []
    leaks: list[int] = []

    def on_frame(frame: Frame, tracked: FaceDetections) -> None:
        original, truth = source.frames[frame.index % len(source.frames)]
        if frame.index % 7 == 0 and not all(verify.face_hidden(original, frame.image, box) for box in truth):
            leaks.append(frame.index)
        if frame.index % 50 == 0:
            rss.append(_rss_mb())

    timer = threading.Timer(SECONDS, stop.set)
    timer.start()
    try:
        stats = pipeline.run("soak", "null", cfg, RunOptions(stop=stop, progress=False, on_frame=on_frame))
    finally:
        timer.cancel()
    warm = rss[len(rss) // 5 :]  # after models, buffers and allocator pools settle
    print(f"\nsoak {SECONDS:.0f}s: {stats.frames_out} frames out, {stats.dropped} dropped, "
          f"RSS {warm[0]:.0f} -> {warm[-1]:.0f} MB (max {max(warm):.0f})")
    assert stats.frames_out > 0
    _assert_backlog_bounded(source.sent, stats.frames_in, stats.dropped, cfg.io.queue_size)
    assert not leaks, f"faces left recognizable in frames {leaks[:10]}"
    assert max(warm) - warm[0] < 40.0, f"RSS grew from {warm[0]:.0f} to {max(warm):.0f} MB"
    assert float(np.median(np.diff(warm))) <= 0.5


@pytest.mark.slow
def test_soak_two_streams_shared_models_memory_flat_no_leak(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two accelerated live cameras in one process (shared batching detector) for the soak length."""
    from streamer.runtime.multistream import MultiStreamOptions, MultiStreamRun

    stop = threading.Event()
    sources = {"cam-a": LoopingLiveSource(stop), "cam-b": LoopingLiveSource(stop)}
    monkeypatch.setattr(pipeline, "open_source", lambda spec, io: sources[spec])
    cfg = load_config(None, {"io.queue_size": 4, "detector.every_n": 2, "streams": [
        {"name": name, "source": name, "output": "null"} for name in sources
    ]})
    rss: list[float] = []
    leaks: list[tuple[str, int]] = []
    lock = threading.Lock()

    def on_frame(name: str, frame: Frame, tracked: FaceDetections) -> None:
        source = sources[name]
        original, truth = source.frames[frame.index % len(source.frames)]
        if frame.index % 7 == 0 and not all(verify.face_hidden(original, frame.image, box) for box in truth):
            leaks.append((name, frame.index))
        if name == "cam-a" and frame.index % 50 == 0:
            with lock:
                rss.append(_rss_mb())

    multi = MultiStreamRun(cfg, MultiStreamOptions(stop=stop, progress=False, on_frame=on_frame))
    timer = threading.Timer(SECONDS, stop.set)
    timer.start()
    try:
        results = multi.run()
    finally:
        timer.cancel()
    warm = rss[len(rss) // 5 :]
    outs = {r.name: (r.stats.frames_out, r.stats.dropped) for r in results}
    print(f"\nsoak 2 streams {SECONDS:.0f}s: (frames out, dropped) {outs}, "
          f"RSS {warm[0]:.0f} -> {warm[-1]:.0f} MB (max {max(warm):.0f})")
    assert all(r.state == "done" and r.stats.frames_out > 0 for r in results)
    for r in results:
        _assert_backlog_bounded(sources[r.name].sent, r.stats.frames_in, r.stats.dropped, cfg.io.queue_size)
    assert not leaks, f"faces left recognizable in {leaks[:10]}"
    assert max(warm) - warm[0] < 40.0, f"RSS grew from {warm[0]:.0f} to {max(warm):.0f} MB"
    assert float(np.median(np.diff(warm))) <= 0.5
