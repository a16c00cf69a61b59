"""PyTorch backend: runs an ``nn.Module`` behind the :class:`engines.Engine` interface.

Two ways to make one:

* ``engines.create("torch", MODEL_DIR, component="unet", base=SD21_DIR, image_encoder=CLIP_DIR)`` loads
  the model (``from_pretrained``; one folder when ``base``/``image_encoder`` are left out) and wraps the named network in
  the same I/O module the ONNX export traces (``export.spec`` names its tensors);
* ``TorchEngine(path, module=m, spec=s)`` wraps a module already built
  (the diffusion anonymizer loads the folder once and shares it).

``run`` takes and returns numpy arrays; ``run_torch`` takes and returns torch
tensors on the engine's device, without copies.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from engines import TensorSpec
from streamer.errors import EngineError, MissingExtraError, ModelError


def _torch() -> Any:
    try:
        import torch
    except ImportError:
        raise MissingExtraError("torch", "diffusion") from None
    return torch


class TorchEngine:
    """An ``nn.Module`` with named inputs and outputs (see the module docstring)."""

    def __init__(
        self,
        path: Path,
        component: str | None = None,
        module: Any = None,
        spec: Any = None,
        device: str = "cpu",
        precision: str = "fp32",
        resolution: int | None = None,
        max_batch: int = 4,
        threads: int = 0,
        base: str | Path | None = None,
        image_encoder: str | Path | None = None,
    ) -> None:
        torch = _torch()
        self._torch = torch
        if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
            raise EngineError(f"unknown device '{device}' for torch (valid: cpu, cuda)")
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise EngineError("torch engine asked for cuda but torch sees no CUDA GPU")
        if threads:
            torch.set_num_threads(threads)
        self.device = torch.device(device)
        self.dtype = torch.float16 if precision == "fp16" else torch.float32
        if module is None:
            module, spec = _load_component(Path(path), component, precision, resolution, max_batch, base, image_encoder)
        if spec is None:
            raise EngineError("TorchEngine needs the module's I/O description (spec=)")
        self.module = module.to(self.device).eval()
        self.spec = spec
        self.inputs = [TensorSpec(t.name, tuple(d if isinstance(d, int) else None for d in t.shape), t.dtype) for t in spec.inputs]
        self.outputs = [TensorSpec(t.name, tuple(d if isinstance(d, int) else None for d in t.shape), t.dtype) for t in spec.outputs]
        self.providers = [f"torch:{self.device}"]

    def run_torch(self, inputs: dict[str, Any]) -> dict[str, Any]:
        """Tensors in (moved to the engine's device and declared dtype), tensors out."""
        torch = self._torch
        args = []
        for t in self.spec.inputs:
            if t.name not in inputs:
                raise EngineError(f"{self.spec.name}: missing input '{t.name}'")
            args.append(torch.as_tensor(inputs[t.name]).to(self.device, getattr(torch, t.dtype)))
        with torch.inference_mode():
            out = self.module(*args)
        values = out if isinstance(out, tuple) else (out,)
        return {t.name: v for t, v in zip(self.spec.outputs, values)}

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        out = self.run_torch({k: self._torch.from_numpy(np.ascontiguousarray(v)) for k, v in inputs.items()})
        return {k: v.float().cpu().numpy() if v.dtype == self._torch.bfloat16 else v.cpu().numpy() for k, v in out.items()}


def _load_component(
    path: Path, component: str | None, precision: str, resolution: int | None, max_batch: int,
    base: str | Path | None = None, image_encoder: str | Path | None = None,
) -> tuple[Any, Any]:
    """One network of the model at ``path`` (the face_anon_simple folder; ``base``/``image_encoder``: the SD2.1 and
    CLIP folders when they are not inside it)."""
    from export.spec import DIFFUSION_COMPONENTS, diffusion_specs
    from streamer.anonymize.diffusion.info import read_info
    from streamer.anonymize.diffusion.loader import load_model
    from streamer.anonymize.diffusion.modules import build_modules

    if component not in DIFFUSION_COMPONENTS:
        raise ModelError(f"torch engine: component '{component}' is not valid (choices: {', '.join(DIFFUSION_COMPONENTS)})")
    torch = _torch()
    model = load_model(read_info(path, base, image_encoder), dtype=torch.float16 if precision == "fp16" else torch.float32)
    res = resolution or model.info.native_resolution
    spec = diffusion_specs(model.info, res, max_batch, precision)[component]
    return build_modules(model, res)[component], spec
