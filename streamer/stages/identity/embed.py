"""Identity models: an aligned face crop in, an L2-normalized embedding out.

Two models, created by :func:`create_embedder` from an
:class:`~streamer.core.config.IdentityConfig`:

- ``dlib-resnet`` (default, CC0, ships with fawn): dlib's ResNet v1 as ONNX,
  input ``[N,3,150,150]`` RGB 0..255 (normalization inside the graph), output
  128-d. Aligned from the detector's 5 landmarks onto dlib's 150 px template.
- ``arcface``: any ArcFace ONNX (``w600k_r50.onnx`` from insightface's
  ``buffalo_l`` pack, non-commercial) from ``identity.model_path`` (a file or
  a pack folder) or ``~/.insightface/models``. Input ``[N,3,112,112]`` RGB,
  ``(x - 127.5) / 127.5`` unless the graph starts with its own Sub/Mul
  normalization (as insightface decides it), output 512-d. Aligned onto the
  ArcFace 112 template (insightface's ``norm_crop``).

Every embedder has a ``model_id`` (name and file digest): a gallery made with
one model is refused by another.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

import engines
from streamer.core.config import IDENTITY_MODELS, IdentityConfig
from streamer.core.errors import ConfigError, MissingExtraError, ModelError
from streamer.core.types import FloatArray, Image
from streamer.stages.identity.align import ARCFACE_TEMPLATE_112, DLIB_TEMPLATE_150, align_face
from streamer.stages.packs import find_pack_model

log = logging.getLogger(__name__)

# default cosine-similarity thresholds: same person at or above
DLIB_THRESHOLD = 0.93  # about dlib's L2 0.55 on its (unnormalized, norm ~1.45) descriptors
ARCFACE_THRESHOLD = 0.40
# recognition models of insightface's packs, preferred in this order
ARCFACE_FILES = ("w600k_r50.onnx", "glintr100.onnx", "w600k_mbf.onnx")


class Embedder(Protocol):
    """An identity model: ``align`` a face to its template, ``embed`` crops to unit vectors."""

    model_id: str
    dim: int
    size: int
    template: FloatArray
    default_threshold: float

    def align(self, image: Image, landmarks: FloatArray) -> Image: ...

    def embed(self, crops: list[Image]) -> FloatArray: ...


@dataclass(frozen=True)
class ModelSpec:
    """What an identity network expects: its template (at ``template_size`` px),
    input scaling ``(RGB - mean) / std`` and its default cosine threshold."""

    name: str
    template: FloatArray
    template_size: int
    mean: float
    std: float
    threshold: float


DLIB_SPEC = ModelSpec("dlib-resnet", DLIB_TEMPLATE_150, 150, 0.0, 1.0, DLIB_THRESHOLD)


class OnnxEmbedder:
    """A face-recognition ONNX model behind :func:`engines.create`. Outputs are
    L2-normalized, so a score is a cosine similarity."""

    def __init__(self, spec: ModelSpec, path: Path, cfg: IdentityConfig) -> None:
        self.engine = engines.create(cfg.engine, path, device=cfg.device, threads=cfg.threads)
        self.size = _check_input(self.engine, path)
        self.dim = _check_output(self.engine, path)
        self.template = (spec.template * (self.size / spec.template_size)).astype(np.float32)
        self.spec = spec
        self.default_threshold = spec.threshold
        self.model_id = f"{spec.name}:{file_digest(path)}"
        self.path = path
        self._input = self.engine.inputs[0].name
        self._output = self.engine.outputs[0].name
        batch = self.engine.inputs[0].shape[0]
        self._batched = not (isinstance(batch, int) and batch == 1)
        log.info("identity model %s (%s, %d-d, %d px)", self.model_id, path, self.dim, self.size)

    def align(self, image: Image, landmarks: FloatArray) -> Image:
        return align_face(image, landmarks, self.template, self.size)

    def embed(self, crops: list[Image]) -> FloatArray:
        """Embeddings [N,D] (unit length) of aligned BGR crops."""
        if not crops:
            return np.zeros((0, self.dim), np.float32)
        blob = np.stack([c[:, :, ::-1].transpose(2, 0, 1) for c in crops]).astype(np.float32)
        if self.spec.mean != 0.0 or self.spec.std != 1.0:
            blob = (blob - self.spec.mean) / self.spec.std
        if self._batched:
            out = self.engine.run({self._input: blob})[self._output]
        else:
            out = np.concatenate([self.engine.run({self._input: b[None]})[self._output] for b in blob])
        return normalize(np.asarray(out, np.float32).reshape(len(crops), -1))


def normalize(vectors: FloatArray) -> FloatArray:
    """Rows scaled to unit length (a zero row stays zero)."""
    v = np.asarray(vectors, np.float32)
    norms = np.linalg.norm(v, axis=-1, keepdims=True)
    return (v / np.maximum(norms, 1e-12)).astype(np.float32)


def _check_input(engine: engines.Engine, path: Path) -> int:
    if len(engine.inputs) != 1:
        raise ModelError(f"{path.name}: an identity model has one input, this one has {len(engine.inputs)}")
    shape = engine.inputs[0].shape
    if len(shape) != 4 or shape[1] != 3 or shape[2] != shape[3] or not isinstance(shape[2], int):
        raise ModelError(f"{path.name}: expected an input [N,3,S,S] (a square face crop), got {list(shape)}")
    return int(shape[2])


def _check_output(engine: engines.Engine, path: Path) -> int:
    shape = engine.outputs[0].shape
    if len(shape) != 2 or not isinstance(shape[1], int):
        raise ModelError(f"{path.name}: expected an output [N,D] (an embedding), got {list(shape)}")
    return int(shape[1])


def file_digest(path: Path) -> str:
    """First 16 hex digits of the file's SHA-256: part of a model's id."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()[:16]


