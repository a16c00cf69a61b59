"""Golden test: one denoising step of fawn's fast path against a plain implementation of the paper's math.

The reference (written here from the paper and the authors' pipeline, independently of fawn's code):

* the ReferenceNets are stock diffusers UNets; a forward pre-hook records the input of every ``attn1``;
* each down/up block of the ReferenceNet yields the tuple of its attention modules' states, and every
  attention module of the matching denoiser block reads that tuple at its transformer-block index (so all
  of them read the block's first attention module's state);
* the denoiser's ``attn1`` runs full self-attention (queries, keys and values) over the concatenation
  ``[x, source refs, conditioning refs]`` and keeps x's rows;
* batch rows ``[uncond, cond]``: source latents ``[0, L]`` with contexts ``[0, (1-d)E]``, source states
  ``[S_null, (1-d)S + d*S_null]``; conditioning ``[L, L]`` with ``[E, E]``; denoiser context
  ``[[0, E], [(1-d)E, E]]``; guidance ``(1-g)*uncond + g*cond``.

Run on tiny random-init models with SD2.1's topology, loaded from the three downloaded folders.
"""

from __future__ import annotations

from typing import Any

import pytest

torch = pytest.importorskip("torch", reason="needs fawn[diffusion]")
pytest.importorskip("diffusers", reason="needs fawn[diffusion]")

from streamer.models.diffusion.info import read_info  # noqa: E402
from streamer.models.diffusion.loader import load_model  # noqa: E402
from streamer.stages.anonymize.diffusion.runtime import Placement, _torch_engines  # noqa: E402
from streamer.stages.anonymize.diffusion.sampler import EngineSet, Sampler, SamplerParams  # noqa: E402

RES = 128  # latent 16: the topology is what matters, and the naive attention stays small
DEGREE, GUIDANCE = 1.25, 4.0


def _capture(unet: Any) -> tuple[dict[str, Any], list[Any]]:
    states: dict[str, Any] = {}
    handles = []
    for name, module in unet.named_modules():
        if name.endswith("attn1"):
            def hook(mod: Any, args: tuple, kwargs: dict, name: str = name) -> None:
                states[name] = args[0] if args else kwargs["hidden_states"]
            handles.append(module.register_forward_pre_hook(hook, with_kwargs=True))
    return states, handles


def _block_tuples(states: dict[str, Any]) -> dict[str, list[Any]]:
    """ReferenceNet output as the authors' blocks return it: per block, its attention modules' states in order."""
    blocks: dict[str, list[tuple[int, int, Any]]] = {}
    for name, s in states.items():
        parts = name.split(".")
        prefix = ".".join(parts[:2]) if parts[0] != "mid_block" else "mid_block"
        rest = parts[2:] if parts[0] != "mid_block" else parts[1:]
        a, d = int(rest[1]), int(rest[3])
        blocks.setdefault(prefix, []).append((a, d, s))
    return {k: [s for _, _, s in sorted(v, key=lambda t: (t[0], t[1]))] for k, v in blocks.items()}


def _referencenet(unet: Any, latents: Any, context: Any) -> dict[str, list[Any]]:
    states, handles = _capture(unet)
    try:
        unet(latents, 0, encoder_hidden_states=context)
    finally:
        for h in handles:
            h.remove()
    return _block_tuples(states)


class _FullAttention:
    """attn1 of the denoiser: full self-attention over [x, refs], x's rows kept."""

    def __init__(self, refs: dict[str, list[Any]], name: str, same_name: bool = False) -> None:
        parts = name.split(".")
        self.block = ".".join(parts[:2]) if parts[0] != "mid_block" else "mid_block"
        self.depth = int(parts[-2])  # transformer_blocks.<d>.attn1
        if same_name:  # the wrong routing: the ReferenceNet layer of the same name (one transformer block per module)
            self.depth = int(parts[-4])
        self.refs = refs

    def __call__(self, attn: Any, hidden_states: Any, encoder_hidden_states: Any = None, attention_mask: Any = None,
                 temb: Any = None, **kwargs: Any) -> Any:
        x = hidden_states
        full = torch.cat([x, self.refs[self.block][self.depth]], dim=1)
        b, n, _ = full.shape
        h = attn.heads

        def split(t: Any) -> Any:
            return t.view(b, n, h, -1).transpose(1, 2)

        q, k, v = split(attn.to_q(full)), split(attn.to_k(full)), split(attn.to_v(full))
        weights = torch.softmax((q @ k.transpose(-1, -2)) * attn.scale, dim=-1)
        out = (weights @ v).transpose(1, 2).reshape(b, n, -1)
        out = attn.to_out[1](attn.to_out[0](out))
        return out[:, : x.shape[1]]


