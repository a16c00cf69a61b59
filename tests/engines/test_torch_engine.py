"""The torch backend behind engines.create: a model folder component with the same I/O names as its ONNX."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="needs fawn[diffusion]")
pytest.importorskip("diffusers", reason="needs fawn[diffusion]")

import engines  # noqa: E402
from engines.torch_engine import TorchEngine  # noqa: E402
from streamer.core.errors import EngineError, ModelError  # noqa: E402
from streamer.models.diffusion.components import load_component  # noqa: E402
from streamer.models.diffusion.info import read_info  # noqa: E402
from streamer.models.diffusion.spec import diffusion_specs  # noqa: E402
from tests.export.tiny_models import tiny_model_dir  # noqa: E402,F401


def test_create_loads_a_component_from_the_folder(tiny_model_dir: Path) -> None:  # noqa: F811
    engine = engines.create("torch", tiny_model_dir, component="vae_decoder", loader=load_component, threads=1)
    assert isinstance(engine, engines.Engine)
    assert [t.name for t in engine.inputs] == ["latent"] and engine.inputs[0].shape == (None, 4, 16, 16)
    assert engine.providers == ["torch:cpu"]
    out = engine.run({"latent": np.zeros((2, 4, 16, 16), np.float32)})
    assert out["image"].shape == (2, 3, 64, 64) and out["image"].dtype == np.float32
    assert float(np.abs(out["image"]).max()) <= 1.0


def test_run_torch_keeps_tensors_and_checks_names(tiny_model_dir: Path) -> None:  # noqa: F811
    engine = engines.create("torch", tiny_model_dir, component="image_encoder", loader=load_component, threads=1)
    out = engine.run_torch({"pixel_values": torch.zeros(1, 3, 32, 32)})  # type: ignore[attr-defined]
    assert isinstance(out["image_embeds"], torch.Tensor) and out["image_embeds"].shape == (1, 32)
    with pytest.raises(EngineError, match="missing input 'pixel_values'"):
        engine.run({"image": np.zeros((1, 3, 32, 32), np.float32)})


def test_wraps_a_given_module(tiny_model_dir: Path) -> None:  # noqa: F811
    spec = diffusion_specs(read_info(tiny_model_dir), 64, 1, "fp32")["image_encoder"]
    engine = TorchEngine(tiny_model_dir, module=torch.nn.Identity(), spec=spec)
    x = np.ones((1, 3, 32, 32), np.float32)
    assert np.array_equal(engine.run({"pixel_values": x})["image_embeds"], x)


def test_errors(tiny_model_dir: Path) -> None:  # noqa: F811
    with pytest.raises(ModelError, match="component 'text_encoder' is not valid"):
        engines.create("torch", tiny_model_dir, component="text_encoder", loader=load_component)
    with pytest.raises(EngineError, match="unknown device 'tpu'"):
        engines.create("torch", tiny_model_dir, component="unet", loader=load_component, device="tpu")
    if not torch.cuda.is_available():
        with pytest.raises(EngineError, match="no CUDA GPU"):
            engines.create("torch", tiny_model_dir, component="unet", loader=load_component, device="cuda")
