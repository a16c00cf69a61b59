from pathlib import Path

import numpy as np
import pytest

import engines
from streamer.core.errors import EngineError, ModelError


def test_unknown_engine_lists_valid_kinds() -> None:
    with pytest.raises(EngineError, match="unknown engine 'tensorflow' \\(valid: onnxruntime, openvino, tensorrt, torch\\)"):
        engines.create("tensorflow", "x.onnx")


def test_builtin_models_ship_with_the_package() -> None:
    for name in engines.BUILTIN_MODELS:
        assert engines.builtin_model(name).stat().st_size > 1_000_000


def test_unknown_builtin_model() -> None:
    with pytest.raises(ModelError, match="built-in: centerface, centerface-int8, dlib-resnet"):
        engines.builtin_model("yolo")


def test_onnxruntime_engine_runs_centerface_on_cpu() -> None:
    engine = engines.create("onnxruntime", engines.builtin_model("centerface"), device="cpu", threads=1)
    assert engine.providers[0] == "CPUExecutionProvider"
    out = engine.run({engine.inputs[0].name: np.zeros((1, 3, 64, 64), np.float32)})
    assert [v.shape[1] for v in out.values()] == [1, 2, 2, 10]


def test_missing_model_file(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="model file not found"):
        engines.create("onnxruntime", tmp_path / "none.onnx")


def test_not_a_model(tmp_path: Path) -> None:
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model")
    with pytest.raises(ModelError, match="cannot load junk.onnx"):
        engines.create("onnxruntime", junk)
