"""A tiny random-init model in the face_anon_simple folder layout, for tests, benchmarks and smoke runs.

``write_tiny_model(path)`` saves, with each library's ``save_pretrained``:
``unet/``, ``referencenet/``, ``conditioning_referencenet/`` (UNet2DConditionModel,
cross-attention width = the CLIP projection), ``vae/`` (AutoencoderKL, scale 4),
``image_encoder/`` (CLIPVisionModelWithProjection) and ``scheduler/`` (DDPM,
v-prediction, like SD2.1). Native resolution: 16 latent x 4 = 64 px. It is
loaded back through the same strict loader as a real folder. Its faces are
noise-like patterns: it has the real model's structure, not its skill.
"""

from __future__ import annotations

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
