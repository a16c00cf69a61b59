"""One I/O description per exported model, shared by the ONNX export, the TensorRT build and the runtimes.

A :class:`ModelIO` names every input and output, gives each a shape whose
only free dimension is the batch (``"B"``), a dtype, and the batch range the
engine must serve (``min``/``opt``/``max``: the TensorRT optimization profile
and the ONNX dynamic axes both come from it). The diffusion model's six
networks get theirs from :func:`diffusion_specs`; an existing ONNX file (the
detector, the identity network) gets one from :func:`spec_from_onnx`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from streamer.core.errors import ModelError
from streamer.models.diffusion.info import ModelInfo, RefLayer

Dim = int | str
Shape = tuple[int, ...]

DIFFUSION_COMPONENTS = (
    "image_encoder",
    "vae_encoder",
    "vae_decoder",
    "referencenet",
    "conditioning_referencenet",
    "unet",
)
# the model folder each exported network comes from (for fingerprints)
SOURCE_FOLDER = {
    "image_encoder": "image_encoder",
    "vae_encoder": "vae",
    "vae_decoder": "vae",
    "referencenet": "referencenet",
    "conditioning_referencenet": "conditioning_referencenet",
    "unet": "unet",
}
CONTEXT_TOKENS = 2  # the denoiser's cross-attention context: [source embedding, conditioning embedding]


def ref_name(i: int) -> str:
    return f"ref_{i:02d}"


@dataclass(frozen=True)
class TensorIO:
    name: str
    shape: tuple[Dim, ...]
    dtype: str  # numpy dtype name: float32, float16, int64 ...

    def concrete(self, dims: dict[str, int]) -> Shape:
        """The shape with symbolic dims replaced from ``dims``."""
        try:
            return tuple(d if isinstance(d, int) else dims[d] for d in self.shape)
        except KeyError as exc:
            raise ModelError(f"{self.name}: no value for dimension {exc}") from None


@dataclass(frozen=True)
class ModelIO:
    """Names, shapes, dtypes and dynamic ranges of one model's inputs and outputs."""

    name: str
    inputs: tuple[TensorIO, ...]
    outputs: tuple[TensorIO, ...]
    # symbolic dim -> (min, opt, max)
    ranges: dict[str, tuple[int, int, int]] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    def dims(self, which: int) -> dict[str, int]:
        """Values of the symbolic dims at ``which`` = 0 (min), 1 (opt) or 2 (max)."""
        return {k: v[which] for k, v in self.ranges.items()}

    def dynamic_axes(self) -> dict[str, dict[int, str]]:
        """``torch.onnx.export``'s dynamic_axes argument."""
        out: dict[str, dict[int, str]] = {}
        for t in (*self.inputs, *self.outputs):
            axes = {i: d for i, d in enumerate(t.shape) if isinstance(d, str)}
            if axes:
                out[t.name] = axes
        return out

    def profile(self) -> dict[str, tuple[Shape, Shape, Shape]]:
        """Per input: (min, opt, max) shapes, for a TensorRT optimization profile."""
        return {t.name: (t.concrete(self.dims(0)), t.concrete(self.dims(1)), t.concrete(self.dims(2))) for t in self.inputs}

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ModelIO:
        def tensors(items: list[dict[str, Any]]) -> tuple[TensorIO, ...]:
            return tuple(TensorIO(t["name"], tuple(t["shape"]), t["dtype"]) for t in items)

        return cls(
            name=data["name"],
            inputs=tensors(data["inputs"]),
            outputs=tensors(data["outputs"]),
            ranges={k: (int(v[0]), int(v[1]), int(v[2])) for k, v in data.get("ranges", {}).items()},
            meta=dict(data.get("meta", {})),
        )


def float_dtype(precision: str) -> str:
    if precision not in ("fp16", "fp32"):
        raise ModelError(f"precision '{precision}' is not valid (choices: fp16, fp32)")
    return "float16" if precision == "fp16" else "float32"


