"""Recall and speed of a plate model on plates rendered into real photos (docs/benchmarks.md, plates).

    python scripts/bench_plates.py MODEL.onnx [--frames 6] [--json out.json]

For each frame size (1080p with a 2x1 tile grid and whole-frame, 720p whole-frame)
and plate style, plates 60-200 px wide move over real photos
(:mod:`streamer.tools.plate_scenes`). Reported: the share of plates whose whole box is
inside one detection padded as the anonymizer pads it (``plates.padding``), per
frame from the detector alone, and after the plate tracker (what fawn hides:
coasting tracks included); false detections per frame; detector ms per frame.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from streamer.core.config import PlatesConfig, TrackerConfig
from streamer.stages.plates import YoloDetector
from streamer.stages.track import SortTracker
from streamer.tools import plate_scenes

BACKDROPS = ("rocket", "motorcycle_left", "astronaut", "coffee")
SETUPS = (((1920, 1080), (2, 1)), ((1920, 1080), (1, 1)), ((1280, 720), (1, 1)))


def measure(model: str, size: tuple[int, int], tiles: tuple[int, int], style: str, frames: int,
            threshold: float) -> dict[str, float]:
    cfg, t = PlatesConfig(model=model, threshold=threshold, tiles=tiles), TrackerConfig()
    detector = YoloDetector(model, threshold=cfg.threshold, tiles=cfg.tiles)
    hit_det: list[bool] = []
    hit_track: list[bool] = []
    false, ms = [], []
    for i, backdrop in enumerate(BACKDROPS):
        tracker = SortTracker(t.max_coast, t.iou_threshold, t.max_center_jump, t.box_grow_per_frame)
        scene = plate_scenes.plate_frames(size, frames, styles=(style,), backdrop=backdrop, plates=4, seed=i)
        for index, (image, gt) in enumerate(scene):
            start = time.perf_counter()
            found = detector.detect(image)
            ms.append((time.perf_counter() - start) * 1000)
            tracked = tracker.update(found, index)
            hit_det += list(plate_scenes.coverage(gt, found.xyxy, cfg.padding) >= plate_scenes.COVERED)
            hit_track += list(plate_scenes.coverage(gt, tracked.xyxy, cfg.padding) >= plate_scenes.COVERED)
            false.append(int((plate_scenes.coverage(found.xyxy, gt) < 0.3).sum()))
    return {"plates": len(hit_det), "recall_detector": float(np.mean(hit_det)),
            "recall_tracked": float(np.mean(hit_track)), "false_per_frame": float(np.mean(false)),
            "ms_per_frame": float(np.median(ms))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model")
    parser.add_argument("--frames", type=int, default=6)
    parser.add_argument("--threshold", type=float, default=PlatesConfig().threshold)
    parser.add_argument("--json")
    args = parser.parse_args()
    rows = []
    print("| frame | tiles | style | plates | recall (detector) | recall (tracked) | false/frame | ms/frame |")
    print("|---|---|---|---|---|---|---|---|")
    for size, tiles in SETUPS:
        for style in plate_scenes.STYLES:
            r = measure(args.model, size, tiles, style, args.frames, args.threshold)
            rows.append({"size": f"{size[0]}x{size[1]}", "tiles": f"{tiles[0]}x{tiles[1]}", "style": style, **r})
            print(f"| {size[0]}x{size[1]} | {tiles[0]}x{tiles[1]} | {style} | {r['plates']} | {r['recall_detector']:.2f} "
                  f"| {r['recall_tracked']:.2f} | {r['false_per_frame']:.2f} | {r['ms_per_frame']:.0f} |", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
