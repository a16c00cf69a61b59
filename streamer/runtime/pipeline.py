"""The pipeline: decode -> detect -> track -> identity -> anonymize -> encode.

:class:`~streamer.runtime.processor.FrameProcessor` runs the stateful stages for one
stream on one thread; :func:`run` connects a source (decode thread) to a sink (encode thread)
through it with bounded queues.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from streamer.core.config import IOConfig, PipelineConfig
from streamer.core.errors import ConfigError
from streamer.core.stats import RunStats
from streamer.core.types import FaceDetections, Frame, Image, StreamInfo
from streamer.io.sinks import open_sink
from streamer.io.sources import Source, open_source
from streamer.io.threads import FrameReader, FrameWriter
from streamer.runtime.processor import FrameProcessor, SharedModels, build_processor

log = logging.getLogger(__name__)

FrameCallback = Callable[[Frame, FaceDetections], None]


@dataclass
class RunOptions:
    """How :func:`run` reports progress. ``stop`` ends the run early (SIGINT/SIGTERM).

    ``label`` names the stream in live stats lines and on its progress bar, which
    sits at row ``position`` (several streams in one process).
    """

    stop: threading.Event | None = None
    progress: bool = True
    stats_interval: float = 2.0
    on_frame: FrameCallback | None = None
    max_frames: int | None = None
    label: str | None = None
    position: int = 0


def run(
    source_spec: str,
    output_spec: str,
    cfg: PipelineConfig,
    options: RunOptions | None = None,
    shared: SharedModels | None = None,
    stats: RunStats | None = None,
) -> RunStats:
    """Anonymize ``source_spec`` into ``output_spec``. The output is finalized even on errors or a stop.

    ``shared``: model sessions shared with other streams of this process;
    ``stats``: where to count (other threads may read it while the run goes on).
    """
    options = options or RunOptions()
    stats = stats if stats is not None else RunStats()
    check_not_overwriting(source_spec, output_spec)
    processor = build_processor(cfg, stats, shared)  # models first: a missing model fails before any stream opens
    try:
        source = open_source(source_spec, cfg.io)
    except BaseException:
        processor.close()
        raise
    _warm(processor, source.info)
    try:
        sink = open_sink(output_spec, source.info, cfg.io)
    except BaseException:
        source.close()
        processor.close()
        raise
    reader = FrameReader(source, cfg.io.queue_size, drop_oldest=source.info.live)
    writer = FrameWriter(sink, cfg.io.queue_size)
    reporter = _Reporter(source.info.live, source.info.frames, options, stats)
    filler = StallFiller(cfg.io, source.info) if source.info.live and cfg.io.stall_fill != "none" else None
    reader.start()
    writer.start()
    try:
        _loop(_Stream(reader, writer, processor, source, filler), options, reporter)
    finally:
        reader.stop()
        stats.dropped = reader.dropped
        try:
            reporter.close()
            processor.close()
        finally:  # the output is finalized whatever a stage's close raised
            writer.close()
    return stats


def _warm(processor: FrameProcessor, info: StreamInfo) -> None:
    """The detector compiles for this stream's frame size while the output opens and the first
    frames decode (a stream of unknown size, or a detector that cannot, skips it)."""
    warm = getattr(processor.detector, "warm", None)
    if warm is not None and info.width > 0 and info.height > 0:
        warm(info.height, info.width)


def check_not_overwriting(source_spec: str, output_spec: str) -> None:
    """ConfigError when the output file is the input file (``fawn run a.mp4 -o a.mp4`` would truncate
    its own input), symlinks resolved; checked before anything opens."""
    source, output = Path(source_spec), Path(output_spec)
    if source.is_file() and output.exists() and os.path.samefile(source, output):
        raise ConfigError(f"the output {output_spec} is the input file: it would be overwritten while read; give another -o")


@dataclass
class _Stream:
    reader: FrameReader
    writer: FrameWriter
    processor: FrameProcessor
    source: Source
    filler: StallFiller | None


def _loop(stream: _Stream, options: RunOptions, reporter: _Reporter) -> None:
    stats = stream.processor.stats
    reader, writer = stream.reader, stream.writer
    while not (options.stop is not None and options.stop.is_set()):
        try:
            with stats.timed("decode_wait"):
                item = reader.get(timeout=stream.filler.timeout() if stream.filler else None)
        except queue.Empty:  # a stalled live source: keep the output going, never with a raw frame
            assert stream.filler is not None
            writer.put(stream.filler.fill(stats))
            stats.reconnects = getattr(stream.source, "reconnects", 0)
            continue
        if item is None:
            break
        if isinstance(item, av.Packet):
            writer.put(item)
            continue
        stats.frames_in += 1
        stats.dropped = reader.dropped
        tracked = stream.processor.process(item)
        if options.on_frame is not None:
            options.on_frame(item, tracked)
        if stream.filler is not None:  # a live source
            stream.filler.remember(item)
            stats.reconnects = getattr(stream.source, "reconnects", 0)
        with stats.timed("encode_wait"):
            writer.put(item)
        stats.frame_done(item.t_decoded)
        reporter.tick()
        if options.max_frames is not None and stats.frames_out >= options.max_frames:
            break


class StallFiller:
    """Keeps a live output going while its source sends nothing (``io.stall_fill``).

    After ``io.stall_after`` seconds without a frame it sends, at the stream's
    frame rate, the last *anonymized* frame (``hold``, for ``io.hold_for``
    seconds) and then black frames; ``blank`` sends black frames at once. Before
    the first frame there is nothing to hold: black frames.
    """

    def __init__(self, io: IOConfig, info: StreamInfo) -> None:
        self.mode = io.stall_fill
        self.stall_after = io.stall_after
        self.hold_for = io.hold_for
        self.period = 1.0 / max(info.fps, 1.0)
        self._time_base = info.time_base
        self._shape = (info.height, info.width, 3)
        self._last: Frame | None = None
        self._last_real = time.monotonic()
        self._stalled = False
        self._blank: Image | None = None

    def timeout(self) -> float:
        """How long the loop may wait for the source before the next filler frame is due."""
        return self.period if self._stalled else self.stall_after

    def remember(self, frame: Frame) -> None:
        """``frame`` went out anonymized: the one to hold if the source stalls next."""
        if self._stalled:
            log.info("source is back after %.1fs", time.monotonic() - self._last_real)
        self._last, self._last_real, self._stalled = frame, time.monotonic(), False

    def fill(self, stats: RunStats) -> Frame:
        """The filler frame due now (one per call), counted in ``stats``."""
        if not self._stalled:
            log.warning("no frame for %.1fs: sending %s frames until the source is back", self.stall_after,
                        "held" if self.mode == "hold" else "black")
        self._stalled = True
        hold = self.mode == "hold" and self._last is not None
        hold = hold and time.monotonic() - self._last_real < self.stall_after + self.hold_for
        image = self._last.image if hold and self._last is not None else self._black()
        frame = self._next(image)
        if hold:
            stats.frames_held += 1
        else:
            stats.frames_blank += 1
        return frame

    def _black(self) -> Image:
        shape = self._last.image.shape if self._last is not None else self._shape
        if self._blank is None or self._blank.shape != shape:
            self._blank = np.zeros(shape, np.uint8)
        return self._blank

    def _next(self, image: Image) -> Frame:
        last = self._last
        index = last.index if last is not None else -1
        pts = None
        if last is not None and last.pts is not None:
            tb = last.time_base or self._time_base
            pts = last.pts + max(1, round(self.period / float(tb)))
        frame = Frame(image, index, pts=pts, time_base=last.time_base if last else self._time_base)
        self._last = frame if last is not None else None
        return frame


class _Reporter:
    """A progress bar for files, a periodic stats line for live streams."""

    def __init__(self, live: bool, total: int | None, options: RunOptions, stats: RunStats) -> None:
        self.live = live
        self.stats = stats
        self.interval = options.stats_interval
        self.prefix = f"{options.label}: " if options.label else ""
        self._last = time.monotonic()
        self._bar = None
        if options.progress and not live:
            from tqdm import tqdm

            self._bar = tqdm(total=total, unit="frame", dynamic_ncols=True, leave=False, desc=options.label,
                             position=options.position)
        self._live_lines = options.progress and live

    def tick(self) -> None:
        now = time.monotonic()
        if self._bar is not None:
            self._bar.update(1)
            if now - self._last >= 0.5:
                self._bar.set_postfix_str(f"faces={self.stats.faces_anonymized} tracks={self.stats.active_tracks}")
                self._last = now
        elif self._live_lines and now - self._last >= self.interval:
            log.info("%s%s", self.prefix, self.stats.line())
            self._last = now

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
