"""``fawn export``: ONNX files and TensorRT engines for the diffusion model, the detector and the identity network."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from export.build import (
    BACKENDS,
    PRECISIONS,
    Artifact,
    ExportOptions,
    export_diffusion,
    export_existing,
)
from streamer.core.errors import ConfigError

log = logging.getLogger(__name__)


def add_export_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("export", help="export models to ONNX and build TensorRT engines (cached)")
    p.add_argument("--out", required=True, metavar="ENGINE_DIR", help="engine folder (a cache: finished steps are skipped)")
    p.add_argument("--model", metavar="DIR", help="face_anon_simple folder (unet/, referencenet/, conditioning_referencenet/)")
    p.add_argument("--base", metavar="DIR", help="Stable Diffusion 2.1 folder (vae/, scheduler/) if not inside --model")
    p.add_argument("--image-encoder", metavar="DIR", help="CLIP folder (openai/clip-vit-large-patch14) if not --model/image_encoder")
    p.add_argument("--detector", nargs="?", const="builtin", metavar="ONNX", help="also the detector (default: built-in CenterFace)")
    p.add_argument("--identity", nargs="?", const="builtin", metavar="ONNX", help="also the identity network (default: built-in dlib ResNet)")
    p.add_argument("--backend", choices=BACKENDS, default="onnx", help="onnx: ONNX files only; tensorrt: ONNX then engines")
    p.add_argument("--precision", choices=PRECISIONS, default="fp16", help="network precision (default fp16)")
    p.add_argument("--max-batch", type=int, default=4, help="faces per call the engines must serve (default 4)")
    p.add_argument("--resolution", type=int, help="diffusion crop size (default 512, what the weights were trained at)")
    p.add_argument("--detector-max-side", type=int, default=640, help="largest detector input side for its engine profile")
    p.add_argument("--workspace-gb", type=float, help="TensorRT builder workspace limit")
    p.add_argument("--device", choices=("cpu", "cuda"), default=None, help="where torch runs the export (default: cuda if visible)")
    p.set_defaults(func=cmd_export)


def cmd_export(args: argparse.Namespace) -> int:
    if not (args.model or args.detector or args.identity):
        raise ConfigError("fawn export: nothing to export (give --model DIR, --detector and/or --identity)")
    opts = ExportOptions(
        out_dir=Path(args.out).expanduser(), backend=args.backend, precision=args.precision, max_batch=args.max_batch,
        resolution=args.resolution, workspace_gb=args.workspace_gb, device=args.device or _default_device(args.model),
    )
    artifacts: list[Artifact] = []
    if args.model:
        from streamer.models.diffusion.info import read_info

        artifacts += export_diffusion(read_info(args.model, args.base, args.image_encoder), opts).values()
    if args.detector:
        artifacts.append(_detector(args.detector, opts, args.detector_max_side))
    if args.identity:
        artifacts.append(_identity(args.identity, opts))
    sys.stdout.write(format_artifacts(artifacts))
    return 0


def _default_device(model: str | None) -> str:
    if not model:
        return "cpu"
    try:
        import torch
    except ImportError:
        return "cpu"
    return "cuda" if torch.cuda.is_available() else "cpu"


def _detector(path: str, opts: ExportOptions, max_side: int) -> Artifact:
    import engines

    onnx = engines.builtin_model("centerface") if path == "builtin" else Path(path)
    side = max(32, max_side // 32 * 32)
    ranges = {"B": (1, 1, opts.max_batch), "H": (32, min(side, 480), side), "W": (32, side, side)}
    return export_existing(onnx, "detector", opts, ranges)


def _identity(path: str, opts: ExportOptions) -> Artifact:
    import engines

    onnx = engines.builtin_model("dlib-resnet") if path == "builtin" else Path(path)
    return export_existing(onnx, "identity", opts, {"N": (1, 1, opts.max_batch)})


def format_artifacts(artifacts: list[Artifact]) -> str:
    lines = [f"{'model':<26} {'backend':<9} {'status':<7} path"]
    for a in artifacts:
        lines.append(f"{a.component:<26} {a.backend:<9} {'built' if a.built else 'cached':<7} {a.path}")
    return "\n".join(lines) + "\n"
