"""``fawn batch INPUT -o OUTPUT [-c CONFIG] [--ray ADDRESS]``: a footage collection on a Ray cluster."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

from streamer.cli.signals import stop_on_signals
from streamer.core.config import ANNOTATION_FORMATS, IDENTITY_MODELS, METHODS, MODES, load_config

log = logging.getLogger("fawn")

OVERRIDES = {
    "method": "anonymizer.method",
    "gallery": "identity.gallery",
    "mode": "identity.mode",
    "every_n": "detector.every_n",
    "identity_model": "identity.model",
    "annotations_format": "annotations.format",
    "jpeg_quality": "io.jpeg_quality",
    "keep_metadata": "io.keep_metadata",
}
PER_UNIT = "per-unit"  # annotations.path in a batch: each unit's record sits next to its output


def add_batch_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "batch", help="anonymize every video and every folder of images (one sequence each) under a folder or URI "
        "on a Ray cluster (resumable, with a manifest)",
    )
    p.add_argument("input", metavar="INPUT_URI", help="folder or fsspec URI (s3://bucket/clips, file:///data/clips)")
    p.add_argument("-o", "--output", required=True, metavar="OUTPUT_URI", help="output folder or URI (same relative paths)")
    p.add_argument("-c", "--config", help="YAML config path or preset name (default, cctv, dashcam, webrtc)")
    p.add_argument("--ray", metavar="ADDRESS", help="join this Ray cluster (HOST:PORT, ray://HOST:PORT, auto); default: a local Ray")
    p.add_argument("--workers", type=int, help="number of workers (default: as many as the cluster fits)")
    p.add_argument("--cpus-per-worker", type=float, help="CPUs per worker (default: detector.threads, at least 1)")
    p.add_argument("--gpus-per-worker", type=float, help="GPUs per worker (default: 1 when the config uses cuda/tensorrt)")
    p.add_argument("--max-retries", type=int, default=2, help="retries of a failed file or a dead worker's file (default 2)")
    p.add_argument("--manifest", help="manifest JSONL path or URI (default: OUTPUT/fawn-manifest.jsonl)")
    p.add_argument("--rehash", action="store_true", help="re-hash every finished input (default: trust an unchanged size and mtime)")
    p.add_argument("--worker-env", action="append", default=[], metavar="KEY=VALUE", help="environment variable for the workers")
    p.add_argument("--ship-code", action="store_true", help="ship fawn (code and models) to the workers in Ray's runtime env")
    p.add_argument("--connect-timeout", type=float, default=15.0, help="seconds to reach the --ray address (default 15)")
    p.add_argument("--summary-json", metavar="PATH", help="write the job summary to this JSON file")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--method", choices=METHODS, help="anonymization method")
    p.add_argument("--gallery", help="gallery of registered people (fawn enroll); shipped to the workers")
    p.add_argument("--mode", choices=MODES, help="exempt: registered stay visible; target: only they are hidden")
    p.add_argument("--every-n", type=int, help="run the detector on every Nth frame (tracker in between)")
    p.add_argument("--identity-model", choices=IDENTITY_MODELS, help="identity model the gallery was made with")
    p.add_argument("--annotations", action="store_true", default=None,
                   help="write each item's record of hidden regions next to its output (OUT.annotations.jsonl)")
    p.add_argument("--annotations-format", choices=ANNOTATION_FORMATS, help="jsonl (default) or coco")
    p.add_argument("--jpeg-quality", type=int, help="JPEG/WebP quality of image-sequence outputs (default 95)")
    p.add_argument("--keep-metadata", action="store_true", default=None,
                   help="keep EXIF metadata (GPS, camera) in image-sequence outputs (default: stripped)")
    p.set_defaults(func=cmd_batch)


def cmd_batch(args: argparse.Namespace) -> int:
    from streamer.runtime.cluster.job import BatchOptions, run_job

    overrides = {key: getattr(args, name) for name, key in OVERRIDES.items() if getattr(args, name, None) is not None}
    if args.annotations:
        overrides["annotations.path"] = PER_UNIT
    options = BatchOptions(
        input_uri=args.input, output_uri=args.output, config=load_config(args.config, overrides),
        ray_address=args.ray, workers=args.workers, cpus_per_worker=args.cpus_per_worker,
        gpus_per_worker=args.gpus_per_worker, max_retries=args.max_retries, manifest_uri=args.manifest,
        rehash=args.rehash, progress=not args.no_progress, connect_timeout=args.connect_timeout,
        worker_env=_env(args.worker_env), ship_code=args.ship_code, log_to_driver=bool(getattr(args, "verbose", False)),
    )
    with stop_on_signals() as stop:
        report = run_job(options, stop)
    log.info("%s", report.table())
    if args.summary_json:
        Path(args.summary_json).write_text(json.dumps(report.to_json(), indent=2), encoding="utf-8")
    return 1 if report.failed else 0


def _env(pairs: list[str]) -> dict[str, Any]:
    from streamer.core.errors import ConfigError

    env = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"--worker-env: expected KEY=VALUE, got '{pair}'")
        env[key] = value
    return env
