"""Throughput of 1920x1080 image sequences (dashcam preset): ``fawn run`` and ``fawn batch`` on 1 and 2 Ray workers.

Builds ``--sequences`` folders of ``--frames`` 1080p JPEG frames from real photos (small pedestrians'
faces, camera motion; tests/streamer/dashcam_media.py), then times each run and checks every
face with the oracle (streamer.tools.verify). Run from the repository root:

    RAY_USAGE_STATS_ENABLED=0 PYTHONPATH=. .venv/bin/python scripts/bench_sequences.py --json out/bench-seq.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2

from streamer.tools import verify
from tests.streamer.dashcam_media import Sequence, dashcam_config_with_plates, write_sequence

FAWN = [sys.executable, "-m", "streamer.cli"]


def _recall(out: Path, seqs: dict[str, Sequence]) -> float:
    faces = hidden = 0
    for rel, seq in seqs.items():
        outputs = [cv2.imread(str(out / rel / name)) for name in seq.names]
        report = verify.face_recall(zip(seq.frames, outputs, seq.boxes))
        faces, hidden = faces + report.faces, hidden + report.hidden
    return hidden / faces if faces else 1.0


def _config(tmp: Path, plates: str | None) -> str:
    """The dashcam preset, with the plate model on when one is given (its plate settings as they are)."""
    return "dashcam" if plates is None else str(dashcam_config_with_plates(tmp, plates))


def _timed(cmd: list[str]) -> float:
    start = time.monotonic()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.monotonic() - start


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sequences", type=int, default=4)
    ap.add_argument("--frames", type=int, default=12)
    ap.add_argument("--json")
    ap.add_argument("--plates", metavar="MODEL.onnx", help="also anonymize plates with this model (dashcam plate settings)")
    args = ap.parse_args()
    rows: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory(prefix="fawn-bench-seq-") as tmp:
        root = Path(tmp) / "drives"
        seqs = {f"drive{i}/cam_front": write_sequence(root / f"drive{i}" / "cam_front", n=args.frames)
                for i in range(args.sequences)}
        total = args.sequences * args.frames
        config = _config(Path(tmp), args.plates)
        out = Path(tmp) / "run"
        seconds = sum(_timed([*FAWN, "run", str(root / rel), "-o", str(out / rel), "-c", config, "--no-progress"])
                      for rel in seqs)
        rows.append({"run": "fawn run (2 cores)", "cores": 2, "seconds": seconds, "recall": _recall(out, seqs)})
        for workers in (1, 2):
            out = Path(tmp) / f"ray{workers}"
            summary = Path(tmp) / f"ray{workers}.json"
            wall = _timed([*FAWN, "batch", str(root), "-o", str(out), "-c", config, "--workers", str(workers),
                           "--no-progress", "--summary-json", str(summary)])
            job = json.loads(summary.read_text())
            rows.append({"run": f"fawn batch, {workers} Ray worker(s)", "cores": workers, "seconds": job["seconds"],
                         "wall_seconds": wall, "recall": _recall(out, seqs)})
    for row in rows:
        row["fps"] = total / row["seconds"]
        row["fps_per_core"] = row["fps"] / row["cores"]
        print(f"{row['run']:<28} {row['fps']:6.2f} fps  {row['fps_per_core']:6.2f} fps/core  "
              f"recall {row['recall']:.3f}  ({row['seconds']:.1f} s, {total} frames)")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"frames": total, "load": os.getloadavg(), "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
