"""Factory: anonymizer by name; an unknown name lists the valid ones."""

from __future__ import annotations

from streamer.anonymize.base import Anonymizer
from streamer.anonymize.filters import BlurAnonymizer, PixelateAnonymizer, SolidAnonymizer
from streamer.config import METHODS, AnonymizerConfig
from streamer.errors import ConfigError


def create_anonymizer(cfg: AnonymizerConfig) -> Anonymizer:
    if cfg.method == "blur":
        return BlurAnonymizer(strength=cfg.strength, padding=cfg.padding, feather=cfg.feather, shape=cfg.shape)
    if cfg.method == "pixelate":
        return PixelateAnonymizer(blocks=cfg.blocks, padding=cfg.padding, feather=cfg.feather, shape=cfg.shape)
    if cfg.method == "solid":
        return SolidAnonymizer(color=cfg.color, padding=cfg.padding, feather=cfg.feather, shape=cfg.shape)
    raise ConfigError(f"anonymizer.method: '{cfg.method}' is not valid (choices: {', '.join(METHODS)})")
