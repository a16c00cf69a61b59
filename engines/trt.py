"""TensorRT backend (TensorRT 10/11 API): named I/O tensors, explicit shapes, ``execute_async_v3``.

Buffers are torch CUDA tensors: ``run_torch`` binds the caller's tensors
directly (``set_tensor_address``) and enqueues on torch's current stream, so a
sampler that keeps its tensors on the GPU never copies; ``run`` takes and
returns numpy arrays (one host<->device copy each way). Shapes are checked
against the engine's optimization profile before they are set, so a batch
too large for the engine is a clear :class:`EngineError`.

One execution context holds the bound shapes and addresses, so calls are
serialized by a lock: a shared embedder is called from several stream threads,
and two interleaved calls would run with each other's buffers.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

import numpy as np

from engines import TensorSpec
from streamer.core.errors import EngineError, MissingExtraError, ModelError

log = logging.getLogger(__name__)

# TensorRT DataType member -> torch dtype name
DTYPES = {
    "FLOAT": "float32",
    "HALF": "float16",
    "BF16": "bfloat16",
    "INT32": "int32",
    "INT64": "int64",
    "INT8": "int8",
    "UINT8": "uint8",
    "BOOL": "bool",
}


def _imports() -> tuple[Any, Any]:
    try:
        import tensorrt as trt
    except ImportError:
        raise MissingExtraError("tensorrt", "tensorrt") from None
    try:
        import torch
    except ImportError:
        raise MissingExtraError("torch", "diffusion") from None
    return trt, torch


def dtype_name(trt: Any, dtype: Any) -> str:
    """The torch/numpy dtype name of a TensorRT ``DataType``."""
    for member, name in DTYPES.items():
        if getattr(trt.DataType, member, None) == dtype:
            return name
    raise EngineError(f"TensorRT tensor type {dtype} is not supported by fawn")


def check_profile(name: str, shape: tuple[int, ...], lo: tuple[int, ...], hi: tuple[int, ...]) -> None:
    """EngineError unless ``lo <= shape <= hi`` dimension by dimension."""
    if len(shape) != len(lo) or any(s < a or s > b for s, a, b in zip(shape, lo, hi)):
        raise EngineError(f"input '{name}' shape {shape} is outside the engine's profile {lo}..{hi} (rebuild with fawn export)")


class TensorRTEngine:
    """A deserialized TensorRT engine with one execution context (optimization profile 0), one call at a time."""

    def __init__(self, path: Path, device: str = "cuda", threads: int = 0, strict_device: bool = True, **_: Any) -> None:
        trt, torch = _imports()
        self._trt, self._torch = trt, torch
        if not torch.cuda.is_available():
            raise EngineError("the tensorrt engine needs a CUDA GPU and torch sees none")
        if not Path(path).is_file():
            raise ModelError(f"TensorRT engine file not found: {path}")
        self.device = torch.device("cuda" if device in ("cuda", "tensorrt", "cpu") else device)
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        self._engine = self._runtime.deserialize_cuda_engine(Path(path).read_bytes())
        if self._engine is None:
            raise ModelError(f"cannot deserialize {Path(path).name}: built by another TensorRT version or GPU? (rebuild with fawn export)")
        self._context = self._engine.create_execution_context()
        self._lock = threading.Lock()  # the context's bindings are shared state: one caller at a time
        self.inputs, self.outputs = self._io_specs()
        self.providers = [f"TensorRT {trt.__version__}"]

    def _io_specs(self) -> tuple[list[TensorSpec], list[TensorSpec]]:
        trt, engine = self._trt, self._engine
        inputs: list[TensorSpec] = []
        outputs: list[TensorSpec] = []
        for i in range(engine.num_io_tensors):
            name = engine.get_tensor_name(i)
            shape = tuple(d if d >= 0 else None for d in engine.get_tensor_shape(name))
            spec = TensorSpec(name, shape, dtype_name(trt, engine.get_tensor_dtype(name)))
            (inputs if engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT else outputs).append(spec)
        return inputs, outputs

    def run_torch(self, inputs: dict[str, Any]) -> dict[str, Any]:
        """Enqueue on torch's current CUDA stream with the given tensors; outputs are new CUDA tensors."""
        with self._lock:
            return self._enqueue(inputs)

    def _enqueue(self, inputs: dict[str, Any]) -> dict[str, Any]:
        torch, ctx = self._torch, self._context
        keep = []
        for spec in self.inputs:
            if spec.name not in inputs:
                raise EngineError(f"missing input '{spec.name}' (engine inputs: {[s.name for s in self.inputs]})")
            t = torch.as_tensor(inputs[spec.name]).to(self.device, getattr(torch, spec.dtype)).contiguous()
            lo, _, hi = self._engine.get_tensor_profile_shape(spec.name, 0)
            check_profile(spec.name, tuple(t.shape), tuple(lo), tuple(hi))
            if not ctx.set_input_shape(spec.name, tuple(t.shape)):
                raise EngineError(f"TensorRT rejected shape {tuple(t.shape)} for '{spec.name}'")
            ctx.set_tensor_address(spec.name, t.data_ptr())
            keep.append(t)
        outputs = {}
        for spec in self.outputs:
            shape = tuple(ctx.get_tensor_shape(spec.name))
            if any(d < 0 for d in shape):
                raise EngineError(f"output '{spec.name}' shape {shape} is unresolved after setting the inputs")
            out = torch.empty(shape, dtype=getattr(torch, spec.dtype), device=self.device)
            ctx.set_tensor_address(spec.name, out.data_ptr())
            outputs[spec.name] = out
        stream = torch.cuda.current_stream(self.device)
        if not ctx.execute_async_v3(stream.cuda_stream):
            raise EngineError("TensorRT execute_async_v3 failed (see the TensorRT log)")
        for t in keep:  # inputs live until the enqueued work has used them
            t.record_stream(stream)
        return outputs

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        torch = self._torch
        with self._lock:  # the whole round trip: copies in, enqueue, wait, copies out
            out = self._enqueue({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in inputs.items()})
            torch.cuda.current_stream(self.device).synchronize()
            return {k: v.cpu().numpy() for k, v in out.items()}
