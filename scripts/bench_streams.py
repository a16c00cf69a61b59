#!/usr/bin/env python3
"""How many live streams one machine sustains, at which resolution and frame rate (issue 7).

Usage: scripts/bench_streams.py [--sizes 640x480,1280x720] [--rates 15,30] [--max-streams 6]
       [--seconds 8] [--warmup 3] [--batching] [--json P] [--plot P.png]

Every stream is a ``demo-live`` H.264 camera in one ``fawn`` process (shared
models), blurred and encoded with the live preset. Prints a table of the most
streams sustained (>= 95 % of the frame rate delivered, <= 5 % dropped) and
every measured point. ``--batching`` also compares the detector's cross-stream
batch (max_batch 8) with one frame per engine call (max_batch 1).
"""

from __future__ import annotations

import argparse
import logging
import sys

from streamer.tools.bench import machine
from streamer.tools.bench_streams import (
    load_points,
    points_table,
    recall,
    sustained_table,
    sweep,
    write_outputs,
)

CONFIGS = {
    "every_n=1": {},  # the default preset: the detector on every frame
    "every_n=2": {"detector.every_n": 2},  # as the cctv preset: every 2nd frame, adaptive
    # fewer detector pixels: more streams, at the cost of the smallest faces (docs/benchmarks.md §1)
    "every_n=2+max_side=480": {"detector.every_n": 2, "detector.max_side": 480},
}


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="640x480,1280x720")
    p.add_argument("--rates", default="15,30")
    p.add_argument("--max-streams", type=int, default=6)
    p.add_argument("--seconds", type=float, default=8.0)
    p.add_argument("--warmup", type=float, default=3.0)
    p.add_argument("--configs", default=",".join(CONFIGS), help="which configs (comma-separated names)")
    p.add_argument("--batching", action="store_true", help="also compare max_batch 1 vs 8 at the first size")
    p.add_argument("--json")
    p.add_argument("--plot")
    p.add_argument("--from-json", nargs="+", metavar="P", help="print tables and plot from saved runs, measure nothing")
    p.add_argument("--recall", action="store_true",
                   help="also measure each config's face recall at each size on fawn bench's clip")
    args = p.parse_args(argv)
    if args.from_json:
        points = load_points(args.from_json)
        write_outputs(points, None, args.plot)
        sys.stdout.write(f"{sustained_table(points)}\n\n{points_table(points)}\n")
        return 0
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for name in ("streamer.runtime.pipeline", "streamer.runtime.multistream", "streamer.io.sinks"):
        logging.getLogger(name).setLevel(logging.WARNING)
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",")]
    rates = [float(r) for r in args.rates.split(",")]
    configs = {name: CONFIGS[name] for name in args.configs.split(",")}
    if args.batching:
        configs = {"max_batch=1": {"detector.max_batch": 1},
                   "max_batch=8": {"detector.max_batch": 8}}
    points = sweep(sizes, rates, configs, args.max_streams, args.warmup, args.seconds)  # type: ignore[arg-type]
    write_outputs(points, args.json, args.plot)
    sys.stdout.write(f"Machine: {machine()}\n\n{sustained_table(points)}\n\n{points_table(points)}\n")
    if args.recall:
        sys.stdout.write("\n| config | resolution | recall (all faces) | recall (>= 48 px) |\n|---|---|---:|---:|\n")
        for name, overrides in configs.items():
            for width, height in sizes:
                every, large = recall(width, height, overrides)
                sys.stdout.write(f"| {name} | {width}x{height} | {100 * every:.1f} % | {100 * large:.1f} % |\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