def diffusion_specs(info: ModelInfo, resolution: int, max_faces: int, precision: str) -> dict[str, ModelIO]:
    """The I/O description of each of the six networks, for crops of ``resolution`` px and up to ``max_faces`` faces.

    The denoiser's batch is twice the faces (classifier-free guidance: conditional and unconditional rows).
    """
    if max_faces < 1:
        raise ModelError("max batch must be >= 1 face")
    f = float_dtype(precision)
    lat = info.latent_size(resolution)
    c, s, d = info.latent_channels, info.clip_size, info.cross_dim
    layers = info.ref_sources(resolution)
    faces = (1, max(1, min(2, max_faces)), max_faces)
    rows = (1, 2 * faces[1], 2 * max_faces)
    latent = ("B", c, lat, lat)
    context = TensorIO("encoder_hidden_states", ("B", CONTEXT_TOKENS, d), f)
    meta = {"resolution": resolution, "ref_layers": [asdict(layer) for layer in layers]}
    specs = [
        ModelIO("image_encoder", (TensorIO("pixel_values", ("B", 3, s, s), f),), (TensorIO("image_embeds", ("B", d), f),), {"B": faces}),
        ModelIO("vae_encoder", (TensorIO("image", ("B", 3, resolution, resolution), f),), (TensorIO("latent", latent, f),), {"B": faces}),
        ModelIO("vae_decoder", (TensorIO("latent", latent, f),), (TensorIO("image", ("B", 3, resolution, resolution), f),), {"B": faces}),
        *(
            ModelIO(name, (TensorIO("sample", latent, f), context), _refs(layers, f, 1), {"B": faces}, meta)
            for name in ("referencenet", "conditioning_referencenet")
        ),
        ModelIO(
            "unet",
            (TensorIO("sample", latent, f), TensorIO("timestep", ("B",), "float32"), context, *_refs(layers, f, 2)),
            (TensorIO("noise_pred", latent, f),),
            {"B": rows},
            meta,
        ),
    ]
    return {spec.name: spec for spec in specs}


def _refs(layers: list[RefLayer], dtype: str, copies: int) -> tuple[TensorIO, ...]:
    """Reference-state tensors: one per routed source layer; the denoiser gets source and conditioning concatenated."""
    return tuple(TensorIO(ref_name(i), ("B", copies * layer.tokens, layer.channels), dtype) for i, layer in enumerate(layers))


# ----------------------------------------------------------------------------- existing ONNX models


def spec_from_onnx(path: Path, name: str, ranges: dict[str, tuple[int, int, int]] | None = None) -> ModelIO:
    """The I/O description of an existing ONNX file; its symbolic dims get ``ranges`` (min, opt, max).

    Every symbolic input dim needs a range; the default covers a batch dim
    named like ``B``/``N``/``batch`` with (1, 1, 8).
    """
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    try:
        session = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own untyped errors
        raise ModelError(f"cannot read {path}: {str(exc).splitlines()[0]}") from exc
    dtype = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(int64)": "int64", "tensor(int32)": "int32"}
    inputs = tuple(TensorIO(i.name, tuple(_dim(d) for d in i.shape), dtype.get(i.type, i.type)) for i in session.get_inputs())
    outputs = tuple(TensorIO(o.name, tuple(_dim(d) for d in o.shape), dtype.get(o.type, o.type)) for o in session.get_outputs())
    given = dict(ranges or {})
    symbols = {d for t in inputs for d in t.shape if isinstance(d, str)}
    for sym in sorted(symbols - set(given)):
        if sym.lower() in ("b", "n", "batch", "batch_size"):
            given[sym] = (1, 1, 8)
        else:
            raise ModelError(f"{path.name}: input dimension '{sym}' needs a (min, opt, max) range for the engine profile")
    return ModelIO(name, inputs, outputs, {k: v for k, v in given.items() if k in symbols})


def _dim(d: Any) -> Dim:
    if isinstance(d, int) and d > 0:
        return d
    return str(d) if d not in (None, -1) else "dyn"
