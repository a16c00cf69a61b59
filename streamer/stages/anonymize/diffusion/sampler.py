"""Batched face synthesis through six engines: CLIP embedding, VAE, two ReferenceNets, the denoiser.

Anonymization (Kung et al. 2024, "Face Anonymization Made Simple"): the
aligned face is both the source and the conditioning image. The source is
pushed away from its identity by the anonymization degree ``d``:
its CLIP embedding becomes ``(1-d)*E`` and its reference states
``(1-d)*S + d*S_null`` (``S_null``: the source ReferenceNet on the null
image, a zero latent with a zero context). Classifier-free guidance,
where the unconditional rows have a null source (zero embedding, ``S_null`` states) and the same conditioning:
``(1-g)*uncond + g*cond``. The source ReferenceNet runs with the scaled
embedding ``(1-d)*E`` as its context, as in the authors' pipeline.

What is per track (:class:`Identity`, computed once, at the track's first
keyframe): the scaled source embedding and reference states and the initial
noise, seeded from the track id, so a track keeps one synthetic identity.
What is per keyframe: the conditioning embedding and reference states of the
current crop, the denoising loop (deterministic DDIM or DPM-Solver++; every
face of a batch in the same engine call) and the VAE decode.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from streamer.core.errors import ConfigError, EngineError
from streamer.core.types import Image
from streamer.models.diffusion.info import ModelInfo
from streamer.models.diffusion.spec import ref_name

log = logging.getLogger(__name__)

SCHEDULERS = ("dpmsolver++", "ddim", "ddpm")


@dataclass(frozen=True)
class SamplerParams:
    resolution: int
    anonymization_degree: float = 1.25
    guidance_scale: float = 4.0
    num_inference_steps: int = 8
    scheduler: str = "dpmsolver++"
    seed: int = 0


@dataclass
class Identity:
    """A track's synthetic identity: scaled source embedding [D], scaled source refs [T_i, C_i], noise [C,h,w]."""

    embedding: torch.Tensor
    refs: list[torch.Tensor]
    noise: torch.Tensor


def make_scheduler(config: Mapping[str, Any], kind: str) -> Any:
    """A scheduler from the model's scheduler config.

    ``ddpm``: the reference's own sampler (``DDPMScheduler`` on SD2.1's config as is; stochastic, seeded per
    track, meant for 25+ steps). ``ddim``/``dpmsolver++``: deterministic few-step samplers with timesteps
    spaced to start at pure noise (fast; the weights were never tuned for them, see docs/diffusion.md).
    """
    from diffusers import DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler

    cfg = dict(config)
    if kind == "ddpm":
        return DDPMScheduler.from_config(cfg)
    if kind == "ddim":
        return DDIMScheduler.from_config(cfg, timestep_spacing="trailing", clip_sample=False)
    if kind == "dpmsolver++":
        return DPMSolverMultistepScheduler.from_config(
            cfg, algorithm_type="dpmsolver++", solver_order=2, timestep_spacing="trailing", lower_order_final=True
        )
    raise ConfigError(f"diffusion.scheduler: '{kind}' is not valid (choices: {', '.join(SCHEDULERS)})")


def track_seed(seed: int, track_id: int) -> int:
    return (seed * 1_000_003 + track_id * 7_919 + 12_345) % (2**63 - 1)


