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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from streamer.core.errors import ModelError

UNET_FOLDERS = ("unet", "referencenet", "conditioning_referencenet")
FOLDERS = (*UNET_FOLDERS, "vae", "image_encoder", "scheduler")
CONFIG_FILES = {"scheduler": "scheduler_config.json"}
BASE_FOLDERS = ("vae", "scheduler")  # taken from Stable Diffusion 2.1 by the authors
TRAINED_RESOLUTION = 512
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
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
    folders: dict[str, Path] = field(default_factory=dict)  # component -> the folder it is read from
    clip_mean: tuple[float, ...] = CLIP_MEAN  # from the encoder's preprocessor_config.json when it has one
    clip_std: tuple[float, ...] = CLIP_STD

    @property
    def native_resolution(self) -> int:
        """The default crop size: 512 px, what face_anon_simple was trained at, even when the UNet config is the
        SD2.1-768 one (``sample_size`` 96 x 8 = 768); a smaller config (the tiny test models) runs at its own size."""
        return min(self.sample_size * self.vae_scale, TRAINED_RESOLUTION)

    def folder(self, component: str) -> Path:
        return self.folders.get(component, self.root / component)

    def latent_size(self, resolution: int) -> int:
        """Latent side for a crop of ``resolution`` pixels (a multiple of VAE scale x UNet downsampling)."""
        step = self.vae_scale * 2 ** (len(self.unet_config["block_out_channels"]) - 1)
        if resolution <= 0 or resolution % step:
            raise ModelError(f"diffusion resolution {resolution} must be a positive multiple of {step} for this model")
        return resolution // self.vae_scale

    def ref_layers(self, resolution: int) -> list[RefLayer]:
        """The denoiser's self-attention layers in execution order (down, mid, up), at ``resolution``."""
        return reference_layout(self.unet_config, self.latent_size(resolution))

    def ref_sources(self, resolution: int) -> list[RefLayer]:
        """The ReferenceNet layers whose states the denoiser reads (see :func:`routed_source`), in execution order."""
        return [layer for layer in self.ref_layers(resolution) if routed_source(layer.name) == layer.name]


def routed_source(name: str) -> str:
    """The ReferenceNet ``attn1`` whose input the denoiser's ``attn1`` called ``name`` attends to.

    face_anon_simple's UNet hands each down/up block the tuple of its ReferenceNet block's states and every
    attention module of the block indexes that tuple by its transformer-block index, so all of them read the
    block's *first* attention module: ``down_blocks.1.attentions.1.transformer_blocks.0.attn1`` reads
    ``down_blocks.1.attentions.0.transformer_blocks.0.attn1``. The mid block has a single attention module.
    """
    parts = name.split(".")
    if parts[0] in ("down_blocks", "up_blocks") and len(parts) > 3 and parts[2] == "attentions":
        parts[3] = "0"
    return ".".join(parts)


def read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelError(f"model config missing: {path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelError(f"model config {path} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ModelError(f"model config {path} must be a JSON object")
    return data


def component_config(folder: Path, name: str) -> dict[str, Any]:
    if not folder.is_dir():
        raise ModelError(f"{name}: folder {folder} not found (expected {_hint(name)})")
    return read_json(folder / CONFIG_FILES.get(name, "config.json"))


def _hint(name: str) -> str:
    if name in UNET_FOLDERS:
        return "the face_anon_simple folder with unet/, referencenet/, conditioning_referencenet/ (--diffusion-model)"
    if name in BASE_FOLDERS:
        return "a Stable Diffusion 2.1 folder with vae/ and scheduler/ (--diffusion-base)"
    return "openai/clip-vit-large-patch14 with config.json (--diffusion-image-encoder)"


def resolve_folders(root: Path, base: Path | None = None, image_encoder: Path | None = None) -> dict[str, Path]:
    """Where each part lives: the three UNets in ``root``; vae/scheduler in ``base`` (else ``root``); the CLIP
    encoder in ``image_encoder`` (else ``root/image_encoder``)."""
    folders = {name: root / name for name in FOLDERS}
    if base is not None:
        folders.update({name: base / name for name in BASE_FOLDERS})
    if image_encoder is not None:
        folders["image_encoder"] = image_encoder
    return folders


def read_info(root: str | Path, base: str | Path | None = None, image_encoder: str | Path | None = None) -> ModelInfo:
    """Read and cross-check the configs of a model (raises ModelError naming what is wrong).

    ``root``: the face_anon_simple folder; ``base``: the SD2.1 folder (vae/, scheduler/) when they are not in
    ``root``; ``image_encoder``: the CLIP folder when it is not ``root/image_encoder``.
    """
    path = Path(root).expanduser()
    for what, p in (("diffusion model", path), ("diffusion base", base), ("diffusion image encoder", image_encoder)):
        if p is not None and not Path(p).expanduser().is_dir():
            raise ModelError(f"{what} folder not found: {p}")
    folders = resolve_folders(
        path, Path(base).expanduser() if base else None, Path(image_encoder).expanduser() if image_encoder else None
    )
    unets = {name: component_config(folders[name], name) for name in UNET_FOLDERS}
    _check_unets(unets)
    unet = unets["unet"]
    vae = component_config(folders["vae"], "vae")
    clip = _vision_config(component_config(folders["image_encoder"], "image_encoder"))
    scheduler = component_config(folders["scheduler"], "scheduler")
    latent = int(vae.get("latent_channels", 4))
    if int(unet.get("in_channels", 4)) != latent:
        raise ModelError(f"unet in_channels {unet.get('in_channels')} != vae latent_channels {latent}")
    cross = int(unet["cross_attention_dim"])
    clip_output = _clip_output(clip, cross)
    pre_path = folders["image_encoder"] / "preprocessor_config.json"
    pre = read_json(pre_path) if pre_path.is_file() else {}
    return ModelInfo(
        root=path,
        latent_channels=latent,
        vae_scale=2 ** (len(vae.get("block_out_channels", [64])) - 1),
        sample_size=int(unet["sample_size"]),
        cross_dim=cross,
        clip_size=_crop_size(pre) or int(clip.get("image_size", 224)),
        clip_dim=cross,
        clip_output=clip_output,
        scaling_factor=float(vae.get("scaling_factor", 0.18215)),
        shift_factor=float(vae.get("shift_factor") or 0.0),
        prediction_type=str(scheduler.get("prediction_type", "epsilon")),
        unet_config=unet,
        scheduler_config=scheduler,
        folders=folders,
        clip_mean=tuple(float(v) for v in pre.get("image_mean", CLIP_MEAN)),
        clip_std=tuple(float(v) for v in pre.get("image_std", CLIP_STD)),
    )


def _crop_size(pre: dict[str, Any]) -> int | None:
    crop = pre.get("crop_size")
    if isinstance(crop, dict):
        crop = crop.get("height")
    return int(crop) if crop else None


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
        if cfg.get("projection_dim"):  # the full model's projection width wins over the sub-config's default
            vision["projection_dim"] = cfg["projection_dim"]
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
