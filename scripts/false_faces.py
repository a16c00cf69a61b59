#!/usr/bin/env python3
"""What the detector's recall settings cost: boxes on real photos without a human face (issue 13).

Every box the detector returns on :func:`streamer.tools.stress.face_free_photos`
(scikit-image's cat, coins, coffee, text, galaxy field, cells... at 640, 1280 and
1920 px wide) is a false face: a patch of the picture fawn would blur. Counted for
the settings the stress bench compared: black or mirrored edge padding, the edge
threshold, the recheck of low-scoring detections, and a plain lower threshold.

Usage: PYTHONPATH=. .venv/bin/python scripts/false_faces.py [--json P]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from streamer.core.config import load_config
from streamer.stages.detect import create_detector
from streamer.tools.stress import face_free_photos

SETTINGS: dict[str, dict[str, Any]] = {
    "black padding, edge threshold 0.1 (before)": {"detector.pad_mode": "constant", "detector.edge_threshold": 0.1,
                                                   "detector.recheck_threshold": 0},
    "mirrored padding, edge threshold 0.1": {"detector.edge_threshold": 0.1, "detector.recheck_threshold": 0},
    "mirrored padding": {"detector.recheck_threshold": 0},
    "mirrored padding + recheck 0.07 (default)": {},
    "mirrored padding + recheck 0.05": {"detector.recheck_threshold": 0.05},
    "mirrored padding, threshold 0.1": {"detector.threshold": 0.1, "detector.recheck_threshold": 0},
}


def count(overrides: dict[str, Any], photos: list[tuple[str, Any]]) -> tuple[int, list[str]]:
    detector = create_detector(load_config("default", {"detector.threads": 1, **overrides}).detector)
    total, where = 0, []
    for name, image in photos:
        found = detector.detect(image)
        total += len(found)
        if len(found):
            where.append(f"{name}:{len(found)}")
    return total, where


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", help="write the counts here")
    args = parser.parse_args()
    photos = face_free_photos()
    rows = {}
    print(f"| setting | false faces on {len(photos)} face-free photos |")
    print("|---|---:|")
    for label, overrides in SETTINGS.items():
        total, where = count(overrides, photos)
        rows[label] = {"boxes": total, "where": where}
        print(f"| {label} | {total} |")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
