"""Reference attention: queries from x only equals full attention over [x, ref]; capture leaves outputs unchanged."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch", reason="needs fawn[diffusion]")
pytest.importorskip("diffusers", reason="needs fawn[diffusion]")

from diffusers.models.attention_processor import Attention, AttnProcessor2_0  # noqa: E402

from streamer.models.diffusion import attention  # noqa: E402
from streamer.models.diffusion.loader import load_model  # noqa: E402
from streamer.models.diffusion.modules import build_modules  # noqa: E402


def full_attention_then_slice(attn: Attention, x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """The straightforward way: self-attention over the concatenation (every token queries), keep x's rows."""
    tokens = torch.cat([x, ref], dim=1)
    b, n, c = tokens.shape
    q = attn.to_q(tokens).view(b, n, attn.heads, -1).transpose(1, 2)
    k = attn.to_k(tokens).view(b, n, attn.heads, -1).transpose(1, 2)
    v = attn.to_v(tokens).view(b, n, attn.heads, -1).transpose(1, 2)
    weights = torch.softmax(q @ k.transpose(-1, -2) * attn.scale, dim=-1)
    out = (weights @ v).transpose(1, 2).reshape(b, n, -1)
    out = attn.to_out[1](attn.to_out[0](out))
    return out[:, : x.shape[1]]


@pytest.mark.parametrize("heads", [1, 4])
def test_queries_from_x_only_equal_full_attention(heads: int) -> None:
    torch.manual_seed(0)
    attn = Attention(query_dim=32, heads=heads, dim_head=32 // heads).eval()
    x, ref = torch.randn(2, 37, 32), torch.randn(2, 74, 32)
    with torch.no_grad():
        fast = attention.reference_attention(attn, x, ref)
        slow = full_attention_then_slice(attn, x, ref)
    assert fast.shape == x.shape
    assert float((fast - slow).abs().max()) < 1e-5


def test_plain_self_attention_matches_diffusers() -> None:
    torch.manual_seed(1)
    attn = Attention(query_dim=32, heads=4, dim_head=8).eval()
    x = torch.randn(3, 20, 32)
    with torch.no_grad():
        ours = attention.plain_self_attention(attn, x)
        stock = AttnProcessor2_0()(attn, x)
    assert float((ours - stock).abs().max()) < 1e-5


def test_processors_refuse_masks_and_missing_refs() -> None:
    attn = Attention(query_dim=16, heads=2, dim_head=8)
    store = attention.ReferenceStore()
    with pytest.raises(RuntimeError, match="no reference states"):
        attention.ReferenceAttnProcessor(store, "layer")(attn, torch.zeros(1, 4, 16))
    with pytest.raises(ValueError, match="without a mask"):
        attention.CaptureProcessor(store, "layer")(attn, torch.zeros(1, 4, 16), attention_mask=torch.zeros(1, 4))


def test_capturing_referencenet_output_equals_stock_unet(tiny_model_dir: Path) -> None:
    """Installing the capture processors does not change what the UNet computes."""
    model = load_model(tiny_model_dir)
    sample, ctx = torch.randn(1, 4, 16, 16), torch.randn(1, 2, 32)
    with torch.no_grad():
        stock = model.referencenet(sample, 0, encoder_hidden_states=ctx).sample
        store, names = attention.install(model.referencenet, "capture")
        captured = model.referencenet(sample, 0, encoder_hidden_states=ctx).sample
    assert float((stock - captured).abs().max()) < 1e-5
    assert list(store.captured) and set(store.captured) == set(names)


def test_denoiser_with_own_states_as_reference(tiny_model_dir: Path) -> None:
    """Each denoiser attn1 sees [x, ref] instead of [x]: the output moves with the reference, and is finite."""
    model = load_model(tiny_model_dir)
    mods = build_modules(model, 64)
    sample, ctx = torch.randn(2, 4, 16, 16), torch.randn(2, 2, 32)
    with torch.no_grad():
        refs_a = mods["referencenet"](sample, ctx)
        refs_b = mods["referencenet"](torch.randn(2, 4, 16, 16), ctx)
        t = torch.full((2,), 500.0)
        out_a = mods["unet"](sample, t, ctx, *(torch.cat([r, r], 1) for r in refs_a))
        out_a2 = mods["unet"](sample, t, ctx, *(torch.cat([r, r], 1) for r in refs_a))
        out_b = mods["unet"](sample, t, ctx, *(torch.cat([r, r], 1) for r in refs_b))
    assert torch.isfinite(out_a).all()
    assert torch.equal(out_a, out_a2)
    assert float((out_a - out_b).abs().max()) > 1e-4
