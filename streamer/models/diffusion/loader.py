"""Loading a face_anon_simple model, as downloaded, through the libraries' own ``from_pretrained``.

The three UNets (``unet/``, ``referencenet/``, ``conditioning_referencenet/``)
load as diffusers' ``UNet2DConditionModel``, the VAE as ``AutoencoderKL`` (from
the Stable Diffusion 2.1 folder or the one-folder layout), the image encoder as
transformers' ``CLIPVisionModelWithProjection``, which also reads a full
``CLIPModel`` checkpoint (openai/clip-vit-large-patch14: it keeps the vision
half). Always ``local_files_only=True``: nothing is fetched from a hub. What
is missing or does not fit is a one-line :class:`ModelError` naming the folder.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from streamer.core.errors import MissingExtraError, ModelError
from streamer.models.diffusion.info import UNET_FOLDERS, ModelInfo, read_info, read_json

log = logging.getLogger(__name__)

DIFFUSERS_WEIGHTS = ("diffusion_pytorch_model",)
TRANSFORMERS_WEIGHTS = ("model", "pytorch_model")
PROJECTION = "visual_projection.weight"


@dataclass
class FaceAnonModel:
    """The loaded networks of one model (eval mode, no grad)."""

    info: ModelInfo
    unet: Any
    referencenet: Any
    conditioning_referencenet: Any
    vae: Any
    image_encoder: Any

    def to(self, device: str | torch.device, dtype: torch.dtype) -> FaceAnonModel:
        for net in (self.unet, self.referencenet, self.conditioning_referencenet, self.vae, self.image_encoder):
            # nn.Module.to: diffusers' override only adds a warning about from_pretrained's torch_dtype
            torch.nn.Module.to(net, device=device, dtype=dtype)
        return self


def load_model(root: str | Path | ModelInfo, device: str = "cpu", dtype: torch.dtype = torch.float32) -> FaceAnonModel:
    """Load every network of the model at ``root`` (a one-folder model, or the folders of a ModelInfo)."""
    info = root if isinstance(root, ModelInfo) else read_info(root)
    unets = {name: load_unet(info.folder(name)) for name in UNET_FOLDERS}
    model = FaceAnonModel(
        info=info,
        unet=unets["unet"],
        referencenet=unets["referencenet"],
        conditioning_referencenet=unets["conditioning_referencenet"],
        vae=load_vae(info.folder("vae")),
        image_encoder=load_image_encoder(info.folder("image_encoder")),
    )
    log.info("loaded diffusion model %s (%d px crops by default)", info.root, info.native_resolution)
    return model.to(device, dtype)


def load_unet(folder: Path) -> Any:
    return _pretrained(_import("diffusers").UNet2DConditionModel, folder, DIFFUSERS_WEIGHTS)


def load_vae(folder: Path) -> Any:
    return _pretrained(_import("diffusers").AutoencoderKL, folder, DIFFUSERS_WEIGHTS)


def load_image_encoder(folder: Path) -> Any:
    """The CLIP vision tower with its projection, from a vision-only or a full CLIPModel checkpoint.

    ``CLIPVisionConfig.from_pretrained`` takes a full config's ``vision_config``, whose ``projection_dim`` may be
    the class default rather than the checkpoint's: the top-level one wins (the full model's projection width).
    """
    transformers = _import("transformers")
    weight_files(folder, TRANSFORMERS_WEIGHTS)
    config = transformers.CLIPVisionConfig.from_pretrained(str(folder), local_files_only=True)
    top = read_json(folder / "config.json")
    if "vision_config" in top and top.get("projection_dim"):
        config.projection_dim = int(top["projection_dim"])
    # unexpected tensors are expected here (a full CLIPModel's text half); a vision-only CLIPVisionModel save (what
    # the authors load) has no projection, which is fine when the pooled output feeds the UNet (modules checks it)
    model = _pretrained(
        transformers.CLIPVisionModelWithProjection, folder, TRANSFORMERS_WEIGHTS, True, (PROJECTION,), config=config
    )
    return model


def has_projection(encoder: Any) -> bool:
    return bool(getattr(encoder, "fawn_has_projection", True))


def _pretrained(
    cls: Any, folder: Path, stems: tuple[str, ...], allow_unexpected: bool = False, optional: tuple[str, ...] = (),
    **kwargs: Any,
) -> Any:
    files = weight_files(folder, stems)  # a clear error before the library's own
    variant = "fp16" if ".fp16." in files[0].name else None
    try:
        model, loading = cls.from_pretrained(
            str(folder), local_files_only=True, output_loading_info=True, variant=variant, **kwargs
        )
    except (OSError, ValueError, RuntimeError, KeyError) as exc:
        raise ModelError(f"{folder}: {cls.__name__} cannot load it: {_first_line(exc)}") from exc
    # from_pretrained leaves missing tensors randomly initialized and only logs them: refuse instead
    missing = sorted(k for k in loading.get("missing_keys", ()) if not k.endswith("position_ids"))
    if any(k in optional for k in missing):
        model.fawn_has_projection = False
        missing = [k for k in missing if k not in optional]
    mismatched = [str(m[0]) if isinstance(m, (tuple, list)) else str(m) for m in loading.get("mismatched_keys") or []]
    unexpected = [] if allow_unexpected else sorted(loading.get("unexpected_keys") or [])
    problems = [(n, w) for n, w in ((missing, "missing"), (mismatched, "mis-shaped"), (unexpected, "unexpected")) if n]
    if problems:
        names, what = problems[0]
        raise ModelError(f"{folder}: weights do not match its config.json: {len(names)} {what} tensors: {', '.join(names[:3])}")
    return model.eval().requires_grad_(False)


def _first_line(exc: BaseException) -> str:
    """The message on one line (a state-dict error names its tensor on its second line), at most 300 characters."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    text = " ".join(lines[:2]) if lines and lines[0].endswith(":") else (lines[0] if lines else type(exc).__name__)
    return text[:300]


def weight_files(folder: Path, stems: tuple[str, ...]) -> list[Path]:
    """The weight files of a component folder: safetensors (single or sharded) first, then .bin; fp16 variants last."""
    if not (folder / "config.json").is_file():
        raise ModelError(f"{folder}: no config.json")
    for variant in ("", ".fp16"):
        for stem in stems:
            for name in (f"{stem}{variant}.safetensors", f"{stem}{variant}.safetensors.index.json", f"{stem}{variant}.bin"):
                if (folder / name).is_file():
                    return [folder / name]
    names = ", ".join(f"{s}.safetensors" for s in stems)
    raise ModelError(f"{folder}: no weights (expected {names})")


def _import(name: str) -> Any:
    try:
        return __import__(name)
    except ImportError:
        raise MissingExtraError(name, "diffusion") from None
