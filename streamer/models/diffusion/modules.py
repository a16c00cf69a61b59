"""The six networks as plain ``nn.Module``s whose ``forward`` takes and returns exactly the
tensors of their :class:`streamer.models.diffusion.spec.ModelIO` (same names, same order).

The ONNX export traces these modules and the torch runtime runs them, so the
exported graph and the torch path compute the same thing.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from streamer.core.errors import ModelError
from streamer.models.diffusion import attention
from streamer.models.diffusion.info import ModelInfo, routed_source
from streamer.models.diffusion.loader import FaceAnonModel, has_projection
from streamer.models.diffusion.spec import DIFFUSION_COMPONENTS


class ImageEncoderIO(nn.Module):
    """``pixel_values`` [B,3,S,S] (CLIP-normalized) -> ``image_embeds`` [B,D]: the projected embedding,
    or the pooled hidden state when that is what has the UNet's width (see ``ModelInfo.clip_output``)."""

    def __init__(self, encoder: Any, info: ModelInfo) -> None:
        super().__init__()
        self.encoder = encoder
        self.pooled = info.clip_output == "pooler_output"
        if not self.pooled and not has_projection(encoder):
            raise ModelError(f"{info.folder('image_encoder')}: the UNet needs CLIP's projection but the checkpoint has none")

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        if self.pooled:
            pooled: torch.Tensor = self.encoder.vision_model(pixel_values=pixel_values).pooler_output
            return pooled
        embeds: torch.Tensor = self.encoder(pixel_values=pixel_values).image_embeds
        return embeds


class VaeEncoderIO(nn.Module):
    """``image`` [B,3,R,R] in [-1,1] (RGB) -> ``latent``: the posterior mean, shifted and scaled."""

    def __init__(self, vae: Any, info: ModelInfo) -> None:
        super().__init__()
        self.vae = vae
        self.scale = info.scaling_factor
        self.shift = info.shift_factor

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        mean: torch.Tensor = self.vae.encode(image).latent_dist.mean
        return (mean - self.shift) * self.scale


class VaeDecoderIO(nn.Module):
    """``latent`` -> ``image`` [B,3,R,R] in [-1,1]."""

    def __init__(self, vae: Any, info: ModelInfo) -> None:
        super().__init__()
        self.vae = vae
        self.scale = info.scaling_factor
        self.shift = info.shift_factor

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        image: torch.Tensor = self.vae.decode(latent / self.scale + self.shift).sample
        return image.clamp(-1.0, 1.0)


class ReferenceNetIO(nn.Module):
    """``sample`` (a clean latent), ``encoder_hidden_states`` -> the input of each ``attn1`` the denoiser reads
    (the first attention module of each block, ``info.routed_source``), at timestep 0."""

    def __init__(self, unet: Any, layer_names: list[str]) -> None:
        super().__init__()
        self.unet = unet
        self.store, names = attention.install(unet, "capture")
        _check_layers(names, layer_names, "referencenet")
        self.names = [n for n in names if routed_source(n) == n]

    def forward(self, sample: torch.Tensor, encoder_hidden_states: torch.Tensor) -> tuple[torch.Tensor, ...]:
        self.store.captured.clear()
        self.unet(sample, 0, encoder_hidden_states=encoder_hidden_states, return_dict=False)
        refs = tuple(self.store.captured[n] for n in self.names)
        self.store.captured.clear()
        return refs


class DenoiserIO(nn.Module):
    """``sample``, ``timestep`` [B], ``encoder_hidden_states``, ``ref_00``... (one per routed source layer)
    -> ``noise_pred`` (the model's raw output)."""

    def __init__(self, unet: Any, layer_names: list[str]) -> None:
        super().__init__()
        self.unet = unet
        self.store, names = attention.install(unet, "reference")
        _check_layers(names, layer_names, "unet")
        self.names = [n for n in names if routed_source(n) == n]

    def forward(
        self, sample: torch.Tensor, timestep: torch.Tensor, encoder_hidden_states: torch.Tensor, *refs: torch.Tensor
    ) -> torch.Tensor:
        if len(refs) != len(self.names):
            raise ValueError(f"denoiser needs {len(self.names)} reference tensors, got {len(refs)}")
        self.store.refs = dict(zip(self.names, refs))
        try:
            out: torch.Tensor = self.unet(sample, timestep, encoder_hidden_states=encoder_hidden_states, return_dict=False)[0]
        finally:
            self.store.refs = {}
        return out


def _check_layers(found: list[str], expected: list[str], where: str) -> None:
    if found != expected:
        raise ModelError(
            f"{where}: self-attention layers {found[:3]}... do not match the layout read from its config {expected[:3]}..."
        )


def build_modules(model: FaceAnonModel, resolution: int) -> dict[str, nn.Module]:
    """The six I/O modules of a loaded model, keyed like :data:`streamer.models.diffusion.spec.DIFFUSION_COMPONENTS`."""
    layers = [layer.name for layer in model.info.ref_layers(resolution)]
    modules: dict[str, nn.Module] = {
        "image_encoder": ImageEncoderIO(model.image_encoder, model.info),
        "vae_encoder": VaeEncoderIO(model.vae, model.info),
        "vae_decoder": VaeDecoderIO(model.vae, model.info),
        "referencenet": ReferenceNetIO(model.referencenet, layers),
        "conditioning_referencenet": ReferenceNetIO(model.conditioning_referencenet, layers),
        "unet": DenoiserIO(model.unet, layers),
    }
    assert tuple(modules) == DIFFUSION_COMPONENTS
    return {k: m.eval() for k, m in modules.items()}
