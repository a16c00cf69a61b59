"""``fawn bench`` on a ~1 s clip with deface skipped: it runs end to end and reports sane numbers.

No timing asserts: only that every run happened on every frame and that the
recall column means something (a plain transcode hides nothing, fawn hides faces).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from streamer import bench
from streamer.bench import BenchError, BenchOptions, Result, run_bench


def test_segments_cover_the_hard_cases() -> None:
    segments = bench.bench_segments(640, 480, seconds=4.0)
    assert len(segments) == 4
    small = [a.size for a in segments[1].actors]
    assert min(small) >= 22 and max(small) <= 48
    assert segments[2].motion_blur > 1
    assert segments[3].brightness < 0.5
    assert len({(s.width, s.height, s.fps) for s in segments}) == 1


def test_clip_truths_match_frames(tmp_path: Path) -> None:
    clip = bench.make_clip(tmp_path, seconds=0.4)
    assert clip.truths is not None and len(clip.truths) == clip.frames
    assert bench.count_frames(clip.path) == clip.frames
    assert all(t.shape[1] == 4 for t in clip.truths)


def test_misaligned_output_is_an_error(tmp_path: Path) -> None:
    clip = bench.make_clip(tmp_path, seconds=0.4)
    longer = dataclasses.replace(clip, frames=clip.frames + 1)
    with pytest.raises(BenchError, match="cannot align"):
        bench.measure_recall(longer, clip.path, Result("x", 0, 1.0))


def test_missing_deface_is_a_clear_error() -> None:
    with pytest.raises(BenchError, match="not found"):
        bench.find_deface("/nonexistent/deface")


def test_table_ratios() -> None:
    results = [
        Result("transcode only (decode+encode)", 100, 1.0),
        Result("fawn blur, every_n=1", 100, 2.0, 0.99, 1.0, per_frame_ms={"detect": 12.0, "anonymize": 1.0},
               cpu_seconds=1.5),
        Result("deface (defaults, CPU)", 100, 4.0, 0.9, 0.95),
    ]
    table = bench.format_table(results)
    fawn_row = next(line for line in table.splitlines() if line.startswith("| fawn"))
    assert "| 50.0 | 2.00× | 50 % | 99.0 % | 100.0 % | 15.0 | det 12.0 · anon 1.0 | n/a |" in fawn_row


def test_bench_short_clip_without_deface(tmp_path: Path) -> None:
    json_path, plot_path = tmp_path / "bench.json", tmp_path / "bench.png"
    opts = BenchOptions(seconds=1.0, every_n=1, deface=None, json_path=str(json_path), plot_path=str(plot_path))
    report = run_bench(opts)
    assert "| transcode only (decode+encode) |" in report and "| fawn blur, every_n=1 |" in report
    assert plot_path.stat().st_size > 0
    results = {r["name"]: r for r in json.loads(json_path.read_text())["results"]}
    assert set(results) == {"transcode only (decode+encode)", "transcode + BGR round trip", "fawn blur, every_n=1"}
    frames = {r["frames"] for r in results.values()}
    assert len(frames) == 1 and frames.pop() >= 28
    assert results["transcode only (decode+encode)"]["recall_all"] == 0.0  # compression alone hides nothing
    fawn = results["fawn blur, every_n=1"]
    # fawn hides the faces it is built for; the 22-30 px ones are the known gap (docs/benchmarks.md)
    assert fawn["faces_all"] > fawn["faces_large"] > 0
    assert fawn["recall_large"] >= 0.95 and fawn["recall_all"] > 0.5
    assert fawn["per_frame_ms"]["detect"] > 0 and fawn["cpu_ms_per_frame"] > 0
