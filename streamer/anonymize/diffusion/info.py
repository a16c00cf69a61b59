"""What a face_anon_simple-style model folder holds, read from its JSON configs only.

The folder uses the diffusers layout::

    unet/  referencenet/  conditioning_referencenet/   three UNet2DConditionModel
    vae/                                              AutoencoderKL
    image_encoder/                                    CLIPVisionModelWithProjection
    scheduler/                                        a diffusers scheduler config

No torch here: the native resolution, the latent layout and the layout of the
self-attention layers whose inputs the ReferenceNets hand to the denoiser all
follow from the configs, so export planning and config checks need no weights.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streamer.errors import ModelError

UNET_FOLDERS = ("unet", "referencenet", "conditioning_referencenet")
FOLDERS = (*UNET_FOLDERS, "vae", "image_encoder", "scheduler")
CONFIG_FILES = {"scheduler": "scheduler_config.json"}
# the UNet config keys that must agree between the denoiser and the ReferenceNets
SHARED_UNET_KEYS = (
    "block_out_channels",
    "down_block_types",
    "up_block_types",
    "layers_per_block",
    "transformer_layers_per_block",
    "cross_attention_dim",
    "in_channels",
    "sample_size",
)


@dataclass(frozen=True)
class RefLayer:
    """One self-attention layer of the denoiser: its module name and the shape of its input."""

    name: str
    tokens: int
    channels: int


@dataclass(frozen=True)
class ModelInfo:
    """The facts about a model folder that the export and the sampler need."""

    root: Path
    latent_channels: int
    vae_scale: int
    sample_size: int
    cross_dim: int
    clip_size: int
    clip_dim: int
    clip_output: str  # "image_embeds" (the projection) or "pooler_output" (the pooled hidden state)
    scaling_factor: float
    shift_factor: float
    prediction_type: str
    unet_config: dict[str, Any]
    scheduler_config: dict[str, Any]

    @property
    def native_resolution(self) -> int:
        """The crop size the model was trained at (UNet sample size x VAE scale; 512 for SD2.1-base)."""
        return self.sample_size * self.vae_scale

    def latent_size(self, resolution: int) -> int:
        """Latent side for a crop of ``resolution`` pixels (a multiple of VAE scale x UNet downsampling)."""
        step = self.vae_scale * 2 ** (len(self.unet_config["block_out_channels"]) - 1)
        if resolution <= 0 or resolution % step:
            raise ModelError(f"diffusion resolution {resolution} must be a positive multiple of {step} for this model")
        return resolution // self.vae_scale

    def ref_layers(self, resolution: int) -> list[RefLayer]:
        """The denoiser's self-attention layers in execution order (down, mid, up), at ``resolution``."""
        return reference_layout(self.unet_config, self.latent_size(resolution))


