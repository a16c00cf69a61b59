#!/usr/bin/env python3
"""``fawn batch`` on Ray: files per minute and fps for 1 vs 2 workers, and the per-file overhead of Ray.

N clips are made from real face photos (``streamer.io.demo``). The same clips are anonymized:

- ``fawn run`` (all cores): ``streamer.runtime.pipeline.run`` per file, in-process, the default config
  (the detector uses every core);
- ``fawn run`` (1 thread): the same with ``detector.threads: 1`` -- the per-file work of one
  Ray worker, so the difference to ``ray, 1 worker`` is what Ray adds;
- ``ray, K workers``: :func:`streamer.runtime.cluster.job.run_job` on a local Ray instance, one CPU per
  worker, into a fresh output folder (nothing skipped).

"job" time covers listing, planning, starting the actors (each loads its models once), the
manifest and the files: what the scaling ratio and the overhead use. "startup" (``ray.init``
and Ray's first worker processes) is paid once per job and reported on its own.

Usage::

    python scripts/bench_ray.py [--clips 8] [--seconds 3] [--size 640x480] [--workers 1 2] \\
        [--json out/bench-ray.json] [--plot docs/bench-ray.png]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path
from typing import Any

from streamer.core.config import PipelineConfig, load_config
from streamer.io import demo
from streamer.runtime.cluster.job import BatchOptions, import_ray, run_job
from streamer.runtime.pipeline import RunOptions, run

log = logging.getLogger("bench_ray")


@dataclass(frozen=True)
class Result:
    name: str
    files: int
    frames: int
    seconds: float  # the files (for ray: the job loop, after startup)
    startup: float = 0.0  # ray.init + actors ready (ray only)

    @property
    def files_per_minute(self) -> float:
        return 60.0 * self.files / self.seconds

    @property
    def fps(self) -> float:
        return self.frames / self.seconds

    def to_json(self) -> dict[str, float | int | str]:
        return {**asdict(self), "files_per_minute": round(self.files_per_minute, 2), "fps": round(self.fps, 2)}


def make_clips(folder: Path, count: int, seconds: float, width: int, height: int) -> list[Path]:
    first = folder / "cam0" / "clip00.mp4"
    first.parent.mkdir(parents=True)
    demo.write_clip(demo.demo_spec(width=width, height=height, seconds=seconds), first)
    clips = [first]
    for i in range(1, count):
        clip = folder / f"cam{i % 2}" / f"clip{i:02d}.mp4"
        clip.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(first, clip)
        clips.append(clip)
    return clips


def bench_sequential(name: str, clips: list[Path], out: Path, cfg: PipelineConfig) -> Result:
    frames = 0
    start = time.perf_counter()
    for clip in clips:
        stats = run(str(clip), str(out / clip.name), cfg, RunOptions(progress=False))
        frames += stats.frames_out
    return Result(name, len(clips), frames, time.perf_counter() - start)


def bench_ray(workers: int, src: Path, out: Path, cfg: PipelineConfig) -> Result:
    ray = import_ray()
    start = time.perf_counter()
    ray.init(address="local", num_cpus=workers, include_dashboard=False, logging_level=logging.WARNING,
             log_to_driver=False)
    try:
        _warm_actors(ray, workers)
        startup = time.perf_counter() - start
        options = BatchOptions(str(src), str(out), cfg, workers=workers, cpus_per_worker=1, progress=False)
        report = run_job(options)
    finally:
        ray.shutdown()
    if report.failed:
        raise RuntimeError(f"ray run failed: {report.failed}")
    return Result(f"ray, {workers} worker{'s' if workers > 1 else ''}", len(report.done), report.frames,
                  report.seconds, startup)


def _warm_actors(ray: Any, workers: int) -> None:
    """Start Ray's worker processes once, so the timed job does not pay the first process start."""

    def ping() -> int:
        return os.getpid()

    remote = ray.remote(num_cpus=1)(ping)
    ray.get([remote.remote() for _ in range(workers)])


def markdown(results: list[Result], clips: int, seconds: float, size: str) -> str:
    seq1 = next(r for r in results if r.name == "fawn run (1 thread)")
    ray1 = next((r for r in results if r.name == "ray, 1 worker"), None)
    ray2 = next((r for r in results if r.name == "ray, 2 workers"), None)
    lines = [
        f"{date.today().isoformat()}, {platform.machine()}, {os.cpu_count()} CPUs, "
        f"{clips} clips x {seconds:g} s at {size} (real faces, streamer.io.demo)",
        "",
        "| run | files/min | fps | job s | startup s |",
        "|---|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {r.name} | {r.files_per_minute:.1f} | {r.fps:.1f} | {r.seconds:.2f} | {r.startup:.2f} |" for r in results
    ]
    if ray1 is not None and ray2 is not None:
        lines.append(f"\nscaling 1 -> 2 workers: {ray2.files_per_minute / ray1.files_per_minute:.2f}x")
    if ray1 is not None:
        overhead = (ray1.seconds - seq1.seconds) / ray1.files
        lines.append(f"Ray's per-file overhead vs `fawn run` (1 thread): {1000 * overhead:.0f} ms")
    return "\n".join(lines)


def plot(results: list[Result], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.5))
    names = [r.name for r in results]
    bars = ax.bar(names, [r.files_per_minute for r in results], color=["#999", "#bbb", "#4a7", "#2a5"][: len(results)])
    for bar, r in zip(bars, results):
        ax.annotate(f"{r.fps:.1f} fps", (bar.get_x() + bar.get_width() / 2, bar.get_height()), ha="center", va="bottom")
    ax.set_ylabel("files / minute")
    ax.margins(y=0.15)
    ax.set_title("fawn batch on Ray vs fawn run, same clips")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--size", default="640x480")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--plot", type=Path, help="write a bar chart PNG here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    width, height = (int(v) for v in args.size.lower().split("x"))
    with tempfile.TemporaryDirectory(prefix="fawn-bench-ray-") as tmp:
        root = Path(tmp)
        clips = make_clips(root / "in", args.clips, args.seconds, width, height)
        results = [
            bench_sequential("fawn run (all cores)", clips, _fresh(root / "seq-all"), load_config()),
            bench_sequential("fawn run (1 thread)", clips, _fresh(root / "seq-1"), load_config(None, {"detector.threads": 1})),
        ]
        results += [bench_ray(k, root / "in", _fresh(root / f"ray-{k}"), load_config()) for k in args.workers]
    report = markdown(results, args.clips, args.seconds, args.size)
    print(report)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        payload = {"clips": args.clips, "seconds": args.seconds, "size": args.size, "cpus": os.cpu_count(),
                   "results": [r.to_json() for r in results], "markdown": report}
        args.json.write_text(json.dumps(payload, indent=2))
    if args.plot:
        plot(results, args.plot)


def _fresh(path: Path) -> Path:
    path.mkdir(parents=True)
    return path


if __name__ == "__main__":
    main()