def _golden_noise(model: Any, latent: Any, embed: Any, x: Any, t: Any, same_name: bool = False, src_scale: bool = True) -> Any:
    from diffusers.models.attention_processor import AttnProcessor

    d, g = DEGREE, GUIDANCE
    zero = torch.zeros_like
    src = _referencenet(model.referencenet, torch.cat([zero(latent), latent]),
                        torch.cat([zero(embed), (1 - d) * embed if src_scale else embed])[:, None])
    src = {k: [torch.cat([s[:1], (1 - d) * s[1:] + d * s[:1]]) for s in v] for k, v in src.items()}
    cond = _referencenet(model.conditioning_referencenet, torch.cat([latent, latent]), torch.cat([embed, embed])[:, None])
    refs = {k: [torch.cat([a, c], dim=1) for a, c in zip(src[k], cond[k])] for k in src}
    unet = model.unet
    procs = {key: (_FullAttention(refs, key.removesuffix(".processor"), same_name) if key.endswith("attn1.processor") else AttnProcessor())
             for key in unet.attn_processors}
    unet.set_attn_processor(procs)
    context = torch.stack([torch.cat([zero(embed), embed]), torch.cat([(1 - d) * embed, embed])]).view(2, 2, -1)
    out = unet(torch.cat([x, x]), t, encoder_hidden_states=context).sample
    uncond, cond_out = out.chunk(2)
    return (1 - g) * uncond + g * cond_out


def _fast_noise(sampler: Sampler, latent: Any, embed: Any, x: Any, t: Any) -> Any:
    ident = sampler.identities(embed, latent, [7])[0]
    cond_refs = sampler._refs("conditioning_referencenet", latent, torch.stack([embed, embed], dim=1))
    fixed = sampler._rows([ident], embed, cond_refs)
    step = torch.full((2,), float(t))
    out = sampler.engines("unet", {"sample": torch.cat([x, x]), "timestep": step, **fixed})["noise_pred"]
    cond, uncond = out.chunk(2)
    return (1 - GUIDANCE) * uncond + GUIDANCE * cond


@pytest.fixture(scope="module")
def golden_inputs(tiny_download: Any) -> dict[str, Any]:
    info = read_info(tiny_download.model, tiny_download.base, tiny_download.image_encoder)
    gen = torch.Generator().manual_seed(3)
    side = info.latent_size(RES)
    return {
        "info": info,
        "latent": torch.randn(1, 4, side, side, generator=gen),
        "embed": torch.randn(1, info.cross_dim, generator=gen),
        "x": torch.randn(1, 4, side, side, generator=gen),
        "t": torch.tensor(601),
    }


def _sampler(info: Any, engines: dict[str, Any]) -> Sampler:
    params = SamplerParams(resolution=RES, anonymization_degree=DEGREE, guidance_scale=GUIDANCE, num_inference_steps=1)
    return Sampler(EngineSet(engines, torch.device("cpu"), torch.float32), info, params)


@pytest.fixture(scope="module")
def golden(golden_inputs: dict[str, Any]) -> Any:
    g = golden_inputs
    with torch.no_grad():
        return _golden_noise(load_model(g["info"]), g["latent"], g["embed"], g["x"], g["t"])


def test_torch_fast_path_matches_the_golden_step(golden_inputs: dict[str, Any], golden: Any) -> None:
    g = golden_inputs
    sampler = _sampler(g["info"], _torch_engines(g["info"], Placement("torch", "cpu", "fp32", RES), 1, 1))
    with torch.inference_mode():
        fast = _fast_noise(sampler, g["latent"], g["embed"], g["x"], g["t"])
    assert golden.abs().max() > 1e-3  # a real signal, not two zeros
    assert (fast - golden).abs().max().item() <= 1e-4


@pytest.mark.parametrize("variant", [{"same_name": True}, {"src_scale": False}], ids=["same-name-routing", "unscaled-source-context"])
def test_the_former_computation_is_caught(golden_inputs: dict[str, Any], golden: Any, variant: dict[str, bool]) -> None:
    """The tolerance can fail: what fawn computed before (same-named layers; unscaled source context) is far off."""
    g = golden_inputs
    with torch.no_grad():
        wrong = _golden_noise(load_model(g["info"]), g["latent"], g["embed"], g["x"], g["t"], **variant)
    assert (wrong - golden).abs().max().item() > 1e-3


def test_onnx_fast_path_matches_the_golden_step(golden_inputs: dict[str, Any], golden: Any, tmp_path_factory: pytest.TempPathFactory) -> None:
    pytest.importorskip("onnxruntime")
    import engines
    from export.build import ExportOptions, export_diffusion

    g = golden_inputs
    out = tmp_path_factory.mktemp("sd21_onnx")
    parts = ("referencenet", "conditioning_referencenet", "unet")
    arts = export_diffusion(g["info"], ExportOptions(out_dir=out, precision="fp32", max_batch=1, resolution=RES, components=parts))
    onnx = {name: engines.create("onnxruntime", art.path, device="cpu", threads=1) for name, art in arts.items()}
    sampler = _sampler(g["info"], onnx)
    with torch.inference_mode():
        fast = _fast_noise(sampler, g["latent"], g["embed"], g["x"], g["t"])
    assert (fast - golden).abs().max().item() <= 1e-4
