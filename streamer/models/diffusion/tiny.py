"""A tiny random-init model in the face_anon_simple folder layout, for tests, benchmarks and smoke runs.

``write_tiny_model(path)`` saves, with each library's ``save_pretrained``:
``unet/``, ``referencenet/``, ``conditioning_referencenet/`` (UNet2DConditionModel,
cross-attention width = the CLIP projection), ``vae/`` (AutoencoderKL, scale 4),
``image_encoder/`` (CLIPVisionModelWithProjection) and ``scheduler/`` (DDPM,
v-prediction, like SD2.1). Native resolution: 16 latent x 4 = 64 px. It is
loaded back through the same ``from_pretrained`` loader as a real folder. Its faces are
noise-like patterns: it has the real model's structure, not its skill.

``write_tiny_sd21_download(root)`` writes the three folders a user downloads
(face_anon_simple's UNets, SD2.1's vae/ and scheduler/, a full CLIPModel with its
preprocessor config) with SD2.1-768's UNet topology at tiny widths.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

TINY_RESOLUTION = 64
TINY_CROSS_DIM = 32


def tiny_unet_config() -> dict[str, Any]:
    return {
        "sample_size": 16,
        "in_channels": 4,
        "out_channels": 4,
        "block_out_channels": (32, 64),
        "layers_per_block": 1,
        "down_block_types": ("CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        "up_block_types": ("CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        "cross_attention_dim": TINY_CROSS_DIM,
        "attention_head_dim": 8,
        "norm_num_groups": 8,
    }


def write_tiny_model(root: Path, seed: int = 0) -> Path:
    """Write the tiny model folder at ``root`` (created) and return it."""
    import torch
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(seed)
    root.mkdir(parents=True, exist_ok=True)
    for name in ("unet", "referencenet", "conditioning_referencenet"):
        unet: Any = UNet2DConditionModel(**tiny_unet_config())
        unet.save_pretrained(root / name)
    vae: Any = AutoencoderKL(
        block_out_channels=(16, 32, 32),
        down_block_types=("DownEncoderBlock2D",) * 3,
        up_block_types=("UpDecoderBlock2D",) * 3,
        latent_channels=4,
        norm_num_groups=8,
        layers_per_block=1,
        sample_size=TINY_RESOLUTION,
    )
    vae.save_pretrained(root / "vae")
    clip = CLIPVisionConfig(
        hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
        image_size=32, patch_size=8, projection_dim=TINY_CROSS_DIM,
    )
    CLIPVisionModelWithProjection(clip).save_pretrained(root / "image_encoder")
    scheduler: Any = DDPMScheduler(
        num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
        prediction_type="v_prediction", clip_sample=False, steps_offset=1,
    )
    scheduler.save_pretrained(root / "scheduler")
    return root


# ----------------------------------------------------------------------------- the downloaded three-folder layout

SD21_CROSS_DIM = 48  # the CLIP vision width (ViT-L/14: 1024 = SD2.1's cross_attention_dim; the projection differs)


@dataclass(frozen=True)
class TinyDownload:
    """The three folders a user downloads: face_anon_simple, Stable Diffusion 2.1, CLIP ViT-L/14."""

    model: Path  # unet/ referencenet/ conditioning_referencenet/
    base: Path  # vae/ scheduler/ (+ the SD2.1 text parts fawn ignores)
    image_encoder: Path  # a full CLIPModel (text + vision) + preprocessor_config.json


def tiny_sd21_unet_config() -> dict[str, Any]:
    """SD2.1-768's UNet topology, tiny widths: 3 cross-attention down blocks (2 attention modules each), a plain
    fourth, a cross-attention mid block, a plain first up block then 3 cross-attention up blocks (3 each),
    linear projections, upcast attention, ``sample_size`` 96 (SD2.1-768's config, though the model runs at 512)."""
    return {
        "sample_size": 96,
        "in_channels": 4,
        "out_channels": 4,
        "block_out_channels": (16, 16, 32, 32),
        "layers_per_block": 2,
        "down_block_types": ("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        "up_block_types": ("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
        "cross_attention_dim": SD21_CROSS_DIM,
        "attention_head_dim": (2, 2, 4, 4),
        "use_linear_projection": True,
        "upcast_attention": True,
        "norm_num_groups": 8,
    }


def write_tiny_sd21_download(root: Path, seed: int = 0) -> TinyDownload:
    """Tiny random-init models saved by the stock ``save_pretrained`` in exactly the downloaded layout."""
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

    torch.manual_seed(seed)
    dl = TinyDownload(root / "face-anon-simple", root / "stable-diffusion-2-1", root / "clip-vit-large-patch14")
    for name in ("unet", "referencenet", "conditioning_referencenet"):
        unet: Any = UNet2DConditionModel(**tiny_sd21_unet_config())
        unet.save_pretrained(dl.model / name)
    vae: Any = AutoencoderKL(
        block_out_channels=(8, 8, 16, 16),
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        latent_channels=4, norm_num_groups=8, layers_per_block=1, sample_size=768,
    )
    vae.save_pretrained(dl.base / "vae")
    # SD2.1's scheduler_config.json is a DDIMScheduler config; the authors load it into DDPMScheduler
    scheduler: Any = DDIMScheduler(
        num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
        prediction_type="v_prediction", clip_sample=False, set_alpha_to_one=False, steps_offset=1,
    )
    scheduler.save_pretrained(dl.base / "scheduler")
    clip = CLIPConfig(
        text_config={"hidden_size": 24, "intermediate_size": 37, "num_hidden_layers": 1, "num_attention_heads": 4,
                     "vocab_size": 99, "max_position_embeddings": 16, "bos_token_id": 0, "eos_token_id": 1,
                     "pad_token_id": 1},
        vision_config={"hidden_size": SD21_CROSS_DIM, "intermediate_size": 37, "num_hidden_layers": 2,
                       "num_attention_heads": 4, "image_size": 32, "patch_size": 8},
        projection_dim=24,  # differs from the UNet width, like ViT-L/14's 768 vs 1024: the pooled output is used
    )
    CLIPModel(clip).save_pretrained(dl.image_encoder)
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(dl.image_encoder)
    return dl
