"""Factory: anonymizer by name; an unknown name lists the valid ones."""

from __future__ import annotations

from streamer.core.config import (
    METHODS,
    AnonymizerConfig,
    DiffusionConfig,
    IdentityConfig,
    KSameConfig,
)
from streamer.core.errors import ConfigError
from streamer.stages.anonymize.base import Anonymizer
from streamer.stages.anonymize.filters import BlurAnonymizer, PixelateAnonymizer, SolidAnonymizer


def create_anonymizer(
    cfg: AnonymizerConfig,
    *,
    ksame: KSameConfig | None = None,
    identity: IdentityConfig | None = None,
    diffusion: DiffusionConfig | None = None,
) -> Anonymizer:
    """The anonymizer ``cfg.method`` names. ``ksame`` (gallery folder, k) and ``identity``
    (the embedding model) are used by the ``ksame`` method only."""
    if cfg.method == "blur":
        return BlurAnonymizer(strength=cfg.strength, padding=cfg.padding, feather=cfg.feather, shape=cfg.shape)
    if cfg.method == "pixelate":
        return PixelateAnonymizer(blocks=cfg.blocks, padding=cfg.padding, feather=cfg.feather, shape=cfg.shape)
    if cfg.method == "solid":
        return SolidAnonymizer(color=cfg.color, padding=cfg.padding, feather=cfg.feather, shape=cfg.shape)
    if cfg.method == "ksame":
        from streamer.stages.anonymize.ksame import create_ksame

        return create_ksame(cfg, ksame or KSameConfig(), identity or IdentityConfig())
    if cfg.method == "diffusion":  # the model folder and engines come from ``diffusion``
        from streamer.stages.anonymize.diffusion import create_diffusion_anonymizer

        return create_diffusion_anonymizer(diffusion or DiffusionConfig(), cfg)
    raise ConfigError(f"anonymizer.method: '{cfg.method}' is not valid (choices: {', '.join(METHODS)})")
