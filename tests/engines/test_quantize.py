"""The int8 CenterFace: made by scripts/quantize_centerface.py, close to fp32 on real faces."""

import hashlib
import importlib.util
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest

import engines

ROOT = Path(__file__).resolve().parents[2]


def _script() -> object:
    spec = importlib.util.spec_from_file_location("quantize_centerface", ROOT / "scripts" / "quantize_centerface.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_shipped_int8_model_is_the_recorded_one() -> None:
    script = _script()
    digest = hashlib.sha256(engines.builtin_model("centerface-int8").read_bytes()).hexdigest()
    assert digest == script.EXPECTED_SHA256  # type: ignore[attr-defined]


def test_int8_model_is_qdq_per_channel_with_deconvolutions_quantized() -> None:
    model = onnx.load(str(engines.builtin_model("centerface-int8")))
    ops = [n.op_type for n in model.graph.node]
    assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) >= 13
    assert ops.count("ConvTranspose") == 3 and "BatchNormalization" not in ops  # BN folded into them
    producers = {out: n for n in model.graph.node for out in n.output}
    for node in (n for n in model.graph.node if n.op_type == "ConvTranspose"):
        assert producers[node.input[1]].op_type == "DequantizeLinear"  # int8 weights
        axis = next((a.i for a in producers[node.input[1]].attribute if a.name == "axis"), None)
        assert axis == 1  # per output channel of a ConvTranspose ([Cin, Cout, kh, kw])


@pytest.mark.slow
def test_script_reproduces_the_shipped_file(tmp_path: Path) -> None:
    script = _script()
    if {"onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__} != script.EXPECTED:  # type: ignore[attr-defined]
        pytest.skip("the recorded checksum belongs to other onnx/onnxruntime versions")
    out = tmp_path / "int8.onnx"
    digest = script.quantize(engines.builtin_model("centerface"), out)  # type: ignore[attr-defined]
    assert digest == script.EXPECTED_SHA256  # type: ignore[attr-defined]


def test_int8_heatmap_and_boxes_follow_fp32_on_real_faces() -> None:
    from streamer.core.boxes import iou_matrix
    from streamer.io import demo
    from streamer.stages.detect import CenterFaceDetector
    from streamer.tools.stress import stress_frame

    fp32 = CenterFaceDetector(engines.builtin_model("centerface"), "onnxruntime", threads=1)
    int8 = CenterFaceDetector(engines.builtin_model("centerface-int8"), "onnxruntime", threads=1)
    photos = demo.default_photos()
    rng = np.random.default_rng(7)
    checked = 0
    for variant in range(4):
        frame = stress_frame(photos, (640, 480), rng, variant)
        blob = fp32._preprocess(frame).blob
        h32 = fp32.engine.run({fp32._input: blob})[fp32._outputs[0]]
        h8 = int8.engine.run({int8._input: blob})[int8._outputs[0]]
        # the heatmap comes out of the three quantized ConvTranspose layers: same peaks, small error
        assert np.corrcoef(h32.ravel(), h8.ravel())[0, 1] > 0.97
        assert np.abs(h32 - h8).max() < 0.25
        a, b = fp32.detect(frame), int8.detect(frame)
        sure = a.xyxy[a.score > 0.5]
        if len(sure):
            checked += len(sure)
            assert len(b) and (iou_matrix(sure, b.xyxy).max(axis=1) > 0.6).all()
    assert checked >= 4
