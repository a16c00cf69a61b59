#!/usr/bin/env python3
"""Choose the default detector engine/precision by measurement (issue 13).

Runs each candidate detector on every frame of the stress segments
(:mod:`streamer.tools.stress`) at each size and counts, per segment, the ground-truth
face-frames it finds (:func:`found`)
and the face-frames fp32 onnxruntime finds that the candidate does not ("lost").
The same counts are made after the tracker (``SortTracker`` with the default
``max_coast``: a face the detector blinks on stays covered), which is what a
``fawn run`` anonymizes. A candidate may become the default only with 0 lost
after tracking everywhere.

Usage: scripts/compare_detector_precision.py [--frames 20] [--sizes 640x480,1280x720,1920x1080] [--json P]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from streamer.core.config import DetectorConfig
from streamer.stages.detect import create_detector
from streamer.stages.track import SortTracker
from streamer.tools.bench_stress import iter_sizes
from streamer.tools.stress import render, segment_specs

CANDIDATES = {
    "fp32 onnxruntime": {"engine": "onnxruntime", "precision": "fp32"},
    "int8 onnxruntime": {"engine": "onnxruntime", "precision": "int8"},
    "fp32 openvino": {"engine": "openvino", "precision": "fp32"},
    "int8 openvino": {"engine": "openvino", "precision": "int8"},
}


def found(gt: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Per face: a detection centred in the middle half of its box, or covering half of it (a face cut
    by the frame edge is detected as a box running past the edge: its centre is not the visible part's)."""
    if len(boxes) == 0 or len(gt) == 0:
        return np.zeros(len(gt), bool)
    tl = np.maximum(gt[:, None, :2], boxes[None, :, :2])
    br = np.minimum(gt[:, None, 2:], boxes[None, :, 2:])
    inter = np.prod(np.clip(br - tl, 0, None), axis=2)
    covered = (inter >= 0.5 * np.prod(gt[:, 2:] - gt[:, :2], axis=1)[:, None]).any(axis=1)
    cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
    w, h = gt[:, 2] - gt[:, 0], gt[:, 3] - gt[:, 1]
    ok_x = np.abs(cx[None] - (gt[:, 0] + w / 2)[:, None]) <= w[:, None] / 4
    ok_y = np.abs(cy[None] - (gt[:, 1] + h / 2)[:, None]) <= h[:, None] / 4
    return (ok_x & ok_y).any(axis=1) | covered


def _tracked(frames: list[tuple[np.ndarray, np.ndarray]], dets: list) -> list[np.ndarray]:  # type: ignore[type-arg]
    tracker = SortTracker()
    return [found(gt, tracker.update(d, i).xyxy) for i, ((_, gt), d) in enumerate(zip(frames, dets))]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--frames", type=int, default=20)
    p.add_argument("--sizes", default="640x480,1280x720,1920x1080")
    p.add_argument("--json")
    p.add_argument("--candidates", default=",".join(CANDIDATES), help="comma-separated names (fp32 onnxruntime first)")
    args = p.parse_args(argv)
    base = DetectorConfig()
    names = args.candidates.split(",")
    detectors = {name: create_detector(replace(base, **CANDIDATES[name])) for name in names}  # type: ignore[arg-type]
    rows = []
    for width, height in iter_sizes(args.sizes):
        for spec in segment_specs(width, height, args.frames):
            frames = list(render(spec))
            dets = {name: [d.detect(f) for f, _ in frames] for name, d in detectors.items()}
            hits = {name: [found(gt, r.xyxy) for (_, gt), r in zip(frames, rs)] for name, rs in dets.items()}
            tracked = {name: _tracked(frames, rs) for name, rs in dets.items()}
            ms = {}
            for name, d in detectors.items():
                start = time.perf_counter()
                for f, _ in frames[:5]:
                    d.detect(f)
                ms[name] = round(1000 * (time.perf_counter() - start) / 5, 1)
            ref, ref_t = hits["fp32 onnxruntime"], tracked["fp32 onnxruntime"]
            for name in detectors:
                lost = sum(int((r & ~h).sum()) for r, h in zip(ref, hits[name]))
                lost_t = sum(int((r & ~h).sum()) for r, h in zip(ref_t, tracked[name]))
                row = {"size": f"{width}x{height}", "segment": spec.name, "detector": name,
                       "faces": sum(len(gt) for _, gt in frames), "found": sum(int(h.sum()) for h in hits[name]),
                       "lost_vs_fp32": lost, "found_tracked": sum(int(h.sum()) for h in tracked[name]),
                       "lost_vs_fp32_tracked": lost_t, "ms_per_frame": ms[name]}
                rows.append(row)
                print(json.dumps(row), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    bad = {r["detector"] for r in rows if r["lost_vs_fp32_tracked"] > 0}
    print("candidates losing a face-frame against fp32 after tracking:", ", ".join(sorted(bad)) or "none")
    return 0


if __name__ == "__main__":
    sys.exit(main())
