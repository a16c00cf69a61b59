"""TensorRT engine build from an ONNX file and its :class:`~streamer.models.diffusion.spec.ModelIO` (TensorRT 10/11 API).

Explicit shapes, one optimization profile from the spec's (min, opt, max),
and a timing cache that persists between builds. Precision: a float16 ONNX is
built as a strongly typed network (TensorRT 11 has no other kind); a float32
ONNX asked for fp16 uses ``BuilderFlag.FP16`` where it still exists
(TensorRT 10) and otherwise stays fp32, with a warning.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from streamer.core.errors import EngineError, MissingExtraError
from streamer.models.diffusion.spec import ModelIO

log = logging.getLogger(__name__)


def import_tensorrt() -> Any:
    try:
        import tensorrt as trt
    except ImportError:
        raise MissingExtraError("tensorrt", "tensorrt") from None
    return trt


def tensorrt_version() -> str:
    return str(import_tensorrt().__version__)


def gpu_capability() -> str:
    """The CUDA compute capability of device 0, e.g. ``sm_90`` (EngineError without a GPU)."""
    try:
        import torch
    except ImportError:
        raise MissingExtraError("torch", "diffusion") from None
    if not torch.cuda.is_available():
        raise EngineError("TensorRT engines need a CUDA GPU and none is visible")
    major, minor = torch.cuda.get_device_capability(0)
    return f"sm_{major}{minor}"


def effective_precision(spec: ModelIO, precision: str) -> str:
    """The precision an engine really gets: a float16 ONNX is fp16; a float32 one fp16 only where TensorRT has weak typing."""
    if _typed_fp16(spec):
        return "fp16"
    if precision == "fp16" and hasattr(import_tensorrt().BuilderFlag, "FP16"):
        return "fp16"
    return "fp32"


def _typed_fp16(spec: ModelIO) -> bool:
    return any(t.dtype == "float16" for t in spec.inputs)


def build_engine(
    onnx_path: Path,
    spec: ModelIO,
    engine_path: Path,
    precision: str,
    timing_cache: Path,
    workspace_gb: float | None = None,
) -> Path:
    """Build ``engine_path`` from ``onnx_path``; the timing cache at ``timing_cache`` is read and updated."""
    trt = import_tensorrt()
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(_network_flags(trt, spec, precision))
    _parse(trt, network, logger, onnx_path)
    _check_inputs(network, spec)
    config = builder.create_builder_config()
    if workspace_gb:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gb * (1 << 30)))
    if precision == "fp16" and not _typed_fp16(spec):
        _weak_fp16(trt, config, spec)
    _add_profile(builder, config, spec)
    cache = config.create_timing_cache(timing_cache.read_bytes() if timing_cache.is_file() else b"")
    config.set_timing_cache(cache, False)
    log.info("building TensorRT %s engine for %s (this can take minutes)", trt.__version__, spec.name)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise EngineError(f"TensorRT could not build an engine for {spec.name} (see the TensorRT log above)")
    _write_atomic(engine_path, bytes(serialized))
    _write_atomic(timing_cache, bytes(config.get_timing_cache().serialize()))
    return engine_path


def _network_flags(trt: Any, spec: ModelIO, precision: str) -> int:
    strongly = getattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)
    weak_available = hasattr(trt.BuilderFlag, "FP16")
    if strongly is not None and (_typed_fp16(spec) or not weak_available):
        return 1 << int(strongly)
    return 0


def _weak_fp16(trt: Any, config: Any, spec: ModelIO) -> None:
    if hasattr(trt.BuilderFlag, "FP16"):
        config.set_flag(trt.BuilderFlag.FP16)
    else:
        log.warning("TensorRT %s takes precision from the ONNX: %s (float32 ONNX) is built fp32", trt.__version__, spec.name)


def _parse(trt: Any, network: Any, logger: Any, onnx_path: Path) -> None:
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = [str(parser.get_error(i).desc()) for i in range(parser.num_errors)]
        raise EngineError(f"TensorRT cannot parse {onnx_path.name}: {'; '.join(errors) or 'unknown error'}")


def _check_inputs(network: Any, spec: ModelIO) -> None:
    names = [network.get_input(i).name for i in range(network.num_inputs)]
    expected = [t.name for t in spec.inputs]
    if sorted(names) != sorted(expected):
        raise EngineError(f"{spec.name}: ONNX inputs {names} differ from its I/O description {expected}")


def _add_profile(builder: Any, config: Any, spec: ModelIO) -> None:
    profile = builder.create_optimization_profile()
    for name, (lo, opt, hi) in spec.profile().items():
        profile.set_shape(name, lo, opt, hi)
    config.add_optimization_profile(profile)


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_bytes(data)
    tmp.replace(path)
