"""``fawn run``: one file, stream, camera or folder (the batch job in-process), or the streams a config lists."""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from streamer.cli.diffusion import DIFFUSION_RUN_OPTIONS, add_diffusion_run_args
from streamer.cli.enroll import IDENTITY_RUN_OPTIONS, add_identity_run_args
from streamer.cli.signals import stop_on_signals
from streamer.core.config import ANNOTATION_FORMATS, METHODS, MODES, PipelineConfig, load_config
from streamer.core.errors import ConfigError
from streamer.io.imageseq import folder_kind

log = logging.getLogger("fawn")


def add_run_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("run", help="anonymize a video file, RTSP stream, webcam or the demo clip")
    p.add_argument("source", nargs="?",
                   help="video path, a folder of images (one sequence), a folder of videos (batch), rtsp://..., cam:N, or 'demo' "
                   "(omit it when the config lists several streams)")
    p.add_argument("-o", "--output", help="output path, rtsp://..., or 'null' (required with SOURCE)")
    p.add_argument("-c", "--config", help="YAML config path or preset name (default, cctv, dashcam, webrtc)")
    p.add_argument("--method", choices=METHODS, help="anonymization method")
    p.add_argument("--gallery", help="gallery of registered people (fawn enroll)")
    p.add_argument("--mode", choices=MODES, help="exempt: registered stay visible; target: only they are hidden")
    p.add_argument("--every-n", type=int, help="run the detector on every Nth frame (tracker in between)")
    p.add_argument("--plates", metavar="MODEL.onnx",
                   help="also anonymize license plates with this YOLO-format ONNX detector (fawn ships none)")
    p.add_argument("--stats-json", help="write run statistics to this JSON file")
    p.add_argument("--max-frames", type=int, help="stop after this many frames")
    p.add_argument("--no-progress", action="store_true", help="no progress bar / live stats line")
    p.add_argument("--metrics-port", type=int,
                   help="serve Prometheus /metrics and /healthz on 127.0.0.1:PORT while running (0: any free port)")
    _add_output_args(p)
    add_identity_run_args(p)
    add_diffusion_run_args(p)
    p.set_defaults(func=cmd_run)


def _add_output_args(p: argparse.ArgumentParser) -> None:
    """Image-sequence outputs and the annotation record (dashcam datasets)."""
    p.add_argument("--annotations", metavar="PATH",
                   help="write every anonymized region per frame to PATH (no pixels); with a folder of "
                   "videos/sequences each item's record goes next to its output instead")
    p.add_argument("--annotations-format", choices=ANNOTATION_FORMATS, help="jsonl (default) or coco")
    p.add_argument("--jpeg-quality", type=int, help="JPEG/WebP quality of image-sequence outputs (default 95)")
    p.add_argument("--keep-metadata", action="store_true", default=None,
                   help="keep EXIF metadata (GPS, camera) in image-sequence outputs (default: stripped)")


def run_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """Command-line options as dotted config overrides."""
    mapping = {
        "method": "anonymizer.method",
        "gallery": "identity.gallery",
        "mode": "identity.mode",
        "every_n": "detector.every_n",
        "plates": "plates.model",
        "annotations": "annotations.path",
        "annotations_format": "annotations.format",
        "jpeg_quality": "io.jpeg_quality",
        "keep_metadata": "io.keep_metadata",
        **IDENTITY_RUN_OPTIONS,
        **DIFFUSION_RUN_OPTIONS,
    }
    return {key: getattr(args, name) for name, key in mapping.items() if getattr(args, name, None) is not None}


def cmd_run(args: argparse.Namespace) -> int:
    cfg: PipelineConfig = load_config(args.config, run_overrides(args))
    if args.source is None:
        return _run_streams(args, cfg)
    if cfg.streams:
        raise ConfigError("give either SOURCE -o OUTPUT or a config with streams:, not both")
    if args.output is None:
        raise ConfigError("-o/--output is required with SOURCE (a path, rtsp://... or null)")
    if Path(args.source).is_dir() and folder_kind(Path(args.source)) == "videos":
        return _run_batch(args, cfg)
    return _run_one(args, cfg)