class EngineSet:
    """The six engines by component name; calls them with torch tensors whatever their backend."""

    def __init__(self, engines: Mapping[str, Any], device: torch.device, dtype: torch.dtype) -> None:
        self.engines = dict(engines)
        self.device = device
        self.dtype = dtype

    def __call__(self, name: str, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        engine = self.engines[name]
        if hasattr(engine, "run_torch"):
            out: dict[str, torch.Tensor] = engine.run_torch(inputs)
            return out
        specs = {s.name: s for s in engine.inputs}
        arrays: dict[str, np.ndarray] = {k: v.detach().cpu().numpy().astype(_np_dtype(specs[k].dtype)) for k, v in inputs.items()}
        return {k: torch.from_numpy(np.asarray(v)).to(self.device, self.dtype) for k, v in engine.run(arrays).items()}


def _np_dtype(dtype: str) -> type:
    return np.float16 if "float16" in dtype else np.float32


class Sampler:
    """Turns aligned face crops into synthetic faces; see the module docstring."""

    def __init__(self, engines: EngineSet, info: ModelInfo, params: SamplerParams) -> None:
        self.engines = engines
        self.info = info
        self.params = params
        self.device, self.dtype = engines.device, engines.dtype
        self.scheduler = make_scheduler(info.scheduler_config, params.scheduler)
        self.latent_side = info.latent_size(params.resolution)
        self.n_refs = len(info.ref_sources(params.resolution))
        self.null_refs = self._null_refs()

    # ------------------------------------------------------------------ stages

    def _null_refs(self) -> list[torch.Tensor]:
        c, s = self.info.latent_channels, self.latent_side
        zero_latent = torch.zeros(1, c, s, s, device=self.device, dtype=self.dtype)
        zero_context = torch.zeros(1, 2, self.info.cross_dim, device=self.device, dtype=self.dtype)
        return [r[0] for r in self._refs("referencenet", zero_latent, zero_context)]

    def _refs(self, net: str, latent: torch.Tensor, context: torch.Tensor) -> list[torch.Tensor]:
        out = self.engines(net, {"sample": latent, "encoder_hidden_states": context})
        return [out[ref_name(i)] for i in range(self.n_refs)]

    def to_tensor(self, crops: list[Image]) -> torch.Tensor:
        """BGR uint8 crops -> RGB [B,3,R,R] in [-1,1]."""
        array = np.stack([c[:, :, ::-1] for c in crops]).astype(np.float32)
        t = torch.from_numpy(array).permute(0, 3, 1, 2).to(self.device)
        return (t / 127.5 - 1.0).to(self.dtype)

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        size = self.info.clip_size
        x = (images.float() + 1.0) / 2.0
        x = F.interpolate(x, size=(size, size), mode="bicubic", antialias=True, align_corners=False).clamp(0, 1)
        mean = torch.tensor(self.info.clip_mean, device=x.device).view(1, 3, 1, 1)
        std = torch.tensor(self.info.clip_std, device=x.device).view(1, 3, 1, 1)
        pixels = ((x - mean) / std).to(self.dtype)
        return self.engines("image_encoder", {"pixel_values": pixels})["image_embeds"]

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        return self.engines("vae_encoder", {"image": images})["latent"]

    def decode(self, latents: torch.Tensor) -> list[Image]:
        images = self.engines("vae_decoder", {"latent": latents.to(self.dtype)})["image"]
        array = ((images.float().clamp(-1, 1) + 1.0) * 127.5 + 0.5).clamp(0, 255).to(torch.uint8)
        rgb = array.permute(0, 2, 3, 1).cpu().numpy()
        return [np.ascontiguousarray(im[:, :, ::-1]) for im in rgb]

    def identities(self, embeds: torch.Tensor, latents: torch.Tensor, track_ids: list[int]) -> list[Identity]:
        """Per-track state for faces seen for the first time (rows of ``embeds``/``latents``)."""
        d = self.params.anonymization_degree
        scaled = (1.0 - d) * embeds
        # the source ReferenceNet sees the degree-scaled embedding, as in training (its one context token twice:
        # cross-attention over two equal tokens is attention over one)
        real = self._refs("referencenet", latents, torch.stack([scaled, scaled], dim=1))
        out = []
        for row, track in enumerate(track_ids):
            refs = [(1.0 - d) * r[row] + d * null for r, null in zip(real, self.null_refs)]
            out.append(Identity(scaled[row], refs, self._noise(track)))
        return out

    def _noise(self, track_id: int) -> torch.Tensor:
        gen = torch.Generator().manual_seed(track_seed(self.params.seed, track_id))
        c, s = self.info.latent_channels, self.latent_side
        return torch.randn((c, s, s), generator=gen, dtype=torch.float32).to(self.device)

    # ------------------------------------------------------------------ denoising

    def generate(self, crops: list[Image], track_ids: list[int], known: dict[int, Identity]) -> tuple[list[Image], dict[int, Identity]]:
        """Synthetic faces for ``crops`` (one per track id); identities missing from ``known`` are made and returned."""
        with torch.inference_mode():
            return self._generate(crops, track_ids, known)

    def _generate(self, crops: list[Image], track_ids: list[int], known: dict[int, Identity]) -> tuple[list[Image], dict[int, Identity]]:
        images = self.to_tensor(crops)
        embeds = self.embed(images)
        latents = self.encode(images)
        new_rows = [i for i, t in enumerate(track_ids) if t not in known]
        made: dict[int, Identity] = {}
        if new_rows:
            idx = torch.tensor(new_rows, device=self.device)
            fresh = self.identities(embeds[idx], latents[idx], [track_ids[i] for i in new_rows])
            made = {track_ids[i]: ident for i, ident in zip(new_rows, fresh)}
        idents = [known.get(t) or made[t] for t in track_ids]
        cond_refs = self._refs("conditioning_referencenet", latents, torch.stack([embeds, embeds], dim=1))
        result = self.denoise(idents, embeds, cond_refs)
        return self.decode(result), made

    def _rows(self, idents: list[Identity], cond_embeds: torch.Tensor, cond_refs: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        """The denoiser's constant inputs: conditional rows, then (with guidance) unconditional rows."""
        src_embeds = torch.stack([i.embedding for i in idents]).to(self.dtype)
        context = torch.stack([src_embeds, cond_embeds], dim=1)
        refs = []
        for layer, cond in enumerate(cond_refs):
            src = torch.stack([i.refs[layer] for i in idents]).to(self.dtype)
            refs.append(torch.cat([src, cond], dim=1))
        if self.params.guidance_scale != 1.0:
            null_context = torch.stack([torch.zeros_like(src_embeds), cond_embeds], dim=1)
            context = torch.cat([context, null_context])
            for layer, cond in enumerate(cond_refs):
                null = self.null_refs[layer].unsqueeze(0).expand(len(idents), -1, -1)
                refs[layer] = torch.cat([refs[layer], torch.cat([null, cond], dim=1)])
        inputs = {"encoder_hidden_states": context}
        inputs.update({ref_name(i): r.contiguous() for i, r in enumerate(refs)})
        return inputs

    def denoise(self, idents: list[Identity], cond_embeds: torch.Tensor, cond_refs: list[torch.Tensor]) -> torch.Tensor:
        fixed = self._rows(idents, cond_embeds, cond_refs)
        guided = self.params.guidance_scale != 1.0
        sched = self.scheduler
        sched.set_timesteps(self.params.num_inference_steps, device=self.device)
        x = torch.stack([i.noise for i in idents]).float() * float(sched.init_noise_sigma)
        gen = torch.Generator(device=self.device).manual_seed(self.params.seed)  # DDPM's step noise
        kwargs = {"generator": gen} if self.params.scheduler == "ddpm" else {}
        for t in sched.timesteps:
            rows = torch.cat([x, x]) if guided else x
            rows = sched.scale_model_input(rows, t).to(self.dtype)
            step = torch.full((rows.shape[0],), float(t), device=self.device, dtype=torch.float32)
            out = self.engines("unet", {"sample": rows, "timestep": step, **fixed})["noise_pred"].float()
            if guided:
                cond, uncond = out.chunk(2)
                g = self.params.guidance_scale
                out = (1.0 - g) * uncond + g * cond
            x = sched.step(out, t, x, **kwargs).prev_sample
        if not torch.isfinite(x).all():
            raise EngineError("the denoiser produced non-finite latents")
        return x
