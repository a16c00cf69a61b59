"""Prometheus text exposition of run statistics (``GET /metrics`` of ``fawn serve``).

Written by hand (the format is a few lines of text) so the core needs no
client library. One series per stream, labelled ``stream="<name>"``.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterable, Mapping

from streamer.core.errors import ConfigError
from streamer.core.redact import redact_text
from streamer.core.stats import RunStats

log = logging.getLogger(__name__)

# name, type, help, value of a RunStats
_SERIES: tuple[tuple[str, str, str], ...] = (
    ("fawn_frames_total", "counter", "Frames anonymized and handed to the output."),
    ("fawn_frames_in_total", "counter", "Frames taken from the source."),
    ("fawn_frames_dropped_total", "counter", "Frames dropped because the pipeline fell behind (live sources)."),
    ("fawn_fps", "gauge", "Output frames per second over the last ~120 frames."),
    ("fawn_latency_ms", "gauge", "Mean decode-to-output latency of the last 60 frames, in ms."),
    ("fawn_faces_anonymized_total", "counter", "Face rows anonymized (pending, unknown and coasting included)."),
    ("fawn_faces_visible_total", "counter", "Face rows shown un-anonymized (decided registered people)."),
    ("fawn_tracks_active", "gauge", "Faces tracked in the last frame."),
    ("fawn_tracks_total", "counter", "Distinct tracks seen."),
    ("fawn_detector_errors_total", "counter", "Frames on which the detector failed (anonymized fail-closed)."),
    ("fawn_identity_calls_total", "counter", "Identity embeddings computed."),
    ("fawn_frame_errors_total", "counter", "Frames a stage failed on (blurred whole, fail-closed)."),
    ("fawn_frames_held_total", "counter", "Frames repeated (last anonymized frame) while a live source stalled."),
    ("fawn_frames_blank_total", "counter", "Black frames sent while a live source stalled past io.hold_for."),
    ("fawn_reconnects_total", "counter", "Times a live source reconnected after a drop or a stall."),
)
DECISIONS = ("registered", "unknown", "revoked")


def _values(stats: RunStats) -> dict[str, float]:
    return {
        "fawn_frames_total": stats.frames_out,
        "fawn_frames_in_total": stats.frames_in,
        "fawn_frames_dropped_total": stats.dropped,
        "fawn_fps": round(stats.recent_fps(), 3),
        "fawn_latency_ms": round(stats.latency.recent_ms(), 3),
        "fawn_faces_anonymized_total": stats.faces_anonymized,
        "fawn_faces_visible_total": stats.faces_visible,
        "fawn_tracks_active": stats.active_tracks,
        "fawn_tracks_total": len(stats.track_ids),
        "fawn_detector_errors_total": stats.detector_errors,
        "fawn_identity_calls_total": sum(stats.identity_calls.values()),
        "fawn_frame_errors_total": stats.frame_errors,
        "fawn_frames_held_total": stats.frames_held,
        "fawn_frames_blank_total": stats.frames_blank,
        "fawn_reconnects_total": stats.reconnects,
    }


def _label(value: str) -> str:
    """A label value: passwords redacted (a stream may be named by its URL), then escaped."""
    return redact_text(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def prometheus_text(streams: Mapping[str, RunStats], gauges: Iterable[tuple[str, str, float]] = ()) -> str:
    """The exposition text for ``streams`` plus unlabelled ``(name, help, value)`` gauges."""
    values = {name: _values(stats) for name, stats in streams.items()}
    lines: list[str] = []
    for metric, kind, help_text in _SERIES:
        lines += [f"# HELP {metric} {help_text}", f"# TYPE {metric} {kind}"]
        lines += [f'{metric}{{stream="{_label(name)}"}} {v[metric]}' for name, v in values.items()]
    lines += ["# HELP fawn_stage_ms Mean wall time per call of each stage over the last 60 calls, in ms.",
              "# TYPE fawn_stage_ms gauge"]
    for name, stats in streams.items():
        for stage, timer in sorted(stats.stages.items()):
            lines.append(f'fawn_stage_ms{{stream="{_label(name)}",stage="{stage}"}} {round(timer.recent_ms(), 3)}')
    lines += ["# HELP fawn_identity_decisions_total Per-track identity decisions (and revocations after a re-check).",
              "# TYPE fawn_identity_decisions_total counter"]
    for name, stats in streams.items():
        for kind in DECISIONS:
            count = stats.identity_decisions.get(kind, 0)
            lines.append(f'fawn_identity_decisions_total{{stream="{_label(name)}",decision="{kind}"}} {count}')
    for metric, help_text, value in gauges:
        lines += [f"# HELP {metric} {help_text}", f"# TYPE {metric} gauge", f"{metric} {value}"]
    return "\n".join(lines) + "\n"


class MetricsServer:
    """``GET /metrics`` (Prometheus text) and ``GET /healthz`` for ``fawn run`` on a plain HTTP thread.

    ``streams`` returns the live per-stream stats; ``health`` returns (healthy,
    per-stream states): ``/healthz`` answers 200 when healthy, else 503;
    ``errors`` (optional) why streams fail or retry, added to ``/healthz`` (redacted).
    """

    def __init__(
        self,
        streams: Callable[[], Mapping[str, RunStats]],
        health: Callable[[], tuple[bool, Mapping[str, str]]],
        host: str = "127.0.0.1",
        port: int = 9108,
        errors: Callable[[], Mapping[str, str]] | None = None,
    ) -> None:
        import http.server

        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the http.server API
                status, kind, body = owner.respond(self.path.split("?", 1)[0])
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the http.server API
                log.debug("metrics: " + format, *args)

        self._streams, self._health, self._errors = streams, health, errors
        try:
            self._httpd = http.server.ThreadingHTTPServer((host, port), Handler)
        except OSError as exc:
            raise ConfigError(f"--metrics-port: cannot listen on {host}:{port}: {exc.strerror or exc}") from None
        self.port = int(self._httpd.server_address[1])
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="fawn-metrics", daemon=True)
        self._thread.start()
        log.info("metrics on http://%s:%d/metrics", host, self.port)

    def respond(self, path: str) -> tuple[int, str, bytes]:
        if path == "/metrics":
            return 200, "text/plain; version=0.0.4; charset=utf-8", prometheus_text(self._streams()).encode()
        if path == "/healthz":
            ok, states = self._health()
            body: dict[str, object] = {"ok": ok, "streams": dict(states)}
            if self._errors is not None:
                body["errors"] = {name: redact_text(why) for name, why in self._errors().items()}
            return (200 if ok else 503), "application/json", json.dumps(body).encode()
        return 404, "application/json", b'{"error": "not found (try /metrics or /healthz)"}'

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5.0)
