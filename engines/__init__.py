"""Inference backends behind one interface.

``engines.create(kind, path, **opts)`` returns an :class:`Engine`; an unknown
kind raises :class:`~streamer.core.errors.EngineError` listing the valid kinds.
Heavy backends (TensorRT, torch) are imported only when asked for.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from streamer.core.errors import EngineError, ModelError
from streamer.core.registry import ENGINE_BACKENDS

_BACKENDS: dict[str, str] = ENGINE_BACKENDS  # the names live in streamer.core.registry

BUILTIN_MODELS = {
    "centerface": "centerface.onnx",
    "centerface-int8": "centerface_int8.onnx",  # scripts/quantize_centerface.py
    "dlib-resnet": "dlib_resnet_v1.onnx",
}


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple[int | str | None, ...]
    dtype: str


@runtime_checkable
class Engine(Protocol):
    """A loaded model: named inputs in, named outputs out (numpy arrays)."""

    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    providers: list[str]

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]: ...


def available() -> list[str]:
    return sorted(_BACKENDS)


def create(kind: str, path: str | Path, **opts: Any) -> Engine:
    """Create an engine of backend ``kind`` for the model at ``path``."""
    if kind not in _BACKENDS:
        raise EngineError(f"unknown engine '{kind}' (valid: {', '.join(available())})")
    module_name, cls_name = _BACKENDS[kind].split(":")
    module = importlib.import_module(module_name)
    cls = getattr(module, cls_name)
    engine: Engine = cls(Path(path), **opts)
    return engine


def builtin_model(name: str) -> Path:
    """Path of a model that ships inside the package (see ``BUILTIN_MODELS``)."""
    if name not in BUILTIN_MODELS:
        raise ModelError(f"no built-in model '{name}' (built-in: {', '.join(sorted(BUILTIN_MODELS))})")
    path = Path(str(resources.files("engines") / "models" / BUILTIN_MODELS[name]))
    if not path.is_file():
        raise ModelError(f"built-in model file missing: {path} (reinstall fawn)")
    return path
