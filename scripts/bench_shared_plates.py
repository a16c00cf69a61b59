"""Memory and start-up of N streams with plates: one shared plate model vs one per stream.

    python scripts/bench_shared_plates.py MODEL.onnx [--streams 4] [--repeat 3]

Each mode runs in a fresh process: build the shared models and ``--streams`` frame
processors as a multi-stream run does, run one 1080p frame through each (the first
run allocates the session's buffers), and report the resident memory added (VmRSS
after minus before, MiB), the peak (VmHWM) and the seconds to build. "per-stream"
is what fawn did before the plate model was shared: each processor loaded its own.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time


def _mib(field: str) -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise KeyError(field)


def child(model: str, streams: int, shared_plates: bool) -> dict[str, float]:
    from streamer.core.config import load_config
    from streamer.core.types import Frame
    from streamer.runtime.processor import SharedModels, build_processor
    from streamer.tools import plate_scenes

    frame = plate_scenes.plate_frames((1920, 1080), 1, styles=("mercosur",))[0][0]
    cfg = load_config(None, {"plates.model": model})
    before = _mib("VmRSS")
    start = time.perf_counter()
    shared = SharedModels(cfg, streams)
    if not shared_plates:  # the old way: every processor loads its own plate model
        assert shared.plates is not None
        shared.plates.close()  # type: ignore[attr-defined]
        shared.plates = None
    procs = [build_processor(cfg, shared=shared) for _ in range(streams)]
    built = time.perf_counter() - start
    for proc in procs:
        proc.process(Frame(frame.copy(), 0))
    out = {"build_s": round(built, 2), "rss_added_mib": round(_mib("VmRSS") - before, 1), "peak_mib": round(_mib("VmHWM"), 1)}
    for proc in procs:
        proc.close()
    shared.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model")
    parser.add_argument("--streams", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--child", choices=["shared", "per-stream"])
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.model, args.streams, args.child == "shared")))
        return
    print("| plate model | streams | build s | RSS added MiB | peak RSS MiB |\n|---|---:|---:|---:|---:|")
    for mode in ("per-stream", "shared") * args.repeat:
        cmd = [sys.executable, __file__, args.model, "--streams", str(args.streams), "--child", mode]
        r = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.splitlines()[-1])
        print(f"| {mode} | {args.streams} | {r['build_s']} | {r['rss_added_mib']} | {r['peak_mib']} |", flush=True)


if __name__ == "__main__":
    main()
