"""OpenVINO backend (``fawn[openvino]``): reads the ONNX file directly.

On x86 CPUs with VNNI, OpenVINO runs the int8 (QDQ) CenterFace ~2-3x faster
than onnxruntime runs the fp32 one (docs/benchmarks.md §8). Floating-point
layers run in fp32 (``INFERENCE_PRECISION_HINT``): OpenVINO would otherwise pick
bf16 on CPUs that have it, which changes scores.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sys
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
        return _import_runtime()
    except ImportError as exc:
        raise EngineError("the openvino engine needs OpenVINO: install fawn[openvino] (pip install 'fawn[openvino]')") from exc


def _import_runtime() -> Any:
    """``import openvino`` without its model converter: ``openvino/__init__`` imports
    ``openvino.tools.ovc`` (``convert_model``, which fawn never uses: it reads ONNX), whose import
    starts OpenVINO's usage telemetry and costs ~50 ms of ``fawn run``'s start-up. Hidden for this
    import only; ``import openvino.tools.ovc`` works as usual afterwards."""
    if "openvino" in sys.modules or "openvino.tools.ovc" in sys.modules:
        import openvino

        return openvino
    sys.modules["openvino.tools.ovc"] = None  # type: ignore[assignment]  # makes its import fail: openvino skips it
    try:
        import openvino
    finally:
        if sys.modules.get("openvino.tools.ovc", 0) is None:
            del sys.modules["openvino.tools.ovc"]
    return openvino


def devices() -> list[str]:
    """OpenVINO's device names on this machine (e.g. ``['CPU']``); empty without OpenVINO."""
    try:
        openvino = _import_runtime()
    except ImportError:
        return []
    return list(openvino.Core().available_devices)


STATIC_SHAPES = 3  # input shapes compiled static (the rest share a dynamic compile)


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
        self._cache_dir = cache_dir or default_cache_dir()
        _enable_cache(core, self._cache_dir)
        self._core, self._target, self._config, self._path = core, target, config, path
        try:
            # read now (a bad file fails at load); compiled on the first run, for that input's shape
            model = core.read_model(str(path))
        except Exception as exc:  # OpenVINO raises RuntimeError subclasses with long texts
            raise ModelError(f"OpenVINO cannot load {path.name}: {str(exc).splitlines()[0]}") from exc
        self.providers: list[str] = [f"OpenVINO:{target}"]
        self.inputs = [TensorSpec(p.get_any_name(), _shape(p), str(p.get_element_type())) for p in model.inputs]
        self.outputs = [TensorSpec(p.get_any_name(), _shape(p), str(p.get_element_type())) for p in model.outputs]
        self._model = model
        self._static: dict[tuple[int, ...], Any] = {}  # shape -> compiled: the first STATIC_SHAPES shapes
        self._dynamic: Any = None
        self._warming: threading.Thread | None = None
        self._lock = threading.Lock()
        self._local = threading.local()  # infer requests per calling thread

    def _compiled_for(self, shape: tuple[int, ...]) -> Any:
        """The model compiled for ``shape``: the first STATIC_SHAPES input shapes (a stream's frame,
        the detector's region crop) get a static compile each (a frame runs ~14 % faster than on
        the dynamic compile, a 128 px crop ~2x: docs/benchmarks.md §9); other shapes (more
        streams' sizes) share one dynamic compile."""
        with self._lock:
            if shape not in self._static and len(self._static) < STATIC_SHAPES and len(self.inputs) == 1:
                self._static[shape] = self._compile(self._static_model(shape))
            if shape in self._static:
                return self._static[shape]
            if self._dynamic is None:
                self._dynamic = self._compile(str(self._path))
            return self._dynamic

    def warm(self, shapes: list[tuple[int, ...]]) -> threading.Thread:
        """Compile for ``shapes`` on a background thread (loading a cached compile takes ~0.1 s a
        shape), so that it overlaps opening the streams; a run that comes first waits for it. A
        failure here is only logged: the run compiles again and raises it. :meth:`close` waits for
        the thread (a process that exits while OpenVINO compiles aborts: ``std::terminate``)."""

        def compile_all() -> None:
            try:
                for shape in shapes:
                    self._compiled_for(shape)
            except Exception as exc:  # noqa: BLE001 - reported by the first run instead
                log.debug("OpenVINO warm-up failed: %s", exc)

        thread = self._warming = threading.Thread(target=compile_all, name="fawn-ov-warm", daemon=True)
        thread.start()
        return thread

    def close(self) -> None:
        """Wait for a :meth:`warm` compile still running; the engine stays usable."""
        if self._warming is not None:
            self._warming.join()

    def _static_model(self, shape: tuple[int, ...]) -> Any:
        """The model reshaped to ``shape``: as an IR file in the cache (compiled from a path, the
        cached compile is found in ~0.17 s; from a model object it is hashed first, ~0.33 s), or
        the model itself where the cache is not writable."""
        digest = hashlib.sha256(self._path.read_bytes()).hexdigest()[:16]
        xml = self._cache_dir / f"{self._path.stem}-{digest}-{'x'.join(map(str, shape))}.xml"
        if xml.is_file() and xml.with_suffix(".bin").is_file():
            return str(xml)
        model = self._model.clone()
        model.reshape(list(shape))
        try:
            tmp = xml.with_name(f"{xml.stem}.{os.getpid()}.tmp.xml")
            _import_openvino().save_model(model, str(tmp), compress_to_fp16=False)
            os.replace(tmp.with_suffix(".bin"), xml.with_suffix(".bin"))
            os.replace(tmp, xml)
            return str(xml)
        except (OSError, RuntimeError) as exc:
            log.info("OpenVINO static model not cached (%s): %s", xml, exc)
            return model

    def _compile(self, model: Any) -> Any:
        try:
            return self._core.compile_model(model, self._target, self._config)
        except Exception as exc:
            raise ModelError(f"OpenVINO cannot load {self._path.name}: {str(exc).splitlines()[0]}") from exc

    def _request(self, shape: tuple[int, ...]) -> Any:
        requests: dict[tuple[int, ...], Any] = getattr(self._local, "requests", None) or {}
        self._local.requests = requests
        request = requests.get(shape)
        if request is None:
            compiled = self._compiled_for(shape)
            shared = next((r for k, r in requests.items() if self._compiled_for(k) is compiled), None)
            request = requests[shape] = shared or compiled.create_infer_request()
        return request

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        shape = tuple(next(iter(inputs.values())).shape)
        request = self._request(shape)
        try:
            request.infer(inputs, share_inputs=True)  # no copy of the input: it is not touched until the run ends
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
