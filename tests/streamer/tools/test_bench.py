"""``fawn bench`` on a ~1 s clip with deface skipped: it runs end to end and reports sane numbers.

No timing asserts: only that every run happened on every frame and that the
recall column means something (a plain transcode hides nothing, fawn hides faces).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from streamer.io import demo
from streamer.tools import bench
from streamer.tools.bench import BenchError, BenchOptions, Result, run_bench


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


# ---------------------------------------------------------------- issue 13: stress clips


def test_stress_segments_have_the_promised_faces() -> None:
    from streamer.tools.stress import EDGE_INSIDE, SEGMENTS, render, segment_specs

    specs = {s.name: s for s in segment_specs(1280, 720, 4)}
    assert tuple(specs) == SEGMENTS
    small = np.concatenate([gt for _, gt in render(specs["small"])])
    assert 17 <= (small[:, 2] - small[:, 0]).min() and (small[:, 2] - small[:, 0]).max() <= 31
    edges = [gt for _, gt in render(specs["edges"])]
    assert all(len(gt) == 4 for gt in edges)
    first = edges[0]
    assert first[0, 0] == 0 and first[1, 1] == 0 and first[2, 2] == 1280 and first[3, 3] == 720  # one per edge
    actor = specs["edges"].actors[0]
    assert abs((first[0, 2] - first[0, 0]) / actor.size - EDGE_INSIDE[0]) < 0.1  # 25 % inside on the left
    rolled = specs["tilt"].actors
    assert max(abs(a.roll) for a in rolled) == 35.0


def test_whole_face_metric_rejects_a_half_blurred_face() -> None:
    import cv2

    from streamer.tools.verify import face_hidden

    frame, gt = next(iter(demo.render(demo.demo_spec())))
    box = gt[0]
    x1, y1, x2, y2 = (int(v) for v in box)
    blurred = frame.copy()
    blurred[y1:y2, x1:x2] = cv2.GaussianBlur(frame[y1:y2, x1:x2], (0, 0), 8)
    assert face_hidden(frame, blurred, box)
    centre_only = frame.copy()
    # exactly verify's inner 70 % region blurred, the rim of the face left sharp
    cx1, cx2 = x1 + int(0.15 * (x2 - x1)), x2 - int(0.15 * (x2 - x1))
    cy1, cy2 = y1 + int(0.15 * (y2 - y1)), y2 - int(0.15 * (y2 - y1))
    centre_only[cy1:cy2, cx1:cx2] = cv2.GaussianBlur(frame[cy1:cy2, cx1:cx2], (0, 0), 8)
    assert not face_hidden(frame, centre_only, box)  # the bench's oracle checks the whole box


def test_stress_bench_runs_fawn_as_a_process_and_reports_per_segment(tmp_path: Path) -> None:
    from streamer.tools.bench_stress import StressOptions, format_table, run_stress

    report = run_stress(StressOptions(((320, 240),), 3, deface=None, presets=("default", "default:edge_pad=0"),
                                      repeat=2, json_path=str(tmp_path / "s.json")))
    runs = report["runs"]
    assert all(len(r["rounds_s"]) == 2 and min(r["rounds_s"]) <= r["seconds"] <= max(r["rounds_s"]) for r in runs)
    assert [r["tool"].split("/")[-1] for r in runs][0] == "fawn default"
    assert len(runs) == 2 and all(sum(r["faces"].values()) > 20 for r in runs)
    assert set(runs[0]["faces"]) == {"small", "tilt", "noise", "edges", "blur", "dark"}
    assert runs[0]["startup_s"] > 0 and runs[0]["seconds"] > runs[0]["startup_s"] * 0.1
    table = format_table(report)
    assert "| 320x240 | fawn default |" in table and "n/a" in table  # no deface: no ratio
    assert (tmp_path / "s.json").is_file()


def test_stress_sizes_are_checked() -> None:
    from streamer.tools.bench_stress import iter_sizes

    assert list(iter_sizes("640x480,1920x1080")) == [(640, 480), (1920, 1080)]
    with pytest.raises(BenchError, match="WIDTHxHEIGHT"):
        list(iter_sizes("640by480"))
