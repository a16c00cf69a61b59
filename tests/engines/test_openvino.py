"""The OpenVINO engine against onnxruntime on real faces (fawn[openvino])."""

import sys
from pathlib import Path

import numpy as np
import pytest

import engines
from streamer.core.errors import EngineError
from streamer.io.demo import default_photos

pytest.importorskip("openvino")


def _blob() -> np.ndarray:
    """A real photo (grace_hopper, 512x600 -> 480x608) as CenterFace input."""
    image = default_photos()[1].image[:480, :608]
    return np.ascontiguousarray(image.transpose(2, 0, 1)[::-1][None], np.float32)


@pytest.mark.parametrize("model", ["centerface", "centerface-int8"])
def test_openvino_matches_onnxruntime_on_a_real_face(model: str) -> None:
    path = engines.builtin_model(model)
    ov = engines.create("openvino", path, threads=1)
    ort = engines.create("onnxruntime", path, threads=1)
    blob = _blob()
    a, b = ov.run({ov.inputs[0].name: blob}), ort.run({ort.inputs[0].name: blob})
    heat_ov, heat_ort = a[ov.outputs[0].name], b[ort.outputs[0].name]
    assert heat_ort.max() > 0.7  # the face is there
    tolerance = 1e-3 if model == "centerface" else 0.05  # int8 kernels round differently
    assert np.abs(heat_ov - heat_ort).max() < tolerance
    peak_ov, peak_ort = np.unravel_index(heat_ov.argmax(), heat_ov.shape), np.unravel_index(heat_ort.argmax(), heat_ort.shape)
    assert peak_ov == peak_ort
    assert ov.providers == ["OpenVINO:CPU"]


def test_openvino_rejects_an_unknown_device() -> None:
    with pytest.raises(EngineError, match="unknown device 'cuda' for openvino \\(valid: cpu, gpu, npu, auto\\)"):
        engines.create("openvino", engines.builtin_model("centerface"), device="cuda")


def test_missing_openvino_says_which_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "openvino", None)
    with pytest.raises(EngineError, match=r"install fawn\[openvino\]"):
        engines.create("openvino", engines.builtin_model("centerface"))


def test_doctor_lists_openvino_devices_and_the_default_detector() -> None:
    from streamer.tools.doctor import format_report, report

    data = report()
    assert data["openvino_devices"]["CPU"].startswith("ok (OpenVINO:CPU")
    assert data["default_detector"].startswith("centerface_int8.onnx on openvino")
    assert "openvino_devices:" in format_report(data)


def test_compiled_model_is_cached_where_asked(tmp_path: Path) -> None:
    from engines.openvino_engine import OpenVinoEngine

    engine = OpenVinoEngine(engines.builtin_model("centerface-int8"), threads=1, cache_dir=tmp_path / "ov")
    engine.run({engine.inputs[0].name: np.zeros((1, 3, 64, 64), np.float32)})  # compiled for its first shape
    assert any((tmp_path / "ov").glob("*.blob"))
    assert [p.name for p in (tmp_path / "ov").glob("*.xml")] == [p.name for p in (tmp_path / "ov").glob("*1x3x64x64.xml")] != []
    again = OpenVinoEngine(engines.builtin_model("centerface-int8"), threads=1, cache_dir=tmp_path / "ov")
    out = again.run({again.inputs[0].name: np.zeros((1, 3, 64, 64), np.float32)})  # from the cached static model
    assert out[again.outputs[0].name].shape == (1, 1, 16, 16)


def test_first_shapes_run_static_and_others_dynamic_with_the_same_results() -> None:
    from engines.openvino_engine import STATIC_SHAPES, OpenVinoEngine

    engine = OpenVinoEngine(engines.builtin_model("centerface-int8"), threads=1)
    name = engine.inputs[0].name
    frame = np.random.default_rng(0).uniform(0, 255, (1, 3, 96, 128)).astype(np.float32)
    first = engine.run({name: frame})
    for side in range(STATIC_SHAPES - 1):  # the next shapes (a region crop...) are static too
        engine.run({name: np.zeros((1, 3, 32 + 32 * side, 32), np.float32)})
    other = engine.run({name: np.zeros((2, 3, 64, 64), np.float32)})  # one shape too many: the dynamic compile
    again = engine.run({name: frame})
    assert list(engine._static)[0] == (1, 3, 96, 128) and len(engine._static) == STATIC_SHAPES
    assert engine._dynamic is not None and (2, 3, 64, 64) not in engine._static
    assert other[engine.outputs[0].name].shape[:2] == (2, 1)
    for spec in engine.outputs:
        np.testing.assert_allclose(first[spec.name], again[spec.name], atol=1e-6)
    # a shape compiled static and the same shape on the dynamic compile give the same heatmap
    dynamic = engine._dynamic.create_infer_request()
    dynamic.infer({name: frame})
    np.testing.assert_allclose(np.array(dynamic.get_output_tensor(0).data), first[engine.outputs[0].name], atol=1e-4)


def test_loading_the_engine_skips_openvinos_model_converter() -> None:
    """``import openvino`` would also import its model converter (``openvino.tools.ovc``: usage
    telemetry, ~50 ms of start-up); fawn reads ONNX and never needs it, and it still imports later."""
    import subprocess
    import sys

    code = ("import sys, engines; from engines.openvino_engine import OpenVinoEngine; "
            "OpenVinoEngine(engines.builtin_model('centerface-int8'), threads=1); "
            "print('ovc' if 'openvino.tools.ovc' in sys.modules else 'no-ovc'); "
            "from openvino.tools.ovc import convert_model; print('later', callable(convert_model))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["no-ovc", "later", "True"]


def test_warm_compiles_the_frame_and_region_shapes_in_the_background() -> None:
    """``fawn run`` asks the detector to compile for the stream's size as soon as the source is
    open: the frame shape the detector will feed and the region crop's are compiled static."""
    from streamer.stages.detect import REGION_INPUT, CenterFaceDetector

    detector = CenterFaceDetector(engines.builtin_model("centerface-int8"), "openvino", threads=1, edge_pad=0.1)
    thread = detector.warm(480, 640)
    assert thread is not None
    detector.close()  # waits for the compile: a process exiting mid-compile aborts (std::terminate)
    assert not thread.is_alive()
    blob = detector._preprocess(np.zeros((480, 640, 3), np.uint8)).blob
    assert set(detector.engine._static) == {blob.shape, (1, 3, REGION_INPUT, REGION_INPUT)}  # type: ignore[attr-defined]
