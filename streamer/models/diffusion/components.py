"""One network of a downloaded diffusion model, as the torch engine runs it (``TorchEngine(loader=...)``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from streamer.core.errors import MissingExtraError, ModelError
from streamer.models.diffusion.info import read_info
from streamer.models.diffusion.spec import DIFFUSION_COMPONENTS, diffusion_specs


def load_component(
    path: Path, component: str | None, precision: str, resolution: int | None, max_batch: int,
    base: str | Path | None = None, image_encoder: str | Path | None = None,
) -> tuple[Any, Any]:
    """One network of the model at ``path`` (the face_anon_simple folder; ``base``/``image_encoder``: the SD2.1 and
    CLIP folders when they are not inside it) and its I/O spec."""
    from streamer.models.diffusion.loader import load_model
    from streamer.models.diffusion.modules import build_modules

    if component not in DIFFUSION_COMPONENTS:
        raise ModelError(f"torch engine: component '{component}' is not valid (choices: {', '.join(DIFFUSION_COMPONENTS)})")
    try:
        import torch
    except ImportError:
        raise MissingExtraError("torch", "diffusion") from None
    model = load_model(read_info(path, base, image_encoder), dtype=torch.float16 if precision == "fp16" else torch.float32)
    res = resolution or model.info.native_resolution
    spec = diffusion_specs(model.info, res, max_batch, precision)[component]
    return build_modules(model, res)[component], spec
