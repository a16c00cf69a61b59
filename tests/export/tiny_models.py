"""Session fixtures: the tiny random-init face_anon_simple-style model
(:func:`streamer.models.diffusion.tiny.write_tiny_model`) and its fp32 ONNX export.

Conftests in two folders import these fixtures, so the work is memoized per
session (by pytest's base temp folder) and done once.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

ENGINE_MAX_FACES = 2
_BUILT: dict[str, Path] = {}
_EXPORTED: dict[str, dict[str, Any]] = {}


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("diffusers", reason="needs fawn[diffusion]")
    pytest.importorskip("transformers", reason="needs fawn[diffusion]")
    from streamer.models.diffusion.tiny import write_tiny_model

    key = str(tmp_path_factory.getbasetemp())
    if key not in _BUILT:
        _BUILT[key] = write_tiny_model(tmp_path_factory.mktemp("tiny_face_anon") / "model")
    return _BUILT[key]


@pytest.fixture(scope="session")
def fp32_export(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The tiny model's six networks exported to fp32 ONNX once per session (max batch 2 faces)."""
    from export.build import ExportOptions, export_diffusion

    key = str(tmp_path_factory.getbasetemp())
    if key not in _EXPORTED:
        out = tmp_path_factory.mktemp("engines_fp32")
        _EXPORTED[key] = export_diffusion(tiny_model_dir, ExportOptions(out_dir=out, precision="fp32", max_batch=ENGINE_MAX_FACES))
    return _EXPORTED[key]
