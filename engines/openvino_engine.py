"""OpenVINO backend (``fawn[openvino]``): reads the ONNX file directly.

On x86 CPUs with VNNI, OpenVINO runs the int8 (QDQ) CenterFace ~2-3x faster
than onnxruntime runs the fp32 one (docs/benchmarks.md §8). Floating-point
layers run in fp32 (``INFERENCE_PRECISION_HINT``): OpenVINO would otherwise pick
bf16 on CPUs that have it, which changes scores.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np

from engines import TensorSpec
from streamer.core.errors import EngineError, ModelError

log = logging.getLogger(__name__)

DEVICES = {"cpu": "CPU", "gpu": "GPU", "npu": "NPU", "auto": "AUTO"}


def default_cache_dir() -> Path:
    """Where compiled models are cached (``$FAWN_CACHE`` or ``$XDG_CACHE_HOME/fawn``, then ``openvino/``).

    A cached compile takes ~0.3 s instead of ~1.2 s: most of ``fawn run``'s start-up.
    """
    root = os.environ.get("FAWN_CACHE") or os.path.join(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache", "fawn")
    return Path(root) / "openvino"


def _import_openvino() -> Any:
    try:
        import openvino
    except ImportError as exc:
        raise EngineError("the openvino engine needs OpenVINO: install fawn[openvino] (pip install 'fawn[openvino]')") from exc
    return openvino


def devices() -> list[str]:
    """OpenVINO's device names on this machine (e.g. ``['CPU']``); empty without OpenVINO."""
    try:
        import openvino
    except ImportError:
        return []
    return list(openvino.Core().available_devices)


class OpenVinoEngine:
    """An ONNX model compiled by OpenVINO for ``device`` (``cpu``, or ``gpu``/``npu``/``auto``)."""

    def __init__(
        self, path: Path, device: str = "cpu", threads: int = 0, strict_device: bool = False,
        cache_dir: Path | None = None,
    ) -> None:
        ov = _import_openvino()
        if not path.is_file():
            raise ModelError(f"model file not found: {path}")
        if device not in DEVICES:
            raise EngineError(f"unknown device '{device}' for openvino (valid: {', '.join(DEVICES)})")
        core = ov.Core()
        target = DEVICES[device]
        if target != "AUTO" and target not in core.available_devices:
            raise EngineError(f"OpenVINO has no {target} device here (available: {', '.join(core.available_devices)})")
        config: dict[str, Any] = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32"}
        if target == "CPU":
            config["INFERENCE_NUM_THREADS"] = threads or (os.cpu_count() or 1)
        _enable_cache(core, cache_dir or default_cache_dir())
        try:
            # compiled from the path (not a read model) so that the cache can key on the file
            self._compiled = core.compile_model(str(path), target, config)
        except Exception as exc:  # OpenVINO raises RuntimeError subclasses with long texts
            raise ModelError(f"OpenVINO cannot load {path.name}: {str(exc).splitlines()[0]}") from exc
        self.providers: list[str] = [f"OpenVINO:{target}"]
        self.inputs = [TensorSpec(p.get_any_name(), _shape(p), str(p.get_element_type())) for p in self._compiled.inputs]
        self.outputs = [TensorSpec(p.get_any_name(), _shape(p), str(p.get_element_type())) for p in self._compiled.outputs]
        self._local = threading.local()  # one infer request per calling thread

    def _request(self) -> Any:
        request = getattr(self._local, "request", None)
        if request is None:
            request = self._local.request = self._compiled.create_infer_request()
        return request

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        request = self._request()
        try:
            request.infer(inputs)
            # copies: the request's buffers are reused by the next call
            return {spec.name: np.array(request.get_output_tensor(i).data) for i, spec in enumerate(self.outputs)}
        except Exception as exc:
            raise EngineError(f"openvino run failed: {str(exc).splitlines()[0]}") from exc


def _enable_cache(core: Any, cache_dir: Path) -> None:
    """Cache compiled models in ``cache_dir``; an unwritable place only costs start-up time."""
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        core.set_property({"CACHE_DIR": str(cache_dir)})
    except (OSError, RuntimeError) as exc:
        log.info("OpenVINO model cache off (%s): %s", cache_dir, exc)


def _shape(port: Any) -> tuple[int | str | None, ...]:
    return tuple(d.get_length() if d.is_static else None for d in port.get_partial_shape())
