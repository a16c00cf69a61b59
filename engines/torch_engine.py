"""PyTorch backend: runs an ``nn.Module`` behind the :class:`engines.Engine` interface.

Two ways to make one:

* ``engines.create("torch", MODEL_DIR, component="unet", base=SD21_DIR, image_encoder=CLIP_DIR)`` loads
  the model (``from_pretrained``; one folder when ``base``/``image_encoder`` are left out) and wraps the named network in
  the same I/O module the ONNX export traces (``streamer.models.diffusion.spec`` names its tensors);
* ``TorchEngine(path, module=m, spec=s)`` wraps a module already built
  (the diffusion anonymizer loads the folder once and shares it).

``run`` takes and returns numpy arrays; ``run_torch`` takes and returns torch
tensors on the engine's device, without copies.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from engines import TensorSpec
from streamer.core.errors import EngineError, MissingExtraError

# (folder, component, precision, resolution, max_batch, base, image_encoder) -> (nn.Module, its I/O spec)
ComponentLoader = Callable[[Path, "str | None", str, "int | None", int, "str | Path | None", "str | Path | None"], tuple[Any, Any]]


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
        loader: ComponentLoader | None = None,
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
            if loader is None:
                raise EngineError("TorchEngine needs a module (module=, spec=) or a loader= that builds one from the "
                                  "model folder (a diffusion model: streamer.models.diffusion.load_component)")
            module, spec = loader(Path(path), component, precision, resolution, max_batch, base, image_encoder)
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
