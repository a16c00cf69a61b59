"""The pipeline: decode -> detect -> track -> identity -> anonymize -> encode.

:class:`~streamer.processor.FrameProcessor` runs the stateful stages for one
stream on one thread; :func:`run` connects a source (decode thread) to a sink (encode thread)
through it with bounded queues.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import av

from streamer.config import PipelineConfig
from streamer.processor import FrameProcessor, build_processor
from streamer.sinks import open_sink
from streamer.sources import open_source
from streamer.stats import RunStats
from streamer.threads import FrameReader, FrameWriter
from streamer.types import FaceDetections, Frame

log = logging.getLogger(__name__)

FrameCallback = Callable[[Frame, FaceDetections], None]


@dataclass
class RunOptions:
    """How :func:`run` reports progress. ``stop`` ends the run early (SIGINT/SIGTERM)."""

    stop: threading.Event | None = None
    progress: bool = True
    stats_interval: float = 2.0
    on_frame: FrameCallback | None = None
    max_frames: int | None = None


def run(source_spec: str, output_spec: str, cfg: PipelineConfig, options: RunOptions | None = None) -> RunStats:
    """Anonymize ``source_spec`` into ``output_spec``. The output is finalized even on errors or a stop."""
    options = options or RunOptions()
    stats = RunStats()
    processor = build_processor(cfg, stats)  # models first: a missing model fails before any stream opens
    source = open_source(source_spec, cfg.io)
    try:
        sink = open_sink(output_spec, source.info, cfg.io)
    except BaseException:
        source.close()
        raise
    reader = FrameReader(source, cfg.io.queue_size, drop_oldest=source.info.live)
    writer = FrameWriter(sink, cfg.io.queue_size)
    reporter = _Reporter(source.info.live, source.info.frames, options, stats)
    reader.start()
    writer.start()
    try:
        _loop(reader, writer, processor, options, reporter)
    finally:
        reader.stop()
        stats.dropped = reader.dropped
        reporter.close()
        processor.close()
        writer.close()
    return stats


def _loop(
    reader: FrameReader, writer: FrameWriter, processor: FrameProcessor, options: RunOptions, reporter: _Reporter
) -> None:
    stats = processor.stats
    while not (options.stop is not None and options.stop.is_set()):
        with stats.timed("decode_wait"):
            item = reader.get(timeout=None)
        if item is None:
            break
        if isinstance(item, av.Packet):
            writer.put(item)
            continue
        stats.frames_in += 1
        stats.dropped = reader.dropped
        tracked = processor.process(item)
        if options.on_frame is not None:
            options.on_frame(item, tracked)
        with stats.timed("encode_wait"):
            writer.put(item)
        stats.frame_done(item.t_decoded)
        reporter.tick()
        if options.max_frames is not None and stats.frames_out >= options.max_frames:
            break


class _Reporter:
    """A progress bar for files, a periodic stats line for live streams."""

    def __init__(self, live: bool, total: int | None, options: RunOptions, stats: RunStats) -> None:
        self.live = live
        self.stats = stats
        self.interval = options.stats_interval
        self._last = time.monotonic()
        self._bar = None
        if options.progress and not live:
            from tqdm import tqdm

            self._bar = tqdm(total=total, unit="frame", dynamic_ncols=True, leave=False)
        self._live_lines = options.progress and live

    def tick(self) -> None:
        now = time.monotonic()
        if self._bar is not None:
            self._bar.update(1)
            if now - self._last >= 0.5:
                self._bar.set_postfix_str(f"faces={self.stats.faces_anonymized} tracks={self.stats.active_tracks}")
                self._last = now
        elif self._live_lines and now - self._last >= self.interval:
            log.info("%s", self.stats.line())
            self._last = now

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
