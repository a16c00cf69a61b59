"""Plate recall per style at one frame size, over tile grids and score thresholds (docs/benchmarks.md §8).

    python scripts/bench_plate_recall.py MODEL.onnx [--size 1920x1080] [--frames 3] [--json out.json]

The scenes of ``scripts/bench_plates.py`` (:mod:`streamer.tools.plate_scenes`: 4 real-photo
backdrops x ``--frames`` frames x 4 plates 60-200 px wide, per style). Each tile grid
runs the detector once per frame at the lowest threshold; higher thresholds are the
same detections filtered by score (greedy NMS keeps a box only for higher-scored
ones, so this equals running at that threshold). ``2x1+whole`` is the 2x1 grid and
the whole frame together (``plates.whole_frame``), merged by NMS. Reported per row: recall from the detector
alone and after the plate tracker (what fawn hides), false detections per frame
(boxes covering < 30 % of any plate), and the detector's ms per frame (median).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from streamer.core.config import PlatesConfig, TrackerConfig
from streamer.core.types import FaceDetections
from streamer.stages.plates import YoloDetector
from streamer.stages.track import SortTracker
from streamer.tools import plate_scenes

BACKDROPS = ("rocket", "motorcycle_left", "astronaut", "coffee")
GRIDS: dict[str, tuple[tuple[int, int], bool]] = {  # tiles, whole_frame
    "1x1": ((1, 1), False), "2x1": ((2, 1), False), "2x2": ((2, 2), False), "3x2": ((3, 2), False),
    "2x1+whole": ((2, 1), True), "2x2+whole": ((2, 2), True),
}
THRESHOLDS = (0.25, 0.1, 0.05, 0.02)


def detections(model: str, grid: tuple[tuple[int, int], bool], scenes: list[list[tuple[np.ndarray, np.ndarray]]],
               low: float) -> tuple[list[list[FaceDetections]], float]:
    detector = YoloDetector(model, threshold=low, tiles=grid[0], whole_frame=grid[1])
    out, ms = [], []
    for scene in scenes:
        found = []
        for image, _gt in scene:
            start = time.perf_counter()
            found.append(detector.detect(image))
            ms.append((time.perf_counter() - start) * 1000)
        out.append(found)
    return out, float(np.median(ms))


def score(scenes: list[list[tuple[np.ndarray, np.ndarray]]], found: list[list[FaceDetections]],
          threshold: float) -> dict[str, float]:
    cfg, t = PlatesConfig(), TrackerConfig()
    hit_det: list[bool] = []
    hit_track: list[bool] = []
    false: list[int] = []
    for scene, dets in zip(scenes, found):
        tracker = SortTracker(t.max_coast, t.iou_threshold, t.max_center_jump, t.box_grow_per_frame)
        for index, ((_image, gt), d) in enumerate(zip(scene, dets)):
            d = d[d.score >= threshold]
            tracked = tracker.update(d, index)
            hit_det += list(plate_scenes.coverage(gt, d.xyxy, cfg.padding) >= plate_scenes.COVERED)
            hit_track += list(plate_scenes.coverage(gt, tracked.xyxy, cfg.padding) >= plate_scenes.COVERED)
            false.append(int((plate_scenes.coverage(d.xyxy, gt) < 0.3).sum()))
    return {"plates": len(hit_det), "recall_detector": float(np.mean(hit_det)),
            "recall_tracked": float(np.mean(hit_track)), "false_per_frame": float(np.mean(false))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model")
    parser.add_argument("--size", default="1920x1080")
    parser.add_argument("--frames", type=int, default=3)
    parser.add_argument("--grids", default=",".join(GRIDS))
    parser.add_argument("--json")
    args = parser.parse_args()
    w, h = (int(v) for v in args.size.split("x"))
    scenes = {style: [plate_scenes.plate_frames((w, h), args.frames, styles=(style,), backdrop=b, plates=4, seed=i)
                      for i, b in enumerate(BACKDROPS)] for style in plate_scenes.STYLES}
    rows = []
    print("| tiles | threshold | " + " | ".join(f"{s} det / tracked" for s in scenes) + " | false/frame | ms/frame |")
    print("|---|---:|" + "---:|" * (len(scenes) + 2))
    for name in args.grids.split(","):
        found = {s: detections(args.model, GRIDS[name], sc, min(THRESHOLDS)) for s, sc in scenes.items()}
        ms = float(np.median([f[1] for f in found.values()]))
        for threshold in THRESHOLDS:
            per = {s: score(scenes[s], found[s][0], threshold) for s in scenes}
            false = float(np.mean([p["false_per_frame"] for p in per.values()]))
            rows.append({"tiles": name, "threshold": threshold, "ms_per_frame": ms, "false_per_frame": false, "styles": per})
            cells = " | ".join(f"{p['recall_detector']:.2f} / {p['recall_tracked']:.2f}" for p in per.values())
            print(f"| {name} | {threshold} | {cells} | {false:.2f} | {ms:.0f} |", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
