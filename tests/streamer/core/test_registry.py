"""One registry per kind: the config, the factories and their "valid names" errors read the same names."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import pytest

import engines
from streamer.core import registry
from streamer.core.config import AnonymizerConfig, DetectorConfig, IdentityConfig, load_config
from streamer.core.errors import ConfigError, EngineError
from streamer.stages.anonymize import create_anonymizer
from streamer.stages.detect import create_detector
from streamer.stages.identity.embed import create_embedder


def _bypass(cfg: Any, key: str, value: str) -> Any:
    """A config holding a name its own validation would refuse (to reach the factory's error)."""
    cfg = dataclasses.replace(cfg)
    object.__setattr__(cfg, key, value)
    return cfg


@pytest.mark.parametrize(
    ("config", "key", "names", "factory"),
    [
        (AnonymizerConfig, "method", registry.ANONYMIZERS, create_anonymizer),
        (DetectorConfig, "backend", registry.DETECTORS, create_detector),
        (IdentityConfig, "model", registry.EMBEDDERS, create_embedder),
    ],
)
def test_config_and_factory_list_the_registry_names(
    config: Any, key: str, names: tuple[str, ...], factory: Callable[[Any], Any]
) -> None:
    section = {AnonymizerConfig: "anonymizer", DetectorConfig: "detector", IdentityConfig: "identity"}[config]
    with pytest.raises(ConfigError) as from_config:
        load_config(None, {f"{section}.{key}": "nope"})
    with pytest.raises(ConfigError) as from_factory:
        factory(_bypass(config(), key, "nope"))
    for text in (str(from_config.value), str(from_factory.value)):
        assert ", ".join(names) in text, text


def test_engines_are_the_registry_backends() -> None:
    assert engines.available() == sorted(registry.ENGINE_BACKENDS)
    with pytest.raises(EngineError, match=", ".join(sorted(registry.ENGINE_BACKENDS))):
        engines.create("nope", "model.onnx")
    assert set(registry.MODEL_ENGINES) <= set(registry.ENGINE_BACKENDS)
    assert set(registry.DETECTOR_ENGINES) == {"auto", *registry.ENGINE_BACKENDS}
