"""The multi-stream benchmark on a tiny setting: it measures real live streams and reports them."""

from __future__ import annotations

from pathlib import Path

from streamer.tools.bench_streams import (
    StreamsPoint,
    drop_share,
    measure,
    points_table,
    sustained_table,
    write_outputs,
)


def test_measure_two_small_live_streams(tmp_path: Path) -> None:
    point = measure(160, 120, 10.0, 2, {"detector.every_n": 2}, "tiny", warmup=1.5, seconds=1.5)
    assert point.streams == 2 and point.fps == 10.0
    assert 0 < point.delivered_fps <= 12 and point.latency_ms > 0
    assert 0.0 <= point.dropped < 1.0  # frames were delivered, so not every frame was dropped
    write_outputs([point], str(tmp_path / "p.json"), str(tmp_path / "p.png"))
    assert (tmp_path / "p.json").stat().st_size > 0 and (tmp_path / "p.png").stat().st_size > 1000


def test_drop_share_is_the_dropped_fraction_of_the_window() -> None:
    assert drop_share(9, 1) == 0.1
    assert drop_share(0, 5) == 1.0
    assert drop_share(10, 0) == 0.0
    assert drop_share(0, 0) == 0.0  # an empty window: no division by zero


def test_tables_mark_the_sweep_limit() -> None:
    def point(n: int, fps: float) -> StreamsPoint:
        return StreamsPoint(640, 480, 15, n, "c", fps, 0.0, 30.0, 1.0, 0.0)

    table = sustained_table([point(1, 15.0), point(2, 15.0), point(3, 9.0)])
    assert "| c | 640x480 | 2 |" in table
    assert "| c | 640x480 | ≥ 2 |" in sustained_table([point(1, 15.0), point(2, 15.0)])
    assert points_table([point(3, 9.0)]).splitlines()[-1].endswith("| no |")
