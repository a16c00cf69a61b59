"""Prometheus text exposition of run statistics (``GET /metrics`` of ``fawn serve``).

Written by hand (the format is a few lines of text) so the core needs no
client library. One series per stream, labelled ``stream="<name>"``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from streamer.stats import RunStats

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
)


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
    }


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


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
    for metric, help_text, value in gauges:
        lines += [f"# HELP {metric} {help_text}", f"# TYPE {metric} gauge", f"{metric} {value}"]
    return "\n".join(lines) + "\n"