def read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ModelError(f"model config missing: {path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelError(f"model config {path} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ModelError(f"model config {path} must be a JSON object")
    return data


def component_config(root: Path, folder: str) -> dict[str, Any]:
    sub = root / folder
    if not sub.is_dir():
        raise ModelError(f"model folder {root} has no '{folder}/' (expected: {', '.join(FOLDERS)})")
    return read_json(sub / CONFIG_FILES.get(folder, "config.json"))


def read_info(root: str | Path) -> ModelInfo:
    """Read and cross-check the configs of a model folder (raises ModelError naming what is wrong)."""
    path = Path(root).expanduser()
    if not path.is_dir():
        raise ModelError(f"diffusion model folder not found: {path}")
    unets = {name: component_config(path, name) for name in UNET_FOLDERS}
    _check_unets(unets)
    unet = unets["unet"]
    vae = component_config(path, "vae")
    clip = _vision_config(component_config(path, "image_encoder"))
    scheduler = component_config(path, "scheduler")
    latent = int(vae.get("latent_channels", 4))
    if int(unet.get("in_channels", 4)) != latent:
        raise ModelError(f"unet in_channels {unet.get('in_channels')} != vae latent_channels {latent}")
    cross = int(unet["cross_attention_dim"])
    clip_output = _clip_output(clip, cross)
    return ModelInfo(
        root=path,
        latent_channels=latent,
        vae_scale=2 ** (len(vae.get("block_out_channels", [64])) - 1),
        sample_size=int(unet["sample_size"]),
        cross_dim=cross,
        clip_size=int(clip.get("image_size", 224)),
        clip_dim=cross,
        clip_output=clip_output,
        scaling_factor=float(vae.get("scaling_factor", 0.18215)),
        shift_factor=float(vae.get("shift_factor") or 0.0),
        prediction_type=str(scheduler.get("prediction_type", "epsilon")),
        unet_config=unet,
        scheduler_config=scheduler,
    )


def _check_unets(unets: dict[str, dict[str, Any]]) -> None:
    base = unets["unet"]
    for key in ("sample_size", "cross_attention_dim", "block_out_channels", "down_block_types"):
        if key not in base:
            raise ModelError(f"unet/config.json has no '{key}'")
    for name, cfg in unets.items():
        for key in SHARED_UNET_KEYS:
            if _norm(cfg.get(key)) != _norm(base.get(key)):
                raise ModelError(f"{name}/config.json '{key}' = {cfg.get(key)!r} differs from unet's {base.get(key)!r}")


def _norm(value: Any) -> Any:
    return list(value) if isinstance(value, (list, tuple)) else value


def _vision_config(cfg: dict[str, Any]) -> dict[str, Any]:
    """A CLIPVisionConfig dict; a full CLIPConfig keeps it under ``vision_config``."""
    if "vision_config" in cfg:
        vision = dict(cfg["vision_config"])
        vision.setdefault("projection_dim", cfg.get("projection_dim"))
        cfg = vision
    if not cfg.get("hidden_size"):
        raise ModelError("image_encoder/config.json has no hidden_size (a CLIPVisionModelWithProjection config)")
    return cfg


def _clip_output(clip: dict[str, Any], cross: int) -> str:
    """Which CLIP vector feeds the UNet: the projected embedding if its width fits, else the pooled hidden state
    (a ViT-L/14 encoder: 768-d projection, 1024-d pooled, with a 1024-d SD2.1 UNet)."""
    projection = int(clip.get("projection_dim") or 0)
    hidden = int(clip.get("hidden_size") or 0)
    if projection == cross:
        return "image_embeds"
    if hidden == cross:
        return "pooler_output"
    raise ModelError(
        f"image_encoder projection_dim {projection} and hidden_size {hidden} both differ from unet cross_attention_dim {cross}"
    )


def _per_block(value: Any, n: int) -> list[int]:
    if isinstance(value, (list, tuple)):
        return [int(v) for v in value]
    return [int(value)] * n


def reference_layout(cfg: dict[str, Any], latent: int) -> list[RefLayer]:
    """Self-attention (``attn1``) layers of a UNet2DConditionModel config, in execution order."""
    channels = [int(c) for c in cfg["block_out_channels"]]
    n = len(channels)
    layers = _per_block(cfg.get("layers_per_block", 2), n)
    depth = _per_block(cfg.get("transformer_layers_per_block", 1), n)
    reverse_depth = cfg.get("reverse_transformer_layers_per_block") or list(reversed(depth))
    out: list[RefLayer] = []
    for i, kind in enumerate(cfg["down_block_types"]):
        if "CrossAttn" in kind:
            out += _block(f"down_blocks.{i}", layers[i], depth[i], latent >> i, channels[i])
    mid = cfg.get("mid_block_type", "UNetMidBlock2DCrossAttn")
    if mid and "CrossAttn" in mid:
        out += _block("mid_block", 1, depth[-1], latent >> (n - 1), channels[-1])
    reverse_layers = list(reversed(layers))
    for j, kind in enumerate(cfg["up_block_types"]):
        level = n - 1 - j
        if "CrossAttn" in kind:
            out += _block(f"up_blocks.{j}", reverse_layers[j] + 1, _per_block(reverse_depth, n)[j], latent >> level, channels[level])
    return out


def _block(prefix: str, attentions: int, depth: int, side: int, channels: int) -> list[RefLayer]:
    return [
        RefLayer(f"{prefix}.attentions.{a}.transformer_blocks.{d}.attn1", side * side, channels)
        for a in range(attentions)
        for d in range(depth)
    ]
