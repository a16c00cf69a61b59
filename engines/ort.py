"""ONNX Runtime backend. Providers are verified after the session is created."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from engines import TensorSpec
from streamer.core.errors import EngineError, ModelError

log = logging.getLogger(__name__)

PROVIDERS = {
    "cpu": ["CPUExecutionProvider"],
    "cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"],
    "tensorrt": ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
}


class OnnxRuntimeEngine:
    """Runs an ONNX model with an explicit provider list (never ORT's default order)."""

    def __init__(self, path: Path, device: str = "cpu", threads: int = 0, strict_device: bool = False) -> None:
        import onnxruntime as ort

        if not path.is_file():
            raise ModelError(f"model file not found: {path}")
        if device not in PROVIDERS:
            raise EngineError(f"unknown device '{device}' for onnxruntime (valid: {', '.join(PROVIDERS)})")
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        opts.intra_op_num_threads = threads or (os.cpu_count() or 1)
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # no busy-waiting worker threads: on few cores they starve the decode/encode threads
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        wanted = [p for p in PROVIDERS[device] if p in ort.get_available_providers()]
        try:
            self._session = ort.InferenceSession(str(path), sess_options=opts, providers=wanted or ["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise ModelError(f"cannot load {path.name}: {str(exc).splitlines()[0]}") from exc
        self.providers: list[str] = list(self._session.get_providers())
        if PROVIDERS[device][0] not in self.providers:
            message = f"onnxruntime could not use {PROVIDERS[device][0]} for {path.name}; running on {self.providers}"
            if strict_device:
                raise EngineError(message)
            log.warning(message)
        self.inputs = [TensorSpec(i.name, tuple(i.shape), i.type) for i in self._session.get_inputs()]
        self.outputs = [TensorSpec(o.name, tuple(o.shape), o.type) for o in self._session.get_outputs()]

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        names = [o.name for o in self.outputs]
        try:
            values = self._session.run(names, inputs)
        except Exception as exc:
            raise EngineError(f"onnxruntime run failed: {str(exc).splitlines()[0]}") from exc
        return dict(zip(names, values))
