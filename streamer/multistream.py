"""Several streams in one process: ``fawn run -c cameras.yaml`` with a ``streams:`` list.

Each stream is a full :func:`streamer.pipeline.run` (its own decode and encode
threads, and one thread for its stateful stages: tracker, identity decisions,
anonymizer), while the model sessions are loaded once and shared
(:class:`~streamer.processor.SharedModels`): the detector batches frames that
different streams submit at the same time.

A stream that fails (its camera is lost past the reconnect budget, its output
cannot be written) ends alone with its error recorded; the others keep
running. Per-stream statistics are kept live for ``/metrics``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from streamer.config import PipelineConfig, StreamConfig
from streamer.errors import ConfigError, FawnError
from streamer.pipeline import RunOptions, run
from streamer.processor import SharedModels
from streamer.sources import redact_url
from streamer.stats import RunStats
from streamer.types import FaceDetections, Frame

log = logging.getLogger(__name__)

JOIN_POLL = 0.2  # seconds between checks of the stop event while streams run


@dataclass
class StreamResult:
    """One stream of a multi-stream run; ``state`` is starting, running, done or failed."""

    name: str
    source: str
    output: str
    stats: RunStats = field(default_factory=RunStats)
    state: str = "starting"
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        info = {"source": redact_url(self.source), "output": redact_url(self.output), "state": self.state}
        return info | {"error": self.error} | self.stats.to_json()


StreamFrameCallback = Callable[[str, Frame, FaceDetections], None]


@dataclass
class MultiStreamOptions:
    """``stop`` ends every stream (SIGINT/SIGTERM); ``progress``: bars for files, stats lines for live;
    ``on_frame(stream name, frame, faces)`` sees each anonymized frame (on that stream's thread)."""

    stop: threading.Event = field(default_factory=threading.Event)
    progress: bool = True
    stats_interval: float = 2.0
    max_frames: int | None = None
    on_frame: StreamFrameCallback | None = None


def _bind(callback: StreamFrameCallback, name: str) -> Callable[[Frame, FaceDetections], None]:
    def on_frame(frame: Frame, faces: FaceDetections) -> None:
        callback(name, frame, faces)

    return on_frame


class MultiStreamRun:
    """Runs ``cfg.streams`` concurrently with shared models. ``results`` is readable while it runs."""

    def __init__(self, cfg: PipelineConfig, options: MultiStreamOptions | None = None) -> None:
        if not cfg.streams:
            raise ConfigError("streams: the config lists no streams (a list of {source, output, name})")
        self.cfg = cfg
        self.options = options or MultiStreamOptions()
        self.results = [
            StreamResult(name, spec.source, spec.output) for name, spec in zip(cfg.stream_names(), cfg.streams)
        ]
        self.started = time.monotonic()
        self._shared: SharedModels | None = None

    def run(self) -> list[StreamResult]:
        """Run until every stream ends (or ``options.stop``); the results, failures included."""
        shared = SharedModels(self.cfg, streams=len(self.results))  # models first, once, before any stream opens
        self._shared = shared
        threads = [
            threading.Thread(target=self._stream, args=(i, spec, result, shared), name=f"fawn-{result.name}",
                             daemon=True)
            for i, (spec, result) in enumerate(zip(self.cfg.streams, self.results))
        ]
        try:
            for thread in threads:
                thread.start()
            for thread in threads:
                while thread.is_alive():
                    thread.join(JOIN_POLL)
        finally:
            self.options.stop.set()  # a KeyboardInterrupt here still finalizes every output
            for thread in threads:
                thread.join()
            shared.close()
        return self.results

    def _stream(self, position: int, spec: StreamConfig, result: StreamResult, shared: SharedModels) -> None:
        opts = self.options
        on_frame = _bind(opts.on_frame, result.name) if opts.on_frame is not None else None
        options = RunOptions(stop=opts.stop, progress=opts.progress, stats_interval=opts.stats_interval,
                             max_frames=opts.max_frames, label=result.name, position=position, on_frame=on_frame)
        result.state = "running"
        try:
            run(spec.source, spec.output, self.cfg, options, shared=shared, stats=result.stats)
        except FawnError as exc:
            self._failed(result, str(exc))
        except Exception as exc:  # noqa: BLE001 - one broken stream must not take the others down
            log.exception("%s: stream failed", result.name)
            self._failed(result, f"{type(exc).__name__}: {exc}")
        else:
            result.state = "done"
            log.info("%s: finished: %d frames", result.name, result.stats.frames_out)
        finally:
            shared.detector.leave()

    @staticmethod
    def _failed(result: StreamResult, message: str) -> None:
        result.state, result.error = "failed", message
        log.error("%s: %s (the other streams keep running)", result.name, message)

    def summary(self) -> dict[str, Any]:
        """The ``--stats-json`` payload: every stream, plus totals."""
        streams = {r.name: r.to_json() for r in self.results}
        seconds = max(time.monotonic() - self.started, 1e-9)
        frames = sum(r.stats.frames_out for r in self.results)
        return {
            "streams": streams,
            "total": {
                "streams": len(self.results),
                "failed": sum(r.state == "failed" for r in self.results),
                "frames": frames,
                "seconds": round(seconds, 3),
                "fps": round(frames / seconds, 2),
                "faces_anonymized": sum(r.stats.faces_anonymized for r in self.results),
                **self._batching(),
            },
        }

    def _batching(self) -> dict[str, float]:
        detector = self._shared.detector if self._shared is not None else None
        if detector is None or not detector.batches:
            return {"detector_batches": 0, "mean_batch": 0.0}
        return {"detector_batches": detector.batches, "mean_batch": round(detector.frames / detector.batches, 3)}

    def health(self) -> tuple[bool, dict[str, str]]:
        """(no stream failed, the state of each stream) for ``/healthz``."""
        states = {r.name: r.state for r in self.results}
        return all(s != "failed" for s in states.values()), states
