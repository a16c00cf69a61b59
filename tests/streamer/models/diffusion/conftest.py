"""Fixtures of the diffusion model tests: the tiny diffusion model folder and its fp32 ONNX export
(session-scoped, defined in tests/export/tiny_models.py)."""

from tests.export.tiny_models import fp32_export, tiny_model_dir
from tests.streamer.models.diffusion.tiny_sd21 import tiny_download

__all__ = ["fp32_export", "tiny_download", "tiny_model_dir"]
