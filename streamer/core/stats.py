"""Run statistics: per-stage timings, counters, a live line and the ``--stats-json`` payload."""

from __future__ import annotations

import time
from collections import defaultdict, deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

STAGES = ("decode_wait", "detect", "track", "identity", "anonymize", "encode_wait")


@dataclass
class StageTimer:
    """Total and recent (last 60 calls) wall time of one stage, in seconds."""

    total: float = 0.0
    calls: int = 0
    recent: deque[float] = field(default_factory=lambda: deque(maxlen=60))

    def add(self, seconds: float) -> None:
        self.total += seconds
        self.calls += 1
        self.recent.append(seconds)

    def mean_ms(self) -> float:
        return 1000.0 * self.total / self.calls if self.calls else 0.0

    def recent_ms(self) -> float:
        return 1000.0 * sum(self.recent) / len(self.recent) if self.recent else 0.0


class RunStats:
    """Counters for one stream. Stage means are per call; ``per_frame_ms`` divides by frames."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.stages: dict[str, StageTimer] = defaultdict(StageTimer)
        self.frames_in = 0
        self.frames_out = 0
        self.dropped = 0
        self.faces_anonymized = 0
        self.faces_visible = 0
        self.detector_errors = 0
        self.frame_errors = 0  # a stage raised: the frame was blurred whole
        self.track_ids: set[int] = set()
        self.active_tracks = 0
        self.identity_calls: dict[int, int] = defaultdict(int)
        self.identity_decisions: dict[str, int] = defaultdict(int)  # registered / unknown / revoked
        self.frames_held = 0  # live source stalled: the last anonymized frame repeated
        self.frames_blank = 0  # live source stalled past io.hold_for: black frames
        self.reconnects = 0
        self.latency = StageTimer()
        self._out_times: deque[float] = deque(maxlen=120)

    @contextmanager
    def timed(self, stage: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.stages[stage].add(time.perf_counter() - start)

    def frame_done(self, t_decoded: float) -> None:
        now = time.monotonic()
        self.frames_out += 1
        self._out_times.append(now)
        if t_decoded:
            self.latency.add(now - t_decoded)

    def elapsed(self) -> float:
        return max(time.monotonic() - self.started, 1e-9)

    def fps(self) -> float:
        return self.frames_out / self.elapsed()

    def recent_fps(self) -> float:
        if len(self._out_times) < 2:
            return 0.0
        return (len(self._out_times) - 1) / max(self._out_times[-1] - self._out_times[0], 1e-9)

    def line(self) -> str:
        """The live stats line for streams."""
        stages = " ".join(f"{name}={self.stages[name].recent_ms():.1f}" for name in STAGES if name in self.stages)
        return (
            f"fps in={self.frames_in / self.elapsed():.1f} out={self.recent_fps():.1f} "
            f"dropped={self.dropped} held={self.frames_held + self.frames_blank} "
            f"faces={self.faces_anonymized} tracks={self.active_tracks} "
            f"latency={self.latency.recent_ms():.0f}ms | ms {stages}"
        )

    def to_json(self) -> dict[str, Any]:
        frames = max(self.frames_out, 1)
        return {
            "frames": self.frames_out,
            "frames_in": self.frames_in,
            "dropped": self.dropped,
            "seconds": round(self.elapsed(), 3),
            "fps": round(self.fps(), 2),
            "stage_ms": {name: round(t.mean_ms(), 3) for name, t in self.stages.items()},
            "per_frame_ms": {name: round(1000 * t.total / frames, 3) for name, t in self.stages.items()},
            "latency_ms": round(self.latency.mean_ms(), 2),
            "tracks": len(self.track_ids),
            "faces_anonymized": self.faces_anonymized,
            "faces_visible": self.faces_visible,
            "detector_errors": self.detector_errors,
            "frame_errors": self.frame_errors,
            "frames_held": self.frames_held,
            "frames_blank": self.frames_blank,
            "reconnects": self.reconnects,
            "identity_calls": sum(self.identity_calls.values()),
            "identity_decisions": dict(sorted(self.identity_decisions.items())),
            "identity_calls_per_track": {str(k): v for k, v in sorted(self.identity_calls.items())},
        }
