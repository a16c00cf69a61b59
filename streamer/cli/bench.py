"""``fawn bench``: transcode-only vs fawn vs deface on the same clip, or the stress clips (``--stress``)."""

from __future__ import annotations

import argparse
import sys

from streamer.core.errors import ConfigError


def add_bench_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("bench", help="transcode-only vs fawn vs deface on the same clip")
    p.add_argument("--clip", help="video to benchmark (default: a clip made from real face photos)")
    p.add_argument("--seconds", type=float, default=10.0, help="length of the generated clip")
    p.add_argument("--size", default="640x480", help="size of the generated clip, WIDTHxHEIGHT")
    p.add_argument("--every-n", type=int, default=None, help="detector stride for the fawn run")
    p.add_argument("--no-deface", action="store_true", help="skip the deface peer run")
    p.add_argument("--deface", default=None, help="deface executable (default: .venv-deface/bin/deface)")
    p.add_argument("--json", help="write the results to this JSON file")
    p.add_argument("--plot", help="write a bar chart PNG of the results")
    p.add_argument("--stress", action="store_true",
                   help="stress clips (small, tilted, noisy, edge-cut, blurred, dark faces) at --sizes: "
                   "fawn default and cctv vs deface, whole processes, interleaved")
    p.add_argument("--sizes", default="640x480,1280x720,1920x1080", help="with --stress: clip sizes")
    p.add_argument("--frames", type=int, default=40, help="with --stress: frames per segment")
    p.add_argument("--repeat", type=int, default=1,
                   help="with --stress: rounds per size, fps and start-up are the medians (a shared machine drifts)")
    p.add_argument("--presets", default="default,cctv",
                   help="with --stress: fawn presets, NAME or NAME:detector_key=value+key=value (e.g. default:precision=fp32)")
    p.set_defaults(func=cmd_bench)


def cmd_bench(args: argparse.Namespace) -> int:
    if args.stress:
        if args.repeat < 1:
            raise ConfigError(f"--repeat: must be >= 1, got {args.repeat}")
        from streamer.tools.bench_stress import StressOptions, format_table, iter_sizes, run_stress

        stress = StressOptions(tuple(iter_sizes(args.sizes)), args.frames, None if args.no_deface else (args.deface or ""),
                               presets=tuple(args.presets.split(",")), repeat=args.repeat,
                               json_path=args.json, plot_path=args.plot)
        report = run_stress(stress)
        sys.stdout.write(f"Machine: {report['machine']}\n\n{format_table(report)}")
        return 0
    from streamer.tools.bench import BenchOptions, run_bench_at

    opts = BenchOptions(
        clip=args.clip, seconds=args.seconds, every_n=args.every_n, deface=None if args.no_deface else (args.deface or ""),
        json_path=args.json, plot_path=args.plot,
    )
    try:
        width, height = (int(v) for v in args.size.lower().split("x"))
    except ValueError:
        raise ConfigError(f"--size: expected WIDTHxHEIGHT such as 640x480, got '{args.size}'") from None
    sys.stdout.write(run_bench_at(opts, width, height))
    return 0
