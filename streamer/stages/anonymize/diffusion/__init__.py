"""Diffusion anonymizer: each hidden face becomes a synthetic face, one stable identity per track.

A reimplementation of the method of Kung et al. 2024, "Face Anonymization Made
Simple" (arXiv 2411.00762), on diffusers' own classes, made to keep up with a
live stream: per-track cached state, keyframes batched across faces on a
worker thread, the last synthetic face warped to the current landmarks in
between, and blur whenever no synthetic face is ready. Heavy dependencies
(torch, diffusers, transformers) load only when the method is used.

Modules: ``sampler`` (batched synthesis), ``crop`` (alignment, paste-back,
colour matching), ``worker`` (the thread), ``anonymizer`` (per-track keyframes
and fallbacks), ``runtime`` (assembly: engines from :mod:`export` or torch).
The networks themselves (model-folder info, ``from_pretrained`` loading,
reference attention, I/O modules and specs) are in :mod:`streamer.models.diffusion`;
the ``fawn run`` options in :mod:`streamer.cli.diffusion`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from streamer.core.config import AnonymizerConfig, DiffusionConfig
    from streamer.stages.anonymize.diffusion.anonymizer import DiffusionAnonymizer

__all__ = ["create_diffusion_anonymizer"]


def create_diffusion_anonymizer(cfg: DiffusionConfig, anon: AnonymizerConfig | None = None) -> DiffusionAnonymizer:
    """See :func:`streamer.stages.anonymize.diffusion.runtime.create_diffusion_anonymizer`."""
    from streamer.stages.anonymize.diffusion.runtime import create_diffusion_anonymizer as create

    return create(cfg, anon)
