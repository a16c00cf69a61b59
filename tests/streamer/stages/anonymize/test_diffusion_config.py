"""``diffusion:`` config keys, ``fawn run`` options, and the errors of the diffusion factory."""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

import pytest

from streamer.cli.diffusion import DIFFUSION_RUN_OPTIONS, add_diffusion_run_args
from streamer.core.config import AnonymizerConfig, DiffusionConfig, load_config
from streamer.core.errors import ConfigError, EngineError
from streamer.stages.anonymize import create_anonymizer


def test_yaml_keys_load(tmp_path: Path) -> None:
    path = tmp_path / "diffusion.yaml"
    path.write_text(
        "anonymizer:\n  method: diffusion\n"
        "diffusion:\n  model: /models/face_anon_simple\n  guidance_scale: 3.5\n  num_inference_steps: 12\n"
        "  scheduler: ddim\n  resolution: 256\n  seed: 7\n  backend: onnxruntime\n  keyframe_interval: 4\n"
    )
    cfg = load_config(path)
    d = cfg.diffusion
    assert cfg.anonymizer.method == "diffusion"
    assert (d.model, d.guidance_scale, d.num_inference_steps, d.scheduler, d.resolution, d.seed) == (
        "/models/face_anon_simple", 3.5, 12, "ddim", 256, 7,
    )
    assert d.backend == "onnxruntime" and d.keyframe_interval == 4
    assert d.anonymization_degree == 1.25  # the paper's default


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("diffusion.scheduler", "euler_a", "choices: dpmsolver\\+\\+, ddim, ddpm"),
        ("diffusion.backend", "openvino", "choices: onnxruntime, tensorrt, torch"),
        ("diffusion.guidance_scale", 0.5, "must be >= 1"),
        ("diffusion.keyframe_interval", 0, "must be >= 1"),
        ("diffusion.unknown", 1, "unknown key 'diffusion.unknown'"),
    ],
)
def test_bad_values_are_config_errors(key: str, value: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(None, {key: value})


def test_run_options_map_to_config_keys() -> None:
    parser = argparse.ArgumentParser()
    add_diffusion_run_args(parser)
    args = parser.parse_args(["--diffusion-model", "/m", "--diffusion-steps", "4", "--guidance-scale", "2.5", "--diffusion-backend", "torch"])
    overrides = {key: getattr(args, dest) for dest, key in DIFFUSION_RUN_OPTIONS.items() if getattr(args, dest) is not None}
    assert overrides == {"diffusion.model": "/m", "diffusion.num_inference_steps": 4, "diffusion.guidance_scale": 2.5, "diffusion.backend": "torch"}
    cfg = load_config(None, overrides)
    assert cfg.diffusion.model == "/m" and cfg.diffusion.num_inference_steps == 4


def test_method_without_model_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="diffusion.model: a model folder is required"):
        create_anonymizer(AnonymizerConfig(method="diffusion"), diffusion=DiffusionConfig())


@pytest.mark.skipif(importlib.util.find_spec("diffusers") is None, reason="needs fawn[diffusion]")
@pytest.mark.skipif(importlib.util.find_spec("tensorrt") is not None, reason="tensorrt is installed here")
def test_unavailable_backend_lists_the_available_ones(tiny_model_dir: Path) -> None:
    with pytest.raises(EngineError, match=r"diffusion.backend 'tensorrt' is not available here: .*\(available: torch, onnxruntime\)"):
        create_anonymizer(AnonymizerConfig(method="diffusion"), diffusion=DiffusionConfig(model=str(tiny_model_dir), backend="tensorrt"))


@pytest.mark.skipif(importlib.util.find_spec("diffusers") is None, reason="needs fawn[diffusion]")
def test_bad_resolution_for_the_model(tiny_model_dir: Path) -> None:
    from streamer.core.errors import ModelError

    with pytest.raises(ModelError, match="must be a positive multiple of 8"):
        create_anonymizer(AnonymizerConfig(method="diffusion"), diffusion=DiffusionConfig(model=str(tiny_model_dir), resolution=60))


@pytest.mark.skipif(importlib.util.find_spec("diffusers") is None, reason="needs fawn[diffusion]")
def test_onnxruntime_backend_runs_the_exported_engines(tiny_model_dir: Path, fp32_export: dict) -> None:
    """With the engines already in engine_dir (same model, shapes, precision) nothing is exported again."""
    engine_dir = next(iter(fp32_export.values())).path.parent.parent
    before = sorted(p.name for p in engine_dir.iterdir())
    cfg = DiffusionConfig(
        model=str(tiny_model_dir), backend="onnxruntime", device="cpu", engine_dir=str(engine_dir), threads=1, max_batch=2
    )
    anon = create_anonymizer(AnonymizerConfig(method="diffusion"), diffusion=cfg)
    try:
        assert sorted(p.name for p in engine_dir.iterdir()) == before
        engines = anon.worker.generator.engines.engines  # type: ignore[attr-defined]
        assert set(engines) == {"image_encoder", "vae_encoder", "vae_decoder", "referencenet", "conditioning_referencenet", "unet"}
        assert all(e.providers == ["CPUExecutionProvider"] for e in engines.values())
    finally:
        anon.close()  # type: ignore[attr-defined]


def test_three_download_folders_from_flags_and_yaml(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    add_diffusion_run_args(parser)
    args = parser.parse_args(["--diffusion-model", "/m/fas", "--diffusion-base", "/m/sd21", "--diffusion-image-encoder", "/m/clip",
                              "--diffusion-scheduler", "ddpm"])
    overrides = {key: getattr(args, dest) for dest, key in DIFFUSION_RUN_OPTIONS.items() if getattr(args, dest) is not None}
    d = load_config(None, overrides).diffusion
    assert (d.model, d.base_model, d.image_encoder, d.scheduler) == ("/m/fas", "/m/sd21", "/m/clip", "ddpm")
    path = tmp_path / "c.yaml"
    path.write_text("diffusion:\n  model: /a\n  base_model: /b\n  image_encoder: /c\n")
    d = load_config(path).diffusion
    assert (d.model, d.base_model, d.image_encoder) == ("/a", "/b", "/c")
