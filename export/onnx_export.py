"""ONNX export of an ``nn.Module`` from its :class:`~streamer.models.diffusion.spec.ModelIO` (TorchScript exporter, opset 17)."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

from streamer.core.errors import EngineError, MissingExtraError
from streamer.models.diffusion.spec import ModelIO, TensorIO

log = logging.getLogger(__name__)

OPSET = 17
TIMESTEP_EXAMPLE = 500.0


def example_inputs(spec: ModelIO, which: int = 1, device: str = "cpu", seed: int = 0) -> list[Any]:
    """Random inputs at the spec's ``which`` (0 min, 1 opt, 2 max) shapes; timesteps get a mid value."""
    torch = _torch()
    gen = torch.Generator().manual_seed(seed)
    dims = spec.dims(which)
    return [_example(torch, t, dims, gen).to(device) for t in spec.inputs]


def _example(torch: Any, t: TensorIO, dims: dict[str, int], gen: Any) -> Any:
    shape = t.concrete(dims)
    if t.name == "timestep":
        return torch.full(shape, TIMESTEP_EXAMPLE, dtype=torch.float32)
    dtype = getattr(torch, t.dtype)
    return torch.randn(shape, generator=gen, dtype=torch.float32).to(dtype)


def export_onnx(module: Any, spec: ModelIO, path: Path, device: str = "cpu") -> Path:
    """Trace ``module`` with example inputs and write ``path`` (external data beside it when large)."""
    torch = _torch()
    path.parent.mkdir(parents=True, exist_ok=True)
    args = tuple(example_inputs(spec, 1, device))
    log.info("exporting %s to ONNX (%s)", spec.name, path)
    tmp = path.with_name(path.name + ".partial")
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer warnings about Python control flow on shapes
            torch.onnx.export(
                module,
                args,
                str(tmp),
                input_names=[t.name for t in spec.inputs],
                output_names=[t.name for t in spec.outputs],
                dynamic_axes=spec.dynamic_axes(),
                opset_version=OPSET,
                do_constant_folding=True,
                dynamo=False,
            )
    except Exception as exc:  # the exporter raises many kinds of errors
        tmp.unlink(missing_ok=True)
        raise EngineError(f"ONNX export of {spec.name} failed: {str(exc).splitlines()[0]}") from exc
    tmp.replace(path)
    return path


def _torch() -> Any:
    try:
        import torch
    except ImportError:
        raise MissingExtraError("torch", "diffusion") from None
    return torch
