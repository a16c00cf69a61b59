"""TensorRT wrapper. Without tensorrt (and a GPU) only the parts that need neither run; the rest is marked gpu."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

import engines
from engines.trt import check_profile
from streamer.core.errors import EngineError, MissingExtraError
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


class _FakeTensor:
    def __init__(self, value: np.ndarray) -> None:
        self.value = np.asarray(value)
        self.shape = self.value.shape

    def to(self, *_: object) -> _FakeTensor:
        return self

    def contiguous(self) -> _FakeTensor:
        return self

    def data_ptr(self) -> int:
        return id(self)

    def record_stream(self, _stream: object) -> None:
        pass

    def cpu(self) -> _FakeTensor:
        return self

    def numpy(self) -> np.ndarray:
        return self.value


class _FakeTorch:
    """Just what ``TensorRTEngine`` calls on torch, on the CPU."""

    float32 = "float32"

    def __init__(self) -> None:
        self.cuda = self
        self.cuda_stream = 0

    def as_tensor(self, value: object) -> _FakeTensor:
        return value if isinstance(value, _FakeTensor) else _FakeTensor(np.asarray(value))

    from_numpy = as_tensor

    def empty(self, shape: tuple[int, ...], **_: object) -> _FakeTensor:
        return _FakeTensor(np.zeros(shape, np.float32))

    def current_stream(self, _device: object) -> _FakeTorch:
        return self

    def synchronize(self) -> None:
        pass


class _FakeContext:
    """One TensorRT execution context: shapes and addresses are its state; ``execute`` reads them.

    The output is the input times two, computed from the *bound* addresses, so a
    caller whose bindings another thread replaced gets someone else's result."""

    def __init__(self, tensors: dict[int, _FakeTensor]) -> None:
        self.tensors, self.bound = tensors, {}
        self.inside, self.overlaps = 0, 0

    def set_input_shape(self, name: str, shape: tuple[int, ...]) -> bool:
        import time

        self.inside += 1
        self.overlaps += self.inside > 1
        self.shape = shape
        time.sleep(0.002)  # widen the window between binding and running
        return True

    def set_tensor_address(self, name: str, address: int) -> None:
        self.bound[name] = address

    def get_tensor_shape(self, name: str) -> tuple[int, ...]:
        return self.shape

    def execute_async_v3(self, _stream: int) -> bool:
        import time

        time.sleep(0.002)
        self.tensors[self.bound["y"]].value[...] = self.tensors[self.bound["x"]].value * 2
        self.inside -= 1
        return True


def test_one_context_is_used_by_one_thread_at_a_time() -> None:
    """A shared embedder is called from several stream threads: results must stay each caller's own."""
    import threading

    from engines.trt import TensorRTEngine

    fake_torch = _FakeTorch()
    tensors: dict[int, _FakeTensor] = {}
    make = fake_torch.as_tensor
    empty = fake_torch.empty

    def tracked_make(value: object) -> _FakeTensor:
        t = make(value)
        tensors[id(t)] = t
        return t

    def tracked_empty(shape: tuple[int, ...], **kw: object) -> _FakeTensor:
        t = empty(shape, **kw)
        tensors[id(t)] = t
        return t

    fake_torch.as_tensor = fake_torch.from_numpy = tracked_make  # type: ignore[method-assign]
    fake_torch.empty = tracked_empty  # type: ignore[method-assign]
    engine = TensorRTEngine.__new__(TensorRTEngine)
    engine._torch, engine.device = fake_torch, "cuda"
    engine._context = context = _FakeContext(tensors)
    engine._engine = type("E", (), {"get_tensor_profile_shape": lambda self, name, i: ((1, 4), None, (8, 4))})()
    engine.inputs = [engines.TensorSpec("x", (None, 4), "float32")]
    engine.outputs = [engines.TensorSpec("y", (None, 4), "float32")]
    engine._lock = threading.Lock()
    wrong: list[int] = []

    def caller(k: int) -> None:
        for _ in range(20):
            x = np.full((2, 4), k, np.float32)
            if not np.array_equal(engine.run({"x": x})["y"], x * 2):
                wrong.append(k)

    threads = [threading.Thread(target=caller, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert context.overlaps == 0 and not wrong, f"{context.overlaps} interleaved calls, wrong results for {wrong}"


def test_onnxruntime_twin_gives_equal_results_under_concurrent_calls() -> None:
    """The ORT engine (the TensorRT engine's CPU twin) called from several threads at once."""
    from concurrent.futures import ThreadPoolExecutor

    engine = engines.create("onnxruntime", engines.builtin_model("dlib-resnet"), threads=1)
    spec = engine.inputs[0]
    rng = np.random.default_rng(0)
    batches = [rng.random((1, *[int(d) for d in spec.shape[1:]]), dtype=np.float32) * 255 for _ in range(6)]
    expected = [engine.run({spec.name: b}) for b in batches]
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda b: engine.run({spec.name: b}), batches * 3))
    for i, out in enumerate(got):
        for name, value in out.items():
            np.testing.assert_allclose(value, expected[i % len(batches)][name], rtol=1e-5, atol=1e-5)
