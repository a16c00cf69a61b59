"""Export parity: each of the six tiny networks, ONNX (onnxruntime CPU) vs torch, at the smallest and largest batch.

The max abs differences are printed (run with ``-s``) and asserted: fp32 <= 1e-4.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="needs fawn[diffusion]")
pytest.importorskip("diffusers", reason="needs fawn[diffusion]")

import engines  # noqa: E402
from export.build import ExportOptions, export_diffusion  # noqa: E402
from export.onnx_export import example_inputs  # noqa: E402
from streamer.models.diffusion.loader import load_model  # noqa: E402
from streamer.models.diffusion.modules import build_modules  # noqa: E402
from streamer.models.diffusion.spec import DIFFUSION_COMPONENTS, diffusion_specs  # noqa: E402

FP32_TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def torch_modules(tiny_model_dir: Path) -> dict:
    return build_modules(load_model(tiny_model_dir), 64)


def _max_diff(module: torch.nn.Module, engine: engines.Engine, spec: object, which: int) -> float:
    args = example_inputs(spec, which, seed=11 + which)  # type: ignore[arg-type]
    with torch.no_grad():
        ref = module(*args)
    ref = ref if isinstance(ref, tuple) else (ref,)
    out = engine.run({t.name: a.numpy() for t, a in zip(spec.inputs, args)})  # type: ignore[attr-defined]
    names = [t.name for t in spec.outputs]  # type: ignore[attr-defined]
    return max(float(np.abs(out[n] - r.numpy()).max()) for n, r in zip(names, ref))


@pytest.mark.parametrize("component", DIFFUSION_COMPONENTS)
def test_onnx_matches_torch_fp32(component: str, fp32_export: dict, torch_modules: dict) -> None:
    art = fp32_export[component]
    engine = engines.create("onnxruntime", art.path, device="cpu", threads=1)
    assert [t.name for t in engine.inputs] == [t.name for t in art.spec.inputs]
    assert [t.name for t in engine.outputs] == [t.name for t in art.spec.outputs]
    diffs = [_max_diff(torch_modules[component], engine, art.spec, which) for which in (0, 2)]
    print(f"parity {component:<26} fp32 max|onnx-torch| batch min {diffs[0]:.2e}, batch max {diffs[1]:.2e}")
    assert max(diffs) <= FP32_TOLERANCE


def test_fp16_export_runs_close_to_torch(tiny_model_dir: Path, tmp_path: Path) -> None:
    """fp16: the ONNX is typed float16 (what TensorRT 11 needs); its output stays near the fp32 torch output."""
    model = load_model(tiny_model_dir)
    spec32 = diffusion_specs(model.info, 64, 1, "fp32")["vae_decoder"]
    module = build_modules(model, 64)["vae_decoder"]
    opts = ExportOptions(out_dir=tmp_path, backend="onnx", precision="fp16", max_batch=1, components=("vae_decoder",))
    arts = export_diffusion(tiny_model_dir, opts)
    assert list(arts) == ["vae_decoder"]
    engine = engines.create("onnxruntime", arts["vae_decoder"].path, device="cpu", threads=1)
    assert "float16" in engine.inputs[0].dtype
    args = example_inputs(spec32, 0, seed=5)
    with torch.no_grad():
        ref = module(*args).numpy()
    out = engine.run({"latent": args[0].numpy().astype(np.float16)})["image"].astype(np.float32)
    diff = float(np.abs(out - ref).max())
    print(f"parity vae_decoder fp16 max|onnx-torch32| {diff:.2e}")
    assert diff < 2e-2


SD21_RES = 128


@pytest.fixture(scope="module")
def sd21_export(tiny_download: object, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, dict]:
    """The SD2.1-topology tiny model (three downloaded folders): torch modules and fp32 ONNX of the routed networks."""
    from streamer.models.diffusion.info import read_info

    dl = tiny_download
    info = read_info(dl.model, dl.base, dl.image_encoder)  # type: ignore[attr-defined]
    parts = ("referencenet", "unet")
    opts = ExportOptions(out_dir=tmp_path_factory.mktemp("sd21"), precision="fp32", max_batch=2, resolution=SD21_RES, components=parts)
    return build_modules(load_model(info), SD21_RES), export_diffusion(info, opts)


@pytest.mark.parametrize("component", ["referencenet", "unet"])
def test_sd21_topology_onnx_matches_torch_with_block_routing(component: str, sd21_export: tuple[dict, dict]) -> None:
    """SD2.1's 16 self-attention layers: the exported graphs carry the 7 routed reference states and match torch."""
    modules, arts = sd21_export
    art = arts[component]
    refs = [t for t in (art.spec.outputs if component == "referencenet" else art.spec.inputs) if t.name.startswith("ref_")]
    assert len(refs) == 7
    assert all(layer["name"].split(".")[2:4] == ["attentions", "0"] or layer["name"].startswith("mid_block")
               for layer in art.spec.meta["ref_layers"])
    engine = engines.create("onnxruntime", art.path, device="cpu", threads=1)
    diffs = [_max_diff(modules[component], engine, art.spec, which) for which in (0, 2)]
    print(f"parity sd21 {component:<12} fp32 max|onnx-torch| {max(diffs):.2e}")
    assert max(diffs) <= FP32_TOLERANCE
