"""Several streams in one process: ``fawn run -c cameras.yaml`` with a ``streams:`` list.

Each stream is a full :func:`streamer.runtime.pipeline.run` (its own decode and encode
threads, and one thread for its stateful stages: tracker, identity decisions,
anonymizer), while the model sessions are loaded once and shared
(:class:`~streamer.runtime.processor.SharedModels`): the detector batches frames that
different streams submit at the same time.

A stream that fails (its output cannot be written, its file is missing) ends
alone with its error recorded; the others keep running. A camera (``rtsp://``,
``cam:N``) that cannot be reached, or is lost past its reconnect budget, does
not end: its stream is ``retrying`` and reopened in the background every
``io.reconnect_max_backoff`` seconds until it is back or the run stops (a file
output then continues in a new file, ``name.1.mp4``, ``name.2.mp4``…: nothing
written is overwritten). Per-stream statistics are kept live for ``/metrics``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from streamer.core.config import PipelineConfig, StreamConfig
from streamer.core.errors import ConfigError, FawnError
from streamer.core.redact import redact_text, redact_url
from streamer.core.stats import RunStats
from streamer.core.types import FaceDetections, Frame
from streamer.io.sources import is_live_spec
from streamer.runtime.pipeline import RunOptions, run
from streamer.runtime.processor import SharedModels

log = logging.getLogger(__name__)

JOIN_POLL = 0.2  # seconds between checks of the stop event while streams run


@dataclass
class StreamResult:
    """One stream of a multi-stream run; ``state`` is starting, running, retrying, done or failed.

    ``error`` is the last failure (passwords redacted); ``outputs`` every file written (a retried
    camera continues in a new one); ``retries`` how many times the source was reopened after one.
    """

    name: str
    source: str
    output: str
    stats: RunStats = field(default_factory=RunStats)
    state: str = "starting"
    error: str | None = None
    retries: int = 0
    outputs: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        info = {"source": redact_url(self.source), "output": redact_url(self.output), "state": self.state}
        extra = {"error": self.error, "retries": self.retries, "outputs": [redact_url(o) for o in self.outputs]}
        return info | extra | self.stats.to_json()


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


def _running(
    result: StreamResult, then: Callable[[Frame, FaceDetections], None] | None
) -> Callable[[Frame, FaceDetections], None]:
    """An ``on_frame`` that marks a retrying stream running again at its first frame, then calls ``then``."""

    def on_frame(frame: Frame, faces: FaceDetections) -> None:
        if result.state == "retrying":
            result.state, result.error = "running", None
            log.info("%s: the source is back after %d retries", result.name, result.retries)
        if then is not None:
            then(frame, faces)

    return on_frame


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
        on_frame = _running(result, _bind(opts.on_frame, result.name) if opts.on_frame is not None else None)
        options = RunOptions(stop=opts.stop, progress=opts.progress, stats_interval=opts.stats_interval,
                             max_frames=opts.max_frames, label=result.name, position=position, on_frame=on_frame)
        retry = is_live_spec(spec.source)
        try:
            while True:
                error = self._attempt(spec, result, options, shared)
                if error is None:
                    result.state = "done"
                    log.info("%s: finished: %d frames", result.name, result.stats.frames_out)
                    return
                if not retry or opts.stop.is_set():
                    self._failed(result, error)
                    return
                self._retrying(result, error)
                if opts.stop.wait(self._retry_every()):
                    self._failed(result, error)  # stopped before the camera came back
                    return
        finally:
            shared.detector.leave()

    def _attempt(self, spec: StreamConfig, result: StreamResult, options: RunOptions, shared: SharedModels) -> str | None:
        """One run of the stream: None when it ended normally, else why it failed (redacted)."""
        output = spec.output if not result.outputs else _next_output(spec.output)
        if output not in result.outputs:
            result.outputs.append(output)
        if result.state != "retrying":
            result.state = "running"
        try:
            run(spec.source, output, self.cfg, options, shared=shared, stats=result.stats)
        except FawnError as exc:
            return redact_text(str(exc))
        except Exception as exc:  # noqa: BLE001 - one broken stream must not take the others down
            message = redact_text(f"{type(exc).__name__}: {exc}")
            log.exception("%s: stream failed: %s", result.name, message)
            return message
        return None

    def _retry_every(self) -> float:
        return max(self.cfg.io.reconnect_max_backoff, 0.05)

    def _retrying(self, result: StreamResult, message: str) -> None:
        changed = message != result.error or result.state != "retrying"
        result.state, result.error = "retrying", message
        result.retries += 1
        level = logging.WARNING if changed or result.retries % 60 == 0 else logging.DEBUG  # no log flood
        log.log(level, "%s: %s; retrying every %.1fs (try %d; the other streams keep running)",
                result.name, message, self._retry_every(), result.retries)

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
        """(no stream failed or retrying, the state of each stream) for ``/healthz``."""
        states = {r.name: r.state for r in self.results}
        return all(s not in ("failed", "retrying") for s in states.values()), states

    def errors(self) -> dict[str, str]:
        """Why each stream that is not running failed or retries (passwords redacted), for ``/healthz``."""
        return {r.name: r.error for r in self.results if r.error and r.state in ("failed", "retrying")}


def _next_output(output: str) -> str:
    """Where a retried stream writes next: the same RTSP URL or null; a file never overwritten
    (``cam.mp4`` -> ``cam.1.mp4``, ``cam.2.mp4``...)."""
    if output == "null" or "://" in output:
        return output
    path = Path(output)
    if not path.exists():
        return output
    k = 1
    while (candidate := path.with_name(f"{path.stem}.{k}{path.suffix}")).exists():
        k += 1
    return str(candidate)
