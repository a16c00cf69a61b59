"""``fawn run`` options of the diffusion anonymizer, as dotted config overrides."""

from __future__ import annotations

import argparse

from streamer.core.config import DIFFUSION_SCHEDULERS, ENGINES

# argparse dest -> dotted config key
DIFFUSION_RUN_OPTIONS = {
    "diffusion_model": "diffusion.model",
    "diffusion_base": "diffusion.base_model",
    "diffusion_image_encoder": "diffusion.image_encoder",
    "diffusion_backend": "diffusion.backend",
    "diffusion_device": "diffusion.device",
    "diffusion_engines": "diffusion.engine_dir",
    "diffusion_steps": "diffusion.num_inference_steps",
    "diffusion_scheduler": "diffusion.scheduler",
    "anonymization_degree": "diffusion.anonymization_degree",
    "guidance_scale": "diffusion.guidance_scale",
    "keyframe_interval": "diffusion.keyframe_interval",
    "latency_budget_ms": "diffusion.latency_budget_ms",
    "diffusion_seed": "diffusion.seed",
}


def add_diffusion_run_args(parser: argparse.ArgumentParser) -> None:
    """Options for ``--method diffusion`` (all optional; YAML keys under ``diffusion:`` do the same)."""
    g = parser.add_argument_group("diffusion anonymizer (--method diffusion)")
    g.add_argument("--diffusion-model", metavar="DIR", help="face_anon_simple folder (unet/, referencenet/, conditioning_referencenet/)")
    g.add_argument("--diffusion-base", metavar="DIR", help="Stable Diffusion 2.1 folder (its vae/ and scheduler/)")
    g.add_argument("--diffusion-image-encoder", metavar="DIR", help="CLIP folder (openai/clip-vit-large-patch14)")
    g.add_argument("--diffusion-backend", choices=ENGINES, help="run the networks with torch, onnxruntime or tensorrt")
    g.add_argument("--diffusion-device", choices=("auto", "cpu", "cuda"), help="where the networks run (auto: cuda if visible)")
    g.add_argument("--diffusion-engines", metavar="DIR", help="engine cache folder for onnxruntime/tensorrt (fawn export --out)")
    g.add_argument("--diffusion-steps", type=int, help="denoising steps per keyframe")
    g.add_argument("--diffusion-scheduler", choices=DIFFUSION_SCHEDULERS, help="sampler (ddpm: the authors', 25+ steps)")
    g.add_argument("--anonymization-degree", type=float, help="how far from the source identity (default 1.25)")
    g.add_argument("--guidance-scale", type=float, help="classifier-free guidance scale (default 4.0)")
    g.add_argument("--keyframe-interval", type=int, help="frames between a track's keyframes")
    g.add_argument("--latency-budget-ms", type=float, help="how long a frame may wait for its keyframes (0: never)")
    g.add_argument("--diffusion-seed", type=int, help="seed of the per-track synthetic identities")
