"""Strict loading of a face_anon_simple-style model folder into stock diffusers/transformers classes.

Each network is built from its ``config.json`` with the library's own class
(``UNet2DConditionModel`` for the denoiser and both ReferenceNets,
``AutoencoderKL``, ``CLIPVisionModelWithProjection``) and its weights are
loaded with ``load_state_dict(strict=True)`` after our own comparison, so a
missing, unexpected or mis-shaped tensor is a :class:`ModelError` that names it.
Nothing is ever fetched from a hub.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from streamer.anonymize.diffusion.info import UNET_FOLDERS, ModelInfo, read_info, read_json
from streamer.errors import MissingExtraError, ModelError

log = logging.getLogger(__name__)

DIFFUSERS_WEIGHTS = ("diffusion_pytorch_model",)
TRANSFORMERS_WEIGHTS = ("model", "pytorch_model")
# buffers some checkpoints carry that current libraries no longer persist
TOLERATED_UNEXPECTED = ("vision_model.embeddings.position_ids",)
# VAE attention names written by diffusers < 0.14
_OLD_VAE_ATTENTION = {".query.": ".to_q.", ".key.": ".to_k.", ".value.": ".to_v.", ".proj_attn.": ".to_out.0."}


@dataclass
class FaceAnonModel:
    """The loaded networks of one model folder (eval mode, no grad)."""

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


def load_model(root: str | Path, device: str = "cpu", dtype: torch.dtype = torch.float32) -> FaceAnonModel:
    """Load every network of the folder at ``root`` strictly; see the module docstring."""
    info = read_info(root)
    unets = {name: load_unet(info.root / name) for name in UNET_FOLDERS}
    model = FaceAnonModel(
        info=info,
        unet=unets["unet"],
        referencenet=unets["referencenet"],
        conditioning_referencenet=unets["conditioning_referencenet"],
        vae=load_vae(info.root / "vae"),
        image_encoder=load_image_encoder(info.root / "image_encoder"),
    )
    log.info("loaded diffusion model %s (native %d px)", info.root, info.native_resolution)
    return model.to(device, dtype)


def load_unet(folder: Path) -> Any:
    diffusers = _import("diffusers")
    return _build_diffusers(diffusers.UNet2DConditionModel, folder)


def load_vae(folder: Path) -> Any:
    diffusers = _import("diffusers")
    return _build_diffusers(diffusers.AutoencoderKL, folder, rename=_rename_old_vae)


def load_image_encoder(folder: Path) -> Any:
    transformers = _import("transformers")
    cfg = read_json(folder / "config.json")
    if "vision_config" in cfg:  # a full CLIPConfig: keep its vision half
        vision = dict(cfg["vision_config"], projection_dim=cfg.get("projection_dim"))
        config = transformers.CLIPVisionConfig(**vision)
    else:
        config = transformers.CLIPVisionConfig.from_json_file(str(folder / "config.json"))
    model = transformers.CLIPVisionModelWithProjection(config)
    strict_load(model, read_weights(folder, TRANSFORMERS_WEIGHTS), folder.name)
    return model.eval().requires_grad_(False)


def _build_diffusers(cls: Any, folder: Path, rename: Any = None) -> Any:
    config = read_json(folder / "config.json")
    state = read_weights(folder, DIFFUSERS_WEIGHTS)
    if rename is not None:
        state = rename(state)
    with torch.device("meta"):
        model = cls.from_config(config)
    # built on the meta device (no random init), then filled: only safe without non-persistent buffers
    persistent = set(model.state_dict())
    if any(name not in persistent for name, _ in model.named_buffers()):
        model = cls.from_config(config)
        strict_load(model, state, folder.name)
    else:
        strict_load(model, state, folder.name, assign=True)
    return model.eval().requires_grad_(False)


def strict_load(module: torch.nn.Module, state: dict[str, torch.Tensor], where: str, assign: bool = False) -> None:
    """``load_state_dict(strict=True)`` with an error that names the offending tensors."""
    expected = module.state_dict()
    state = {k: v for k, v in state.items() if not (k not in expected and k.endswith(TOLERATED_UNEXPECTED))}
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    shapes = [
        f"{k} {tuple(state[k].shape)} (expected {tuple(expected[k].shape)})"
        for k in sorted(set(state) & set(expected))
        if tuple(state[k].shape) != tuple(expected[k].shape)
    ]
    problems = [
        _listing("missing tensors", missing),
        _listing("unexpected tensors", unexpected),
        _listing("mismatched shapes", shapes),
    ]
    text = "; ".join(p for p in problems if p)
    if text:
        raise ModelError(f"{where}: weights do not match its config.json: {text}")
    module.load_state_dict(state, strict=True, assign=assign)


def _listing(what: str, names: list[str], show: int = 5) -> str:
    if not names:
        return ""
    more = f" and {len(names) - show} more" if len(names) > show else ""
    return f"{len(names)} {what}: {', '.join(names[:show])}{more}"


def weight_files(folder: Path, stems: tuple[str, ...]) -> list[Path]:
    """The weight files of a component folder: safetensors (single or sharded) first, then .bin; fp16 variants last."""
    for variant in ("", ".fp16"):
        for stem in stems:
            single = folder / f"{stem}{variant}.safetensors"
            if single.is_file():
                return [single]
            index = folder / f"{stem}{variant}.safetensors.index.json"
            if index.is_file():
                return _shards(index)
            legacy = folder / f"{stem}{variant}.bin"
            if legacy.is_file():
                return [legacy]
    names = ", ".join(f"{s}.safetensors" for s in stems)
    raise ModelError(f"no weights in {folder} (expected {names} or a sharded .index.json)")


def _shards(index: Path) -> list[Path]:
    try:
        weight_map = json.loads(index.read_text())["weight_map"]
    except (KeyError, ValueError) as exc:
        raise ModelError(f"bad shard index {index}: {exc}") from None
    files = [index.parent / name for name in sorted(set(weight_map.values()))]
    for f in files:
        if not f.is_file():
            raise ModelError(f"shard {f.name} listed in {index.name} is missing")
    return files


def read_weights(folder: Path, stems: tuple[str, ...]) -> dict[str, torch.Tensor]:
    state: dict[str, torch.Tensor] = {}
    for path in weight_files(folder, stems):
        state.update(_read_file(path))
    return state


def _read_file(path: Path) -> dict[str, torch.Tensor]:
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return dict(load_file(str(path)))
        loaded = torch.load(str(path), map_location="cpu", weights_only=True)
    except ImportError:
        raise MissingExtraError("safetensors", "diffusion") from None
    except Exception as exc:  # corrupt files raise many kinds of errors
        raise ModelError(f"cannot read weights {path}: {str(exc).splitlines()[0]}") from exc
    if not isinstance(loaded, dict):
        raise ModelError(f"{path} does not hold a state dict")
    return dict(loaded)


def _rename_old_vae(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    if not any(old in k for k in state for old in _OLD_VAE_ATTENTION):
        return state
    log.info("vae: converting attention weights saved by an old diffusers")
    out = {}
    for key, value in state.items():
        for old, new in _OLD_VAE_ATTENTION.items():
            if "attentions" in key and old in key:
                key = key.replace(old, new)
                if value.ndim == 4:  # 1x1 conv weights of very old checkpoints
                    value = value[:, :, 0, 0]
        out[key] = value
    return out


def _import(name: str) -> Any:
    try:
        return __import__(name)
    except ImportError:
        raise MissingExtraError(name, "diffusion") from None