def dlib_resnet(cfg: IdentityConfig) -> OnnxEmbedder:
    """The built-in dlib ResNet v1 (or a copy at ``cfg.model_path``)."""
    path = Path(cfg.model_path).expanduser() if cfg.model_path else engines.builtin_model("dlib-resnet")
    if not path.is_file():
        raise ModelError(f"dlib-resnet model not found: {path} (leave identity.model_path empty for the built-in one)")
    embedder = OnnxEmbedder(DLIB_SPEC, path, cfg)
    if embedder.size != 150:
        raise ModelError(f"{path.name} is not dlib ResNet v1: its input is {embedder.size} px, not 150")
    return embedder


def arcface(cfg: IdentityConfig) -> OnnxEmbedder:
    """An ArcFace ONNX from ``cfg.model_path`` (file or pack folder) or the insightface models folder."""
    path = find_arcface_model(cfg.model_path)
    scale = (0.0, 1.0) if graph_normalizes(path) else (127.5, 127.5)
    spec = ModelSpec("arcface", ARCFACE_TEMPLATE_112, 112, *scale, ARCFACE_THRESHOLD)
    embedder = OnnxEmbedder(spec, path, cfg)
    if embedder.size % 112 != 0:
        raise ModelError(f"{path.name}: an ArcFace model takes 112x112 crops, this one takes {embedder.size}")
    return embedder


def find_arcface_model(location: str | None) -> Path:
    """The ArcFace ONNX file at ``location`` (a file, or a folder holding packs or model files)."""
    return find_pack_model(location, ARCFACE_FILES, "ArcFace model",
                           "set identity.model_path to an ArcFace .onnx file or pack folder")


def graph_normalizes(path: Path) -> bool:
    """True when the graph's first 8 nodes hold its own Sub and Mul (the input then stays 0..255).

    Same rule as insightface's ArcFace loader (node names starting ``Sub``/``_minus``
    and ``Mul``/``_mul``: mxnet-exported models), and also by operator type.
    PyTorch-exported ``w600k_r50`` normalizes outside: ``(x - 127.5) / 127.5``.
    """
    try:
        import onnx
    except ImportError as exc:
        raise MissingExtraError("onnx", "arcface") from exc
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # onnx raises protobuf's untyped errors
        raise ModelError(f"cannot read {path}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from exc
    first = model.graph.node[:8]
    has_sub = any(n.op_type == "Sub" or n.name.startswith(("Sub", "_minus")) for n in first)
    has_mul = any(n.op_type == "Mul" or n.name.startswith(("Mul", "_mul")) for n in first)
    return has_sub and has_mul


_FACTORIES = {"dlib-resnet": dlib_resnet, "arcface": arcface}


def create_embedder(cfg: IdentityConfig) -> Embedder:
    """Factory: the identity model named by ``cfg.model``."""
    factory = _FACTORIES.get(cfg.model)
    if factory is None:
        raise ConfigError(f"identity.model: '{cfg.model}' is not valid (choices: {', '.join(IDENTITY_MODELS)})")
    embedder: Embedder = factory(cfg)
    return embedder
