"""``fawn models check DIR...``: what a diffusion model download holds and whether its parts fit, before any video.

Each DIR is classified by what it holds: the face_anon_simple folder (``unet/``,
``referencenet/``, ``conditioning_referencenet/``), the Stable Diffusion 2.1
folder (``vae/``, ``scheduler/``), the CLIP folder (``config.json`` of a CLIP
model), or all of them at once (the one-folder layout). Configs only and
checksums: no weights are loaded.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from streamer.core.errors import ModelError
from streamer.models.diffusion.info import (
    BASE_FOLDERS,
    UNET_FOLDERS,
    ModelInfo,
    read_info,
    read_json,
    resolve_folders,
)

WEIGHT_SUFFIXES = (".safetensors", ".bin")


@dataclass
class CheckReport:
    folders: dict[str, Path]
    parts: dict[str, dict[str, Any]] = field(default_factory=dict)
    problem: str | None = None
    info: ModelInfo | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "problem": self.problem, "parts": self.parts,
                "resolution": self.info.native_resolution if self.info else None}


def classify(dirs: list[Path]) -> tuple[Path, Path | None, Path | None]:
    """(model, base, image_encoder) from the folders given, in any order."""
    model = base = encoder = None
    for d in dirs:
        if not d.is_dir():
            raise ModelError(f"models check: {d} is not a folder")
        if all((d / n).is_dir() for n in UNET_FOLDERS):
            model = d
        elif all((d / n).is_dir() for n in BASE_FOLDERS):
            base = d
        elif (d / "config.json").is_file() and "clip" in str(read_json(d / "config.json").get("model_type", "")):
            encoder = d
        else:
            raise ModelError(
                f"models check: {d} holds none of: unet/+referencenet/+conditioning_referencenet/ (face_anon_simple), "
                "vae/+scheduler/ (Stable Diffusion 2.1), a CLIP config.json (openai/clip-vit-large-patch14)"
            )
    if model is None:
        raise ModelError("models check: no face_anon_simple folder (with unet/, referencenet/, conditioning_referencenet/) given")
    return model, base, encoder


def sha256(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def check(dirs: list[Path]) -> CheckReport:
    model, base, encoder = classify(dirs)
    folders = resolve_folders(model, base, encoder)
    report = CheckReport(folders)
    for name, folder in folders.items():
        report.parts[name] = _part(name, folder)
    try:
        report.info = read_info(model, base, encoder)
    except ModelError as exc:
        report.problem = str(exc)
        return report
    missing = [f"{n} ({p['folder']})" for n, p in report.parts.items() if n != "scheduler" and not p["weights"]]
    if missing:
        report.problem = f"no weight files in: {', '.join(missing)}"
    return report


def _part(name: str, folder: Path) -> dict[str, Any]:
    out: dict[str, Any] = {"folder": str(folder), "found": folder.is_dir(), "weights": {}}
    if not folder.is_dir():
        return out
    cfg_file = folder / ("scheduler_config.json" if name == "scheduler" else "config.json")
    cfg = read_json(cfg_file) if cfg_file.is_file() else {}
    out["config"] = _summary(name, cfg)
    out["weights"] = {p.name: sha256(p) for p in sorted(folder.iterdir()) if p.suffix in WEIGHT_SUFFIXES and p.is_file()}
    return out


def _summary(name: str, cfg: dict[str, Any]) -> dict[str, Any]:
    keys: tuple[str, ...]
    if name in UNET_FOLDERS:
        keys = ("block_out_channels", "layers_per_block", "down_block_types", "up_block_types", "cross_attention_dim",
                "attention_head_dim", "sample_size", "in_channels")
    elif name == "vae":
        keys = ("block_out_channels", "latent_channels", "scaling_factor", "sample_size")
    elif name == "scheduler":
        keys = ("_class_name", "prediction_type", "num_train_timesteps", "beta_schedule", "timestep_spacing")
    else:
        vision = cfg.get("vision_config", cfg)
        return {"model_type": cfg.get("model_type"), "full_clip": "vision_config" in cfg,
                "hidden_size": vision.get("hidden_size"), "projection_dim": cfg.get("projection_dim", vision.get("projection_dim")),
                "image_size": vision.get("image_size")}
    return {k: cfg[k] for k in keys if k in cfg}


def format_report(report: CheckReport) -> str:
    lines = []
    for name, part in report.parts.items():
        state = "found" if part["found"] else "MISSING"
        lines.append(f"{name:26s} {state:8s} {part['folder']}")
        for k, v in part.get("config", {}).items():
            lines.append(f"    {k}: {v}")
        for fname, digest in part["weights"].items():
            lines.append(f"    sha256 {digest}  {fname}")
    info = report.info
    if info is not None:
        layers, sources = info.ref_layers(info.native_resolution), info.ref_sources(info.native_resolution)
        lines.append(
            f"attention: {len(layers)} denoiser self-attention layers read {len(sources)} ReferenceNet states "
            f"(each block's attentions.0); CLIP {info.clip_output} ({info.cross_dim}-d); crops {info.native_resolution} px"
        )
    lines.append("fits together: yes" if report.ok else f"fits together: NO: {report.problem}")
    return "\n".join(lines)