def _run_one(args: argparse.Namespace, cfg: PipelineConfig) -> int:
    from streamer.core.stats import RunStats
    from streamer.io.annotations import annotation_record
    from streamer.runtime.pipeline import RunOptions, run

    stats = RunStats()
    with stop_on_signals() as stop, _metrics(args, lambda: {"stream": stats}, lambda: (True, {"stream": "running"})):
        options = RunOptions(stop=stop, progress=not args.no_progress and cfg.io.progress, max_frames=args.max_frames)
        with annotation_record(cfg, options, stats):
            run(args.source, args.output, cfg, options, stats=stats)
    summary = stats.to_json()
    log.info(
        "%d frames in %.1fs (%.1f fps), %d faces anonymized, %d tracks, %d dropped",
        summary["frames"], summary["seconds"], summary["fps"], summary["faces_anonymized"],
        summary["tracks"], summary["dropped"],
    )
    if args.stats_json:
        Path(args.stats_json).write_text(json.dumps(summary, indent=2), encoding="utf-8")
    return 0


def _run_streams(args: argparse.Namespace, cfg: PipelineConfig) -> int:
    """Several streams from the config's ``streams:`` list, one process, shared models."""
    from streamer.runtime.multistream import MultiStreamOptions, MultiStreamRun

    if not cfg.streams:
        raise ConfigError("no SOURCE given and the config lists no streams: (fawn run SOURCE -o OUTPUT)")
    if args.output is not None:
        raise ConfigError("-o/--output goes with SOURCE; with streams: each stream names its output")
    with stop_on_signals() as stop:
        options = MultiStreamOptions(stop=stop, progress=not args.no_progress and cfg.io.progress,
                                     max_frames=args.max_frames)
        multi = MultiStreamRun(cfg, options)
        streams = {r.name: r.stats for r in multi.results}
        with _metrics(args, lambda: streams, multi.health, multi.errors):
            results = multi.run()
    summary = multi.summary()
    for result in results:
        s = result.stats
        log.info("%s: %s, %d frames (%.1f fps), %d faces anonymized, %d dropped, %d held, %d reconnects%s",
                 result.name, result.state, s.frames_out, s.fps(), s.faces_anonymized, s.dropped,
                 s.frames_held + s.frames_blank, s.reconnects, f": {result.error}" if result.error else "")
    if args.stats_json:
        Path(args.stats_json).write_text(json.dumps(summary, indent=2), encoding="utf-8")
    return 1 if summary["total"]["failed"] else 0


@contextmanager
def _metrics(
    args: argparse.Namespace, streams: Callable[[], Any], health: Callable[[], Any], errors: Callable[[], Any] | None = None
) -> Iterator[None]:
    """A /metrics + /healthz server for the run when ``--metrics-port`` is given."""
    if args.metrics_port is None:
        yield
        return
    from streamer.runtime.metrics import MetricsServer

    server = MetricsServer(streams, health, port=args.metrics_port, errors=errors)
    try:
        yield
    finally:
        server.close()


def _run_batch(args: argparse.Namespace, cfg: PipelineConfig) -> int:
    from streamer.runtime.batch import run_batch

    if args.output == "null" or Path(args.output).is_file():
        raise ConfigError(f"a folder source needs an output folder, got '{args.output}'")
    with stop_on_signals() as stop:
        report = run_batch(Path(args.source), Path(args.output), cfg, stop, progress=not args.no_progress)
    log.info("%s", report.table())
    if args.stats_json:
        Path(args.stats_json).write_text(json.dumps(report.to_json(), indent=2), encoding="utf-8")
    return 1 if report.failed else 0
