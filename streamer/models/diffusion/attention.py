"""Reference attention through diffusers' attention-processor API.

A ReferenceNet runs once per image (timestep 0) and hands the input of each of
its self-attention layers (``attn1``, after the block's norm) to the denoiser.
In the denoiser, each ``attn1`` attends over ``[x, reference]`` along the
token axis, where the reference is the state of the first attention module of
the same down/up block (face_anon_simple's routing, see ``info.routed_source``). Only the queries of ``x`` are kept afterwards, so the queries are
taken from ``x`` alone: the same result for a third of the query work (see
``tests/streamer/models/diffusion/test_attention.py``, which checks it
against full attention over the concatenation).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from streamer.models.diffusion.info import routed_source

PROCESSOR_SUFFIX = ".processor"


@dataclass
class ReferenceStore:
    """Tensors shared between the processors of one network, keyed by ``attn1`` module name.

    A capturing network fills ``captured``; a denoiser reads ``refs``.
    """

    captured: dict[str, torch.Tensor] = field(default_factory=dict)
    refs: dict[str, torch.Tensor] = field(default_factory=dict)


def self_attention_names(unet: Any) -> list[str]:
    """Module names of the ``attn1`` layers of a UNet2DConditionModel, in execution order (down, mid, up)."""
    names = [k.removesuffix(PROCESSOR_SUFFIX) for k in unet.attn_processors if k.endswith("attn1" + PROCESSOR_SUFFIX)]
    order = {"down_blocks": 0, "mid_block": 1, "up_blocks": 2}
    return sorted(names, key=lambda n: (order.get(n.split(".")[0], 3), _numeric_key(n)))


def _numeric_key(name: str) -> list[int]:
    return [int(p) for p in name.split(".") if p.isdigit()]


def _check_plain_call(attn: Any, encoder_hidden_states: Any, attention_mask: Any) -> None:
    if encoder_hidden_states is not None or attention_mask is not None:
        raise ValueError("reference attention is for self-attention layers without a mask")
    if attn.spatial_norm is not None or attn.group_norm is not None:
        raise ValueError("reference attention does not support spatial/group-normed attention layers")


def _heads(attn: Any, t: torch.Tensor) -> torch.Tensor:
    b, n, inner = t.shape
    return t.view(b, n, attn.heads, inner // attn.heads).transpose(1, 2)


def _finish(attn: Any, out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    b, h, n, d = out.shape
    out = out.transpose(1, 2).reshape(b, n, h * d).to(x.dtype)
    out = attn.to_out[1](attn.to_out[0](out))
    if attn.residual_connection:
        out = out + x
    return out / attn.rescale_output_factor


def reference_attention(attn: Any, x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """Self-attention of ``x`` [B,N,C] whose keys and values also cover ``ref`` [B,M,C]; queries from ``x`` only."""
    context = torch.cat([x, ref.to(x.dtype)], dim=1)
    query = _heads(attn, attn.to_q(x))
    key = _heads(attn, attn.to_k(context))
    value = _heads(attn, attn.to_v(context))
    if attn.norm_q is not None:
        query = attn.norm_q(query)
    if attn.norm_k is not None:
        key = attn.norm_k(key)
    out = F.scaled_dot_product_attention(query, key, value, dropout_p=0.0, is_causal=False, scale=attn.scale)
    return _finish(attn, out, x)


def plain_self_attention(attn: Any, x: torch.Tensor) -> torch.Tensor:
    """Ordinary self-attention of ``x`` (what a ReferenceNet computes while it captures)."""
    query = _heads(attn, attn.to_q(x))
    key = _heads(attn, attn.to_k(x))
    value = _heads(attn, attn.to_v(x))
    if attn.norm_q is not None:
        query = attn.norm_q(query)
    if attn.norm_k is not None:
        key = attn.norm_k(key)
    out = F.scaled_dot_product_attention(query, key, value, dropout_p=0.0, is_causal=False, scale=attn.scale)
    return _finish(attn, out, x)


class CaptureProcessor:
    """ReferenceNet side: record this layer's input in ``store.captured[name]``, then attend as usual."""

    def __init__(self, store: ReferenceStore, name: str) -> None:
        self.store = store
        self.name = name

    def __call__(
        self,
        attn: Any,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        temb: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> torch.Tensor:
        _check_plain_call(attn, encoder_hidden_states, attention_mask)
        self.store.captured[self.name] = hidden_states
        return plain_self_attention(attn, hidden_states)


class ReferenceAttnProcessor:
    """Denoiser side: attend over ``[x, store.refs[source]]`` with queries from ``x``; ``source`` is the
    ReferenceNet layer this layer is routed to (:func:`~streamer.models.diffusion.info.routed_source`)."""

    def __init__(self, store: ReferenceStore, name: str) -> None:
        self.store = store
        self.name = routed_source(name)

    def __call__(
        self,
        attn: Any,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        temb: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> torch.Tensor:
        _check_plain_call(attn, encoder_hidden_states, attention_mask)
        ref = self.store.refs.get(self.name)
        if ref is None:
            raise RuntimeError(f"no reference states set for {self.name}")
        return reference_attention(attn, hidden_states, ref)


def install(unet: Any, kind: str) -> tuple[ReferenceStore, list[str]]:
    """Give ``unet`` capturing (``kind='capture'``) or reference (``'reference'``) ``attn1`` processors.

    Every other attention keeps diffusers' stock processor. Returns the shared
    store and the ``attn1`` names in execution order.
    """
    from diffusers.models.attention_processor import AttnProcessor2_0

    store = ReferenceStore()
    cls = {"capture": CaptureProcessor, "reference": ReferenceAttnProcessor}[kind]
    processors: dict[str, Any] = {}
    for key in unet.attn_processors:
        name = key.removesuffix(PROCESSOR_SUFFIX)
        processors[key] = cls(store, name) if name.endswith("attn1") else AttnProcessor2_0()
    unet.set_attn_processor(processors)
    return store, self_attention_names(unet)
