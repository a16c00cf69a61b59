"""TensorRT wrapper. Without tensorrt (and a GPU) only the parts that need neither run; the rest is marked gpu."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

import engines
from engines.trt import check_profile
from streamer.errors import EngineError, MissingExtraError
from tests.export.tiny_models import tiny_model_dir  # noqa: F401  (fixture)

HAVE_TRT = importlib.util.find_spec("tensorrt") is not None


def _gpu_reason() -> str | None:
    if not HAVE_TRT:
        return "tensorrt is not installed (pip install tensorrt fails on these machines; see DESIGN.md section 4)"
    try:
        import torch
    except ImportError:
        return "torch is not installed"
    return None if torch.cuda.is_available() else "no CUDA GPU visible"


@pytest.mark.skipif(HAVE_TRT, reason="tensorrt is installed here")
def test_missing_tensorrt_names_the_extra(tmp_path: Path) -> None:
    with pytest.raises(MissingExtraError, match=r"tensorrt is not installed: install fawn\[tensorrt\]"):
        engines.create("tensorrt", tmp_path / "unet.plan")


def test_profile_check_names_the_input() -> None:
    check_profile("sample", (2, 4, 64, 64), (1, 4, 64, 64), (8, 4, 64, 64))
    with pytest.raises(EngineError, match=r"'sample' shape \(9, 4, 64, 64\) is outside the engine's profile"):
        check_profile("sample", (9, 4, 64, 64), (1, 4, 64, 64), (8, 4, 64, 64))
    with pytest.raises(EngineError, match="outside"):
        check_profile("sample", (2, 4, 64), (1, 4, 64, 64), (8, 4, 64, 64))


@pytest.mark.gpu
@pytest.mark.skipif(_gpu_reason() is not None, reason=str(_gpu_reason()))
def test_tensorrt_engines_match_onnxruntime(tiny_model_dir: Path, tmp_path: Path) -> None:  # noqa: F811
    """Build the tiny model's engines with the real TensorRT API and compare with onnxruntime (fp32)."""
    import torch

    from engines.trt import TensorRTEngine, dtype_name
    from export.build import ExportOptions, export_diffusion
    from export.onnx_export import example_inputs

    opts = ExportOptions(out_dir=tmp_path, backend="tensorrt", precision="fp32", max_batch=2)
    built = export_diffusion(tiny_model_dir, opts)
    assert all(a.path.suffix == ".plan" for a in built.values())
    assert not any(a.built for a in export_diffusion(tiny_model_dir, opts).values())  # cached, timing cache kept
    assert (tmp_path / "timing.cache").stat().st_size > 0
    onnx = export_diffusion(tiny_model_dir, ExportOptions(out_dir=tmp_path, backend="onnx", precision="fp32", max_batch=2))
    for name, art in built.items():
        trt_engine = TensorRTEngine(art.path)
        ort_engine = engines.create("onnxruntime", onnx[name].path)
        assert [s.name for s in trt_engine.inputs] == [t.name for t in art.spec.inputs]
        for which in (0, 2):
            args = example_inputs(art.spec, which)
            feed = {t.name: a.numpy() for t, a in zip(art.spec.inputs, args)}
            a, b = trt_engine.run(feed), ort_engine.run(feed)
            diff = max(float(np.abs(a[k] - b[k]).max()) for k in b)
            print(f"tensorrt vs onnxruntime {name} batch {which}: {diff:.2e}")
            assert diff < 1e-2
        with pytest.raises(EngineError, match="outside the engine's profile"):
            big = example_inputs(art.spec, 2)
            trt_engine.run_torch({t.name: torch.cat([a, a]).cuda() for t, a in zip(art.spec.inputs, big)})
    import tensorrt as trt

    assert dtype_name(trt, trt.DataType.HALF) == "float16"


@pytest.mark.gpu
@pytest.mark.skipif(_gpu_reason() is not None, reason=str(_gpu_reason()))
def test_detector_engine_runs_through_the_detector(tmp_path: Path) -> None:
    from export.build import ExportOptions, export_existing

    opts = ExportOptions(out_dir=tmp_path, backend="tensorrt", precision="fp16")
    art = export_existing(engines.builtin_model("centerface"), "detector", opts, {"B": (1, 1, 1), "H": (32, 480, 640), "W": (32, 640, 640)})
    engine = engines.create("tensorrt", art.path)
    out = engine.run({engine.inputs[0].name: np.zeros((1, 3, 480, 640), np.float32)})
    assert [v.shape[1] for v in out.values()] == [1, 2, 2, 10]
