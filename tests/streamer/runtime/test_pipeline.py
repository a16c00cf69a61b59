"""The pipeline with a live source that stalls or switches resolution: the output goes on, never raw.

The live source here is in-process (frames of the demo clip, real faces, with
pauses and a size change) so the timing is exact; tests/streamer/io/test_rtsp_faults.py
does the same through a real RTSP server.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from streamer.core.config import load_config
from streamer.core.types import Frame, Image, StreamInfo
from streamer.io import demo
from streamer.io.sinks import letterbox
from streamer.runtime import pipeline
from streamer.runtime.pipeline import RunOptions
from streamer.tools import verify

FPS = 20


class ScriptedLiveSource:
    """Demo frames as a live camera at ``FPS``; ``pauses`` maps a frame index to seconds of silence
    before it; from ``switch_at`` on, frames come at ``switch_size``."""

    def __init__(self, frames: list[tuple[Image, np.ndarray]], pauses: dict[int, float],
                 switch_at: int | None = None, switch_size: tuple[int, int] = (320, 240)) -> None:
        self.frames = frames
        self.pauses = pauses
        self.switch_at = switch_at
        self.switch_size = switch_size
        h, w = frames[0][0].shape[:2]
        self.info = StreamInfo("scripted", w, h, float(FPS), Fraction(1, FPS), live=True)
        self.sent: list[tuple[Image, np.ndarray]] = []
        self._closed = threading.Event()

    def frame(self, i: int) -> tuple[Image, np.ndarray]:
        image, boxes = self.frames[i]
        if self.switch_at is not None and i >= self.switch_at:
            w, h = self.switch_size
            sx, sy = w / image.shape[1], h / image.shape[0]
            return cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA), boxes * np.array([sx, sy, sx, sy])
        return image, boxes

    def read(self) -> Iterator[Frame]:
        start = time.monotonic()
        for i in range(len(self.frames)):
            if self._closed.wait(self.pauses.get(i, 0.0)):
                return
            start += self.pauses.get(i, 0.0)
            image, boxes = self.frame(i)
            self.sent.append((image, boxes))
            time.sleep(max(0.0, start + i / FPS - time.monotonic()))
            yield Frame(image.copy(), i, pts=i + int(sum(v for k, v in self.pauses.items() if k <= i) * FPS),
                        time_base=self.info.time_base, t_decoded=time.monotonic())

    def close(self) -> None:
        self._closed.set()


@pytest.fixture(scope="module")
def clip_frames() -> list[tuple[Image, np.ndarray]]:
    return list(demo.render(demo.demo_spec(width=320, height=240, seconds=2.0, fps=FPS)))


def _run(source: ScriptedLiveSource, out: Path, overrides: dict[str, object], monkeypatch: pytest.MonkeyPatch) -> object:
    monkeypatch.setattr(pipeline, "open_source", lambda spec, io: source)
    cfg = load_config(None, {"io.preset": "ultrafast", **overrides})
    return pipeline.run("scripted", str(out), cfg, RunOptions(progress=False))


def _decode(path: Path) -> list[Image]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="bgr24") for f in container.decode(video=0)]


def _hidden_everywhere(source: ScriptedLiveSource, frames: list[Image]) -> None:
    """Every output frame either is black or hides every face of every source frame it could show."""
    for k, image in enumerate(frames):
        if image.max() < 20:
            continue
        for original, boxes in source.sent:
            if original.shape != image.shape:
                original, boxes = letterbox(original, image.shape[1], image.shape[0]), _letterbox_boxes(
                    boxes, original.shape, image.shape)
            best = max(verify.detail_correlation(original, image, box) for box in boxes) if len(boxes) else 0.0
            assert best < verify.DETAIL_THRESHOLD, f"output frame {k} shows a face (correlation {best:.2f})"


def _letterbox_boxes(boxes: np.ndarray, src: tuple[int, ...], dst: tuple[int, ...]) -> np.ndarray:
    scale = min(dst[1] / src[1], dst[0] / src[0])
    x0, y0 = (dst[1] - round(src[1] * scale)) // 2, (dst[0] - round(src[0] * scale)) // 2
    return boxes * scale + np.array([x0, y0, x0, y0])


def test_stalled_live_source_output_holds_the_anonymized_frame(
    clip_frames: list[tuple[Image, np.ndarray]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = ScriptedLiveSource(clip_frames[:30], pauses={15: 1.5})
    out = tmp_path / "held.mp4"
    stats = _run(source, out, {"io.stall_after": 0.3, "io.hold_for": 5.0}, monkeypatch)
    frames = _decode(out)
    # up to (1.5 - 0.3) s at 20 fps; a loaded machine sends fewer: count them, never assume the rate
    assert stats.frames_held >= 1 and stats.frames_blank == 0
    assert len(frames) == stats.frames_out + stats.frames_held
    held = frames[15 : 15 + stats.frames_held]
    diffs = [float(np.abs(a.astype(int) - held[0].astype(int)).mean()) for a in held]
    assert max(diffs) < 3.0  # the same (anonymized) frame repeated, up to encoding noise
    _hidden_everywhere(source, frames)


def test_stall_past_hold_for_turns_black(
    clip_frames: list[tuple[Image, np.ndarray]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = ScriptedLiveSource(clip_frames[:20], pauses={10: 1.5})
    out = tmp_path / "blank.mp4"
    stats = _run(source, out, {"io.stall_after": 0.2, "io.hold_for": 0.4}, monkeypatch)
    frames = _decode(out)
    assert stats.frames_held >= 1 and stats.frames_blank >= 1  # held first, then black (counts depend on load)
    assert sum(f.max() < 20 for f in frames) == stats.frames_blank
    first_black = next(i for i, f in enumerate(frames) if f.max() < 20)
    assert all(f.max() >= 20 for f in frames[first_black - stats.frames_held : first_black])  # the held frames
    _hidden_everywhere(source, frames)


def test_stall_fill_none_sends_nothing_extra(
    clip_frames: list[tuple[Image, np.ndarray]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = ScriptedLiveSource(clip_frames[:20], pauses={10: 0.8})
    stats = _run(source, tmp_path / "none.mp4", {"io.stall_fill": "none"}, monkeypatch)
    assert stats.frames_held == stats.frames_blank == 0
    assert len(_decode(tmp_path / "none.mp4")) == 20


def test_resolution_switch_is_letterboxed_and_still_anonymized(
    clip_frames: list[tuple[Image, np.ndarray]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    big = [(cv2.resize(im, (640, 480)), boxes * 2) for im, boxes in clip_frames[:30]]
    source = ScriptedLiveSource(big, pauses={}, switch_at=12, switch_size=(480, 270))
    out = tmp_path / "switch.mp4"
    stats = _run(source, out, {}, monkeypatch)
    frames = _decode(out)
    # a live source drops its oldest queued frame when processing falls behind (a loaded machine):
    # count what went in and out, never assume all 30 made it
    assert len(frames) == stats.frames_out == stats.frames_in and stats.frames_in + stats.dropped == 30
    assert {f.shape for f in frames} == {(480, 640, 3)}  # the output keeps its size
    assert frames[-1][:40].max() < 20  # 480x270 letterboxed into 640x480: black bars
    _hidden_everywhere(source, frames)


def test_a_processor_close_that_raises_still_finalizes_the_output(
    demo_clip: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from streamer.runtime.processor import FrameProcessor

    def broken_close(self: FrameProcessor) -> None:
        raise RuntimeError("injected close failure")

    monkeypatch.setattr(FrameProcessor, "close", broken_close)
    out = tmp_path / "finalized.mp4"
    cfg = load_config(None, {"io.preset": "ultrafast"})
    with pytest.raises(RuntimeError, match="injected close failure"):
        pipeline.run(str(demo_clip), str(out), cfg, RunOptions(progress=False, max_frames=10))
    frames = _decode(out)  # a truncated, unfinalized mp4 has no moov atom and cannot be opened
    assert len(frames) == 10
