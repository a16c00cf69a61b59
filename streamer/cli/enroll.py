"""``fawn enroll`` (photos -> a gallery of face embeddings) and the identity options of ``fawn run``."""

from __future__ import annotations

import argparse
import logging
from typing import Any

from streamer.core.config import IDENTITY_MODELS, load_config
from streamer.stages.identity import enroll as enrollment
from streamer.stages.identity.enroll import EnrollOptions, enroll

log = logging.getLogger("fawn")

# `fawn run` options added by add_identity_run_args -> config keys (merge into the run overrides)
_ENROLL_OPTIONS = {"model": "identity.model", "model_path": "identity.model_path"}
IDENTITY_RUN_OPTIONS = {
    "audit": "identity.audit",
    "identity_model": "identity.model",
    "identity_model_path": "identity.model_path",
}


def cmd_enroll(args: argparse.Namespace) -> int:
    overrides = {key: getattr(args, name) for name, key in _ENROLL_OPTIONS.items() if getattr(args, name, None) is not None}
    cfg = load_config(args.config, overrides)
    options = EnrollOptions(tuple(args.photos), args.output, args.name, args.largest)
    gallery = enroll(options, cfg)
    log.info("gallery %s: %d people, %d photos", args.output, len(gallery), gallery.photo_count)
    return 0


def add_enroll_parser(sub: Any) -> None:
    """Register ``fawn enroll`` on the CLI's sub-parsers."""
    p = sub.add_parser(
        "enroll",
        help="register people: photos -> a gallery of face embeddings (photos are not stored)",
        description=enrollment.__doc__.split("\n\n")[1] if enrollment.__doc__ else None,
    )
    p.add_argument("photos", nargs="+", metavar="PHOTO_OR_DIR", help="photos, or folders (one sub-folder per person)")
    p.add_argument("-o", "--output", required=True, metavar="GALLERY", help="gallery file to create or add to (e.g. people.fawn)")
    p.add_argument("--name", help="the person's name for every photo given (default: sub-folder name, else file stem)")
    p.add_argument("--largest", action="store_true", help="on a photo with several faces, take the largest")
    p.add_argument("-c", "--config", help="YAML config or preset (its identity and detector sections are used)")
    p.add_argument("--model", choices=IDENTITY_MODELS, help="identity model (default dlib-resnet)")
    p.add_argument("--model-path", help="identity model file or folder (arcface: a pack folder or .onnx)")
    p.set_defaults(func=cmd_enroll)


def add_identity_run_args(parser: argparse.ArgumentParser) -> None:
    """Identity options of ``fawn run`` (``--gallery``/``--mode`` are the CLI's own); see IDENTITY_RUN_OPTIONS."""
    parser.add_argument("--audit", metavar="PATH", help="append identity decisions per track to this JSONL file")
    parser.add_argument("--identity-model", choices=IDENTITY_MODELS, help="identity model the gallery was made with")
    parser.add_argument("--identity-model-path", metavar="PATH", help="identity model file or folder (arcface pack)")
