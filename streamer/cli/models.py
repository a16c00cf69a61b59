"""``fawn models check``: the downloaded diffusion model folders, checked without opening a video."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from streamer.core.errors import ModelError
from streamer.models.diffusion.check import check, format_report


def add_models_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("models", help="check downloaded diffusion model folders (no video opened, nothing downloaded)")
    msub = p.add_subparsers(dest="models_command", required=True, metavar="ACTION")
    c = msub.add_parser("check", help="parts found, configs, sha256 of each weight file, whether they fit together")
    c.add_argument("dirs", nargs="+", type=Path, metavar="DIR",
                   help="the face_anon_simple folder, the Stable Diffusion 2.1 folder, the CLIP folder (any order)")
    c.add_argument("--json", action="store_true", help="print the report as JSON")
    c.set_defaults(func=cmd_models_check)


def cmd_models_check(args: argparse.Namespace) -> int:
    report = check([d.expanduser() for d in args.dirs])
    sys.stdout.write((json.dumps(report.to_json(), indent=2) if args.json else format_report(report)) + "\n")
    if not report.ok:
        raise ModelError(report.problem or "the model parts do not fit together")
    return 0
