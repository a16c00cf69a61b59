"""Export and build steps with a cache: diffusion networks -> ONNX -> TensorRT, and existing ONNX -> TensorRT.

``export_diffusion`` loads the model folder only if some ONNX is not cached
yet, exports each network from its I/O description, and (backend
``tensorrt``) builds an engine from each ONNX. ``export_existing`` takes an
ONNX file that already exists (the detector, the identity network) through
the same cache and the same TensorRT build.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from export import cache
from streamer.core.errors import ConfigError
from streamer.models.diffusion.info import ModelInfo, read_info
from streamer.models.diffusion.spec import (
    DIFFUSION_COMPONENTS,
    SOURCE_FOLDER,
    ModelIO,
    diffusion_specs,
    float_dtype,
    spec_from_onnx,
)

log = logging.getLogger(__name__)

BACKENDS = ("onnx", "tensorrt")
PRECISIONS = ("fp16", "fp32")
EXPORT_FORMAT = 1  # bump when the exported graphs change, to invalidate cached ONNX files
TIMING_CACHE = "timing.cache"


@dataclass(frozen=True)
class ExportOptions:
    """Where and how to export. ``max_batch``: faces per call (the denoiser serves twice as many rows)."""

    out_dir: Path
    backend: str = "onnx"
    precision: str = "fp16"
    max_batch: int = 4
    resolution: int | None = None
    workspace_gb: float | None = None
    device: str = "cpu"
    components: tuple[str, ...] = DIFFUSION_COMPONENTS

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ConfigError(f"export backend '{self.backend}' is not valid (choices: {', '.join(BACKENDS)})")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"export precision '{self.precision}' is not valid (choices: {', '.join(PRECISIONS)})")
        if self.max_batch < 1:
            raise ConfigError("export max batch must be >= 1")
        unknown = sorted(set(self.components) - set(DIFFUSION_COMPONENTS))
        if unknown:
            raise ConfigError(f"unknown model component(s) {', '.join(unknown)} (valid: {', '.join(DIFFUSION_COMPONENTS)})")


@dataclass(frozen=True)
class Artifact:
    """One exported file: what it is, where it is, and whether this call built it or found it cached."""

    component: str
    backend: str
    path: Path
    key: str
    built: bool
    spec: ModelIO


@dataclass
class _Step:
    component: str
    spec: ModelIO
    key: str
    parts: dict[str, Any] = field(default_factory=dict)


def export_diffusion(model_dir: str | Path | ModelInfo, opts: ExportOptions) -> dict[str, Artifact]:
    """ONNX (and TensorRT engines when ``opts.backend == 'tensorrt'``) for the networks of a model folder
    (or of the folders a :class:`ModelInfo` was read from; ``opts.components``: all six by default)."""
    info = model_dir if isinstance(model_dir, ModelInfo) else read_info(model_dir)
    resolution = opts.resolution or info.native_resolution
    specs = diffusion_specs(info, resolution, opts.max_batch, opts.precision)
    manifest = cache.Manifest(opts.out_dir)
    prints = {folder: cache.fingerprint_folder(info.folder(folder)) for folder in set(SOURCE_FOLDER.values())}
    steps = [_onnx_step(name, specs[name], prints[SOURCE_FOLDER[name]], opts) for name in opts.components]
    onnx = _run_onnx_steps(info, steps, manifest, opts, resolution)
    if opts.backend == "onnx":
        return onnx
    return {name: _tensorrt(art, manifest, opts, opts.precision) for name, art in onnx.items()}


def _onnx_step(name: str, spec: ModelIO, fingerprint: str, opts: ExportOptions) -> _Step:
    from export.onnx_export import OPSET

    parts = {"kind": "onnx", "component": name, "model": fingerprint, "spec": spec.to_json(),
             "precision": opts.precision, "opset": OPSET, "format": EXPORT_FORMAT}
    return _Step(name, spec, cache.cache_key(**parts), parts)


def _run_onnx_steps(
    root: ModelInfo, steps: list[_Step], manifest: cache.Manifest, opts: ExportOptions, resolution: int
) -> dict[str, Artifact]:
    out: dict[str, Artifact] = {}
    modules: dict[str, Any] | None = None
    for step in steps:
        found = manifest.lookup(step.key)
        if found is not None:
            log.info("%s: cached ONNX %s", step.component, found)
            out[step.component] = Artifact(step.component, "onnx", found, step.key, False, step.spec)
            continue
        if modules is None:
            modules = _load_modules(root, resolution, opts)
        out[step.component] = _export_step(step, modules[step.component], manifest, opts)
    return out


def _load_modules(root: ModelInfo, resolution: int, opts: ExportOptions) -> dict[str, Any]:
    import torch

    from streamer.models.diffusion.loader import load_model
    from streamer.models.diffusion.modules import build_modules

    dtype = getattr(torch, float_dtype(opts.precision))
    model = load_model(root, device=opts.device, dtype=dtype)
    return build_modules(model, resolution)


def _export_step(step: _Step, module: Any, manifest: cache.Manifest, opts: ExportOptions) -> Artifact:
    from export.onnx_export import export_onnx

    rel = Path(f"{step.component}-{step.key}") / "model.onnx"
    path = export_onnx(module, step.spec, opts.out_dir / rel, device=opts.device)
    _record(manifest, step, "onnx", rel, opts.precision)
    return Artifact(step.component, "onnx", path, step.key, True, step.spec)


def _record(manifest: cache.Manifest, step: _Step, backend: str, rel: Path, precision: str) -> None:
    size = (manifest.folder / rel).stat().st_size
    manifest.record(cache.Entry(step.key, step.component, backend, precision, str(rel), size, step.spec.to_json(), step.parts))


def _tensorrt(onnx: Artifact, manifest: cache.Manifest, opts: ExportOptions, precision: str) -> Artifact:
    from export.trt_build import build_engine, effective_precision, gpu_capability, tensorrt_version

    real = effective_precision(onnx.spec, precision)
    parts = {"kind": "tensorrt", "onnx": onnx.key, "tensorrt": tensorrt_version(), "gpu": gpu_capability(),
             "precision": real, "profile": onnx.spec.profile(), "workspace_gb": opts.workspace_gb}
    step = _Step(onnx.component, onnx.spec, cache.cache_key(**parts), parts)
    found = manifest.lookup(step.key)
    if found is not None:
        log.info("%s: cached TensorRT engine %s", step.component, found)
        return Artifact(step.component, "tensorrt", found, step.key, False, step.spec)
    rel = Path(f"{step.component}-{step.key}.plan")
    build_engine(onnx.path, onnx.spec, opts.out_dir / rel, precision, opts.out_dir / TIMING_CACHE, opts.workspace_gb)
    _record(manifest, step, "tensorrt", rel, real)
    return Artifact(step.component, "tensorrt", opts.out_dir / rel, step.key, True, step.spec)


def export_existing(
    onnx_path: Path, name: str, opts: ExportOptions, ranges: dict[str, tuple[int, int, int]] | None = None
) -> Artifact:
    """Bring an existing ONNX model (detector, identity) into the engine folder, and build it for TensorRT."""
    spec = spec_from_onnx(onnx_path, name, ranges)
    parts = {"kind": "onnx-copy", "component": name, "model": cache.fingerprint_file(onnx_path), "spec": spec.to_json()}
    step = _Step(name, spec, cache.cache_key(**parts), parts)
    manifest = cache.Manifest(opts.out_dir)
    found = manifest.lookup(step.key)
    built = found is None
    if found is None:
        rel = Path(f"{name}-{step.key}.onnx")
        opts.out_dir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(onnx_path, opts.out_dir / rel)
        _record(manifest, step, "onnx", rel, "fp32")
        found = opts.out_dir / rel
    art = Artifact(name, "onnx", found, step.key, built, spec)
    return art if opts.backend == "onnx" else _tensorrt(art, manifest, opts, opts.precision)
