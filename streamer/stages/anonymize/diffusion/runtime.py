"""Assembling the diffusion anonymizer from a :class:`DiffusionConfig`: backend, device, engines, worker."""

from __future__ import annotations

import importlib.util
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streamer.core.config import AnonymizerConfig, DiffusionConfig
from streamer.core.errors import ConfigError, EngineError, MissingExtraError
from streamer.models.diffusion.info import ModelInfo, read_info
from streamer.stages.anonymize.diffusion.anonymizer import DiffusionAnonymizer, KeyframePolicy
from streamer.stages.anonymize.diffusion.crop import face_mask
from streamer.stages.anonymize.diffusion.worker import DiffusionWorker
from streamer.stages.anonymize.filters import BlurAnonymizer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Placement:
    """Where the networks run: backend, torch device, precision and crop resolution."""

    backend: str
    device: str
    precision: str
    resolution: int


def require_extras() -> None:
    """MissingExtraError naming the first missing package of ``fawn[diffusion]``."""
    for module in ("torch", "diffusers", "transformers", "safetensors"):
        if importlib.util.find_spec(module) is None:
            raise MissingExtraError(module, "diffusion")


def backend_problems() -> dict[str, str | None]:
    """For each backend: None when usable here, else why not."""
    cuda = _cuda()
    trt = None if importlib.util.find_spec("tensorrt") is not None else "tensorrt is not installed"
    if trt is None and not cuda:
        trt = "no CUDA GPU is visible"
    return {
        "torch": None,
        "onnxruntime": None if importlib.util.find_spec("onnxruntime") is not None else "onnxruntime is not installed",
        "tensorrt": trt,
    }


def _cuda() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def place(cfg: DiffusionConfig, info: ModelInfo) -> Placement:
    problems = backend_problems()
    problem = problems.get(cfg.backend)
    if problem is not None:
        ok = ", ".join(k for k, v in problems.items() if v is None)
        raise EngineError(f"diffusion.backend '{cfg.backend}' is not available here: {problem} (available: {ok})")
    device = cfg.device
    if device == "auto":
        device = "cuda" if _cuda() else "cpu"
    if cfg.backend == "tensorrt":
        device = "cuda"
    if device == "cuda" and not _cuda():
        raise EngineError("diffusion.device is cuda but no CUDA GPU is visible (use device: cpu or auto)")
    precision = cfg.precision if cfg.precision != "auto" else ("fp16" if device == "cuda" else "fp32")
    resolution = cfg.resolution or info.native_resolution
    info.latent_size(resolution)  # validates the resolution for this model
    return Placement(cfg.backend, device, precision, resolution)


def default_engine_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "fawn" / "engines"


def open_engines(cfg: DiffusionConfig, info: ModelInfo, where: Placement) -> dict[str, Any]:
    """The six engines of the model on the chosen backend (exports/builds missing ONNX or engines first)."""
    if where.backend == "torch":
        return _torch_engines(info, where, cfg.max_batch, cfg.threads)
    import engines
    from export.build import ExportOptions, export_diffusion

    out = Path(cfg.engine_dir).expanduser() if cfg.engine_dir else default_engine_dir()
    opts = ExportOptions(
        out_dir=out, backend="onnx" if where.backend == "onnxruntime" else "tensorrt", precision=where.precision,
        max_batch=cfg.max_batch, resolution=where.resolution, device=where.device,
    )
    artifacts = export_diffusion(info, opts)
    if where.backend == "tensorrt":
        return {name: engines.create("tensorrt", art.path) for name, art in artifacts.items()}
    return {
        name: engines.create("onnxruntime", art.path, device=where.device, threads=cfg.threads)
        for name, art in artifacts.items()
    }


def _torch_engines(info: ModelInfo, where: Placement, max_batch: int, threads: int) -> dict[str, Any]:
    import torch

    from engines.torch_engine import TorchEngine
    from streamer.models.diffusion.loader import load_model
    from streamer.models.diffusion.modules import build_modules
    from streamer.models.diffusion.spec import diffusion_specs

    dtype = torch.float16 if where.precision == "fp16" else torch.float32
    model = load_model(info, device=where.device, dtype=dtype)
    modules = build_modules(model, where.resolution)
    specs = diffusion_specs(info, where.resolution, max_batch, where.precision)
    return {
        name: TorchEngine(info.root, module=modules[name], spec=specs[name], device=where.device, precision=where.precision, threads=threads)
        for name in specs
    }


def create_diffusion_anonymizer(cfg: DiffusionConfig, anon: AnonymizerConfig | None = None) -> DiffusionAnonymizer:
    """Load (or build engines for) the model in ``cfg.model`` and start the worker thread."""
    if not cfg.model:
        raise ConfigError("diffusion.model: a model folder is required for --method diffusion (--diffusion-model DIR)")
    require_extras()
    import torch

    from streamer.stages.anonymize.diffusion.sampler import EngineSet, Sampler, SamplerParams

    info = read_info(cfg.model, cfg.base_model, cfg.image_encoder)
    where = place(cfg, info)
    log.info("diffusion: %s on %s, %s, %d px crops", where.backend, where.device, where.precision, where.resolution)
    dtype = torch.float16 if where.precision == "fp16" else torch.float32
    engine_set = EngineSet(open_engines(cfg, info, where), torch.device(where.device), dtype)
    params = SamplerParams(
        resolution=where.resolution, anonymization_degree=cfg.anonymization_degree, guidance_scale=cfg.guidance_scale,
        num_inference_steps=cfg.num_inference_steps, scheduler=cfg.scheduler, seed=cfg.seed,
    )
    mask = face_mask(where.resolution, cfg.feather)
    worker = DiffusionWorker(Sampler(engine_set, info, params), mask, cfg.max_batch, cfg.colour_match)
    anon = anon or AnonymizerConfig(method="diffusion")
    blur = BlurAnonymizer(strength=anon.strength, padding=anon.padding, feather=anon.feather, shape=anon.shape)
    policy = KeyframePolicy(cfg.keyframe_interval, cfg.change_threshold, cfg.max_lag, cfg.evict_after)
    return DiffusionAnonymizer(worker, where.resolution, mask, blur, policy, cfg.latency_budget_ms)
