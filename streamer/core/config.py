"""Frozen configuration dataclasses that mirror the stage constructors.

A YAML preset (``configs/*.yaml``) or a dict is loaded with :func:`load_config`.
Unknown keys and bad values raise :class:`ConfigError` naming the key and the
valid choices, before any model or stream is opened.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Union, get_args, get_origin

import yaml

from streamer.core.errors import ConfigError
from streamer.core.registry import ANONYMIZERS as METHODS
from streamer.core.registry import DETECTOR_ENGINES, DETECTORS
from streamer.core.registry import EMBEDDERS as IDENTITY_MODELS
from streamer.core.registry import MODEL_ENGINES as ENGINES
from streamer.core.registry import PLATE_ANONYMIZERS as PLATE_METHODS

DEVICES = ("cpu", "cuda", "tensorrt")
DETECTOR_PRECISIONS = ("auto", "int8", "fp32")
PAD_MODES = ("constant", "reflect")
MODES = ("exempt", "target", "all")
SHAPES = ("ellipse", "box")
ON_ERROR = ("blur_frame", "tracks")
STALL_FILLS = ("hold", "blank", "none")


def _choice(default: str, choices: tuple[str, ...]) -> Any:
    return field(default=default, metadata={"choices": choices})


@dataclass(frozen=True)
class DetectorConfig:
    """Face detector. ``every_n`` > 1 detects on every Nth frame; the tracker predicts between.
    ``adaptive``: with ``every_n`` > 1, still detect every frame while a track is new
    or coasting (the frames where skipping would risk a face). ``timeout_ms``: a
    detection slower than this counts as a failure (``on_error`` applies; null: wait).
    Several streams in one process share one detector: requests from different
    streams that arrive within ``batch_wait_ms`` of each other run as one batch of
    at most ``max_batch`` frames (null: 1 on ``cpu``, where a batch gains little per
    frame and adds latency (docs/benchmarks.md §6), 8 on ``cuda``/``tensorrt``).

    ``engine`` ``auto``: OpenVINO on ``cpu`` when ``fawn[openvino]`` is installed
    (fastest here, docs/benchmarks.md §8), else onnxruntime. ``precision`` ``auto``:
    the int8 CenterFace on ``cpu`` (no face-frame lost against fp32 on the stress
    bench), fp32 on a GPU; ignored when ``model`` names a file. ``max_side``: frames
    whose long side is larger are shrunk to it before detection (1920: 1080p runs at
    native resolution; raise it for 4K, at ~4x the detector time). ``edge_pad``:
    the frame is padded on every side by this fraction of its short side
    (``pad_mode`` ``reflect``: mirrored, so a face cut by the frame edge becomes a
    near-whole, roughly symmetric face again; or ``constant`` black) and a face cut by
    the frame edge is still detected; 0 turns it off. ``edge_threshold``: the score a
    detection whose box runs past the frame edge needs; null: ``threshold`` (reflected,
    cut faces score like whole ones; docs/benchmarks.md §9). ``second_look``: a track no detection of the frame matched whose
    face is at most this many px (network pixels) gets a closer look: a crop around it,
    upscaled, detected again (18 px faces at 1080p come and go at native size); 0: off.
    ``recheck_threshold``: a detection scoring below ``threshold`` but at least this gets
    the same closer look and is kept if a face scores ``threshold`` there (fast,
    motion-blurred faces score low on the whole frame, high on the crop; most textures
    that score this low do not); 0: off."""

    backend: str = _choice("centerface", DETECTORS)
    model: str | None = None
    engine: str = _choice("auto", DETECTOR_ENGINES)
    device: str = _choice("cpu", DEVICES)
    precision: str = _choice("auto", DETECTOR_PRECISIONS)
    threshold: float = 0.15  # 0.25 lost 18 px faces at 1080p (stress bench, docs/benchmarks.md §9)
    nms_iou: float = 0.3
    max_side: int = 1920
    edge_pad: float = 0.1
    pad_mode: str = _choice("reflect", PAD_MODES)
    edge_threshold: float | None = None
    second_look: float = 40.0
    recheck_threshold: float = 0.07
    every_n: int = 1
    adaptive: bool = True
    threads: int = 0
    timeout_ms: float | None = None
    max_batch: int | None = None
    batch_wait_ms: float = 4.0

    def __post_init__(self) -> None:
        _require(0.0 < self.threshold < 1.0, "detector.threshold", "must be in (0, 1)")
        _require(self.timeout_ms is None or self.timeout_ms > 0, "detector.timeout_ms", "must be > 0 or null (no limit)")
        _require(self.max_batch is None or 1 <= self.max_batch <= 64, "detector.max_batch",
                 "must be in [1, 64] or null (auto: 1 on cpu, 8 on a GPU)")
        _require(0.0 <= self.batch_wait_ms <= 1000.0, "detector.batch_wait_ms", "must be in [0, 1000]")
        _require(0.0 < self.nms_iou <= 1.0, "detector.nms_iou", "must be in (0, 1]")
        _require(self.max_side >= 64, "detector.max_side", "must be >= 64")
        _require(self.edge_threshold is None or 0.0 < self.edge_threshold < 1.0, "detector.edge_threshold",
                 "must be in (0, 1) or null (same as threshold)")
        _require(0.0 <= self.edge_pad <= 0.5, "detector.edge_pad", "must be in [0, 0.5] (fraction of the short side)")
        _require(self.second_look >= 0, "detector.second_look", "must be >= 0 (px; 0 turns it off)")
        _require(0.0 <= self.recheck_threshold < 1.0, "detector.recheck_threshold", "must be in [0, 1) (0 turns it off)")
        _require(self.every_n >= 1, "detector.every_n", "must be >= 1")
        _require(self.threads >= 0, "detector.threads", "must be >= 0 (0 = all cores)")

    def batch_size(self) -> int:
        """``max_batch``, or the measured default for the device."""
        if self.max_batch is not None:
            return self.max_batch
        return 1 if self.device == "cpu" else 8


@dataclass(frozen=True)
class TrackerConfig:
    """Tracker: a face missed by the detector coasts at its predicted box for ``max_coast`` frames."""

    max_coast: int = 30
    iou_threshold: float = 0.1
    max_center_jump: float = 1.0
    box_grow_per_frame: float = 0.08

    def __post_init__(self) -> None:
        _require(self.max_coast >= 0, "tracker.max_coast", "must be >= 0")
        _require(0.0 <= self.iou_threshold < 1.0, "tracker.iou_threshold", "must be in [0, 1)")
        _require(self.max_center_jump > 0, "tracker.max_center_jump", "must be > 0")
        _require(self.box_grow_per_frame >= 0, "tracker.box_grow_per_frame", "must be >= 0")


@dataclass(frozen=True)
class AnonymizerConfig:
    """How a face is hidden. ``strength``: blur kernel as a fraction of the face size,
    or pixelate blocks across the face. ``padding`` enlarges the region around the box."""

    method: str = _choice("blur", METHODS)
    shape: str = _choice("ellipse", SHAPES)
    padding: float = 0.4  # the detector box often misses the chin or forehead: a margin covers them
    feather: float = 0.15
    # 0.5 left detail a 2x downscale (a resolution-switch letterbox) brought back; 0.8 left a
    # faint correlated residual on 70 px faces (stress bench, tilt segment)
    strength: float = 1.5
    blocks: int = 5  # 8, then 6 left a shifted box's rim recognizable (whole-box oracle, demo frames 136-149)
    color: tuple[int, int, int] = (0, 0, 0)

    def __post_init__(self) -> None:
        _require(0.0 <= self.padding <= 2.0, "anonymizer.padding", "must be in [0, 2]")
        _require(0.0 <= self.feather <= 0.5, "anonymizer.feather", "must be in [0, 0.5]")
        _require(0.05 <= self.strength <= 2.0, "anonymizer.strength", "must be in [0.05, 2]")
        _require(2 <= self.blocks <= 64, "anonymizer.blocks", "must be in [2, 64]")
        _require(len(self.color) == 3, "anonymizer.color", "must be 3 values (B, G, R)")


@dataclass(frozen=True)
class IOConfig:
    """Decode/encode threads and outputs. Live sources drop the oldest frame when behind.

    Live sources reconnect after a drop, or after ``read_timeout`` seconds without
    data (a stall), up to ``reconnect_attempts`` times per outage, waiting
    ``reconnect_backoff * 2**k`` (at most ``reconnect_max_backoff``) before try k.
    While a live source gives no frame for ``stall_after`` seconds the output keeps
    going at the stream's frame rate: ``stall_fill`` ``hold`` repeats the last
    anonymized frame for ``hold_for`` seconds, then black frames; ``blank`` sends
    black frames at once; ``none`` sends nothing. A raw frame is never sent.
    """

    queue_size: int = 8
    codec: str = "libx264"
    preset: str = "veryfast"
    crf: int = 23
    live_preset: str = "ultrafast"
    reconnect_attempts: int = 5
    reconnect_backoff: float = 0.5
    reconnect_max_backoff: float = 1.0
    open_timeout: float = 10.0
    read_timeout: float = 5.0
    progress: bool = True
    stall_after: float = 0.5
    stall_fill: str = _choice("hold", STALL_FILLS)
    hold_for: float = 5.0
    jpeg_quality: int = 95  # image-sequence outputs (JPEG/WebP); PNG/BMP/TIFF are lossless
    keep_metadata: bool = False  # image sequences: keep EXIF (GPS, camera) in the outputs

    def __post_init__(self) -> None:
        _require(self.queue_size >= 1, "io.queue_size", "must be >= 1")
        _require(1 <= self.jpeg_quality <= 100, "io.jpeg_quality", "must be in [1, 100]")
        _require(0 <= self.crf <= 51, "io.crf", "must be in [0, 51]")
        _require(self.reconnect_attempts >= 0, "io.reconnect_attempts", "must be >= 0")
        _require(self.reconnect_backoff >= 0, "io.reconnect_backoff", "must be >= 0")
        _require(self.reconnect_max_backoff >= 0, "io.reconnect_max_backoff", "must be >= 0")
        _require(self.open_timeout > 0, "io.open_timeout", "must be > 0")
        _require(self.read_timeout > 0, "io.read_timeout", "must be > 0")
        _require(self.stall_after > 0, "io.stall_after", "must be > 0 (seconds)")
        _require(self.hold_for >= 0, "io.hold_for", "must be >= 0 (seconds)")


ANNOTATION_FORMATS = ("jsonl", "coco")


@dataclass(frozen=True)
class AnnotationsConfig:
    """The record of what was hidden (``--annotations``): every anonymized region per frame,
    as JSON Lines or one COCO JSON. ``path`` null: no record. In ``fawn batch`` any path turns
    the record on and each item's record is written next to its output (``OUT.annotations.jsonl``)."""

    path: str | None = None
    format: str = _choice("jsonl", ANNOTATION_FORMATS)


@dataclass(frozen=True)
class IdentityConfig:
    """Registered people, decided once per track. Without a gallery every face is anonymized.

    ``model``: the identity network (``dlib-resnet`` ships with fawn; ``arcface``
    loads an insightface pack from ``model_path`` or ``~/.insightface/models``).
    ``threshold``: cosine similarity to a registered photo (None: the model's
    default, dlib-resnet 0.93, arcface 0.40). A track is decided when its last
    ``samples`` good samples (at least ``sample_gap`` frames apart, face side
    >= ``min_face`` px, sharpness >= ``min_sharpness``, frontalness >=
    ``min_frontal``) agree; after
    ``max_samples`` without agreement it stays anonymized. A decided track is
    re-checked when its box jumps by ``jump`` of its size, its appearance
    drifts by ``drift``, it is re-acquired after coasting ``reacquire_after``
    frames, and at least every ``recheck_every`` frames (``recheck_grace``
    frames to find a good sample before it is anonymized). ``audit``: JSONL log.
    """

    gallery: str | None = None
    mode: str = _choice("exempt", MODES)
    model: str = _choice("dlib-resnet", IDENTITY_MODELS)
    model_path: str | None = None
    engine: str = _choice("onnxruntime", ENGINES)
    device: str = _choice("cpu", DEVICES)
    threads: int = 0
    threshold: float | None = None
    samples: int = 3
    max_samples: int = 6
    sample_gap: int = 3
    min_face: float = 40.0
    min_sharpness: float = 10.0
    min_frontal: float = 0.5
    jump: float | None = 0.5
    drift: float | None = 0.3
    reacquire_after: int = 3
    recheck_every: int = 90
    recheck_grace: int = 10
    audit: str | None = None

    def __post_init__(self) -> None:
        _require(self.threads >= 0, "identity.threads", "must be >= 0 (0 = all cores)")
        _require(self.threshold is None or -1.0 < self.threshold < 1.0, "identity.threshold", "must be in (-1, 1) (cosine similarity)")
        _require(self.samples >= 1, "identity.samples", "must be >= 1")
        _require(self.max_samples >= self.samples, "identity.max_samples", "must be >= identity.samples")
        _require(self.sample_gap >= 1, "identity.sample_gap", "must be >= 1")
        _require(self.min_face > 0, "identity.min_face", "must be > 0 (pixels)")
        _require(self.min_sharpness >= 0, "identity.min_sharpness", "must be >= 0")
        _require(0.0 <= self.min_frontal <= 1.0, "identity.min_frontal", "must be in [0, 1]")
        _require(self.jump is None or self.jump > 0, "identity.jump", "must be > 0 or null (off)")
        _require(self.drift is None or self.drift > 0, "identity.drift", "must be > 0 or null (off)")
        _require(self.reacquire_after >= 1, "identity.reacquire_after", "must be >= 1")
        _require(self.recheck_every >= 1, "identity.recheck_every", "must be >= 1")
        _require(self.recheck_grace >= 0, "identity.recheck_grace", "must be >= 0")


@dataclass(frozen=True)
class KSameConfig:
    """k-Same (``anonymizer.method: ksame``): every face is replaced by the average aligned face
    of a cluster of at least ``k`` gallery faces (clustered by identity embedding), pasted back.

    ``faces``: a folder of face photos (the k-Same gallery; a ``fawn enroll`` gallery holds
    no photos and cannot be used). ``size``: side of the aligned crops in pixels;
    ``padding``: crop margin around the face (dlib chip padding); ``feather``: soft edge of the
    pasted face as a fraction of its radius.
    """

    k: int = 3
    faces: str | None = None
    size: int = 128
    padding: float = 0.35
    feather: float = 0.15

    def __post_init__(self) -> None:
        _require(self.k >= 2, "ksame.k", "must be >= 2")
        _require(32 <= self.size <= 512, "ksame.size", "must be in [32, 512]")
        _require(0.1 <= self.padding <= 1.0, "ksame.padding", "must be in [0.1, 1]")
        _require(0.0 <= self.feather <= 0.5, "ksame.feather", "must be in [0, 0.5]")


DIFFUSION_SCHEDULERS = ("dpmsolver++", "ddim", "ddpm")
DIFFUSION_DEVICES = ("auto", "cpu", "cuda")
DIFFUSION_PRECISIONS = ("auto", "fp16", "fp32")


@dataclass(frozen=True)
class DiffusionConfig:
    """Diffusion anonymizer (``anonymizer.method: diffusion``): each hidden face becomes a synthetic one.

    ``model``: the face_anon_simple folder as downloaded (``unet/``, ``referencenet/``,
    ``conditioning_referencenet/``); ``base_model``: the Stable Diffusion 2.1 folder
    (its ``vae/``, ``scheduler/``); ``image_encoder``: the CLIP folder
    (openai/clip-vit-large-patch14). Without the last two, ``model`` must hold
    ``vae/``, ``scheduler/`` and ``image_encoder/`` itself (one-folder layout).
    ``backend``: torch, onnxruntime or tensorrt (the last two run engines that
    ``fawn export`` writes to ``engine_dir``, building them on first use);
    ``device``/``precision``: ``auto`` is cuda+fp16 when a GPU is visible, else cpu+fp32.
    ``anonymization_degree`` > 1 pushes away from the source identity;
    ``guidance_scale`` is classifier-free guidance; ``resolution``: crop side
    (None: 512, what the weights were trained at; ``scheduler: ddpm`` is the authors' sampler). Real time: each track gets a keyframe at
    most every ``keyframe_interval`` frames (and only when its aligned face changed
    by more than ``change_threshold``); in between its last synthetic face is
    warped to the current landmarks. Up to ``max_batch`` faces share a batch.
    The frame loop waits at most ``latency_budget_ms`` for a keyframe (0: never;
    raise it for offline files); a face whose keyframe is more than ``max_lag``
    frames late, failed, or not made yet is blurred.
    """

    model: str | None = None
    base_model: str | None = None
    image_encoder: str | None = None
    backend: str = _choice("torch", ENGINES)
    device: str = _choice("auto", DIFFUSION_DEVICES)
    precision: str = _choice("auto", DIFFUSION_PRECISIONS)
    engine_dir: str | None = None
    anonymization_degree: float = 1.25
    guidance_scale: float = 4.0
    num_inference_steps: int = 8
    scheduler: str = _choice("dpmsolver++", DIFFUSION_SCHEDULERS)
    resolution: int | None = None
    seed: int = 0
    keyframe_interval: int = 6
    change_threshold: float = 0.03
    max_lag: int = 15
    max_batch: int = 4
    latency_budget_ms: float = 0.0
    feather: float = 0.2
    colour_match: bool = True
    evict_after: int = 90
    threads: int = 0

    def __post_init__(self) -> None:
        _require(0.0 <= self.anonymization_degree <= 3.0, "diffusion.anonymization_degree", "must be in [0, 3]")
        _require(self.guidance_scale >= 1.0, "diffusion.guidance_scale", "must be >= 1 (1 = no guidance)")
        _require(1 <= self.num_inference_steps <= 200, "diffusion.num_inference_steps", "must be in [1, 200]")
        _require(self.resolution is None or 32 <= self.resolution <= 2048, "diffusion.resolution", "must be in [32, 2048] or null (native)")
        _require(self.keyframe_interval >= 1, "diffusion.keyframe_interval", "must be >= 1")
        _require(self.change_threshold >= 0, "diffusion.change_threshold", "must be >= 0")
        _require(self.max_lag >= 0, "diffusion.max_lag", "must be >= 0 (frames)")
        _require(1 <= self.max_batch <= 64, "diffusion.max_batch", "must be in [1, 64]")
        _require(self.latency_budget_ms >= 0, "diffusion.latency_budget_ms", "must be >= 0")
        _require(0.0 <= self.feather <= 1.0, "diffusion.feather", "must be in [0, 1]")
        _require(self.evict_after >= 1, "diffusion.evict_after", "must be >= 1")
        _require(self.threads >= 0, "diffusion.threads", "must be >= 0 (0 = default)")


PLATE_LAYOUTS = ("auto", "v8", "v5", "e2e")


@dataclass(frozen=True)
class PlatesConfig:
    """License plates (``--plates MODEL.onnx``): a second detector, its own tracker, always anonymized.

    ``model``: an ONNX detector in a YOLO-family export layout (fawn ships none: see
    the README); null turns plates off. ``layout``: ``auto`` picks v8 / v5 / e2e by
    the output's shape. ``imgsz``: the input's long side for a model whose input
    size is dynamic (a fixed one is used as is). ``tiles`` [columns, rows]: run the
    model on that grid of crops (neighbours overlap by ``tile_overlap``) so small,
    distant plates keep enough pixels (cost: one model run per tile);
    ``whole_frame`` with a grid also runs it once on the whole frame (two scales:
    a model misses plates that look much larger than those it was trained on).
    ``threshold`` is low on purpose (0.05): a false plate costs a blurred patch, a
    missed one a readable plate (docs/benchmarks.md §8, recall per plate style). ``classes``: the class ids that
    are plates (empty: every class). ``method`` hides a plate (``solid`` for strict
    mode) with ``padding`` around its box, ``strength``/``blocks``/``color`` as in
    ``anonymizer``. ``every_n``/``timeout_ms`` as in ``detector``; tracks coast with
    the ``tracker`` settings. Identity never applies to plates.
    """

    model: str | None = None
    engine: str = _choice("onnxruntime", ENGINES)
    device: str = _choice("cpu", DEVICES)
    threads: int = 0
    layout: str = _choice("auto", PLATE_LAYOUTS)
    imgsz: int = 640
    threshold: float = 0.05
    nms_iou: float = 0.5
    classes: tuple[int, ...] = ()
    tiles: tuple[int, int] = (1, 1)
    tile_overlap: float = 0.2
    whole_frame: bool = False
    method: str = _choice("blur", PLATE_METHODS)
    padding: float = 0.15
    feather: float = 0.1
    strength: float = 1.0
    blocks: int = 6
    color: tuple[int, int, int] = (0, 0, 0)
    every_n: int = 1
    timeout_ms: float | None = None

    def __post_init__(self) -> None:
        _require(self.model is None or bool(self.model.strip()), "plates.model", "must be a path or null (off)")
        _require(self.threads >= 0, "plates.threads", "must be >= 0 (0 = all cores)")
        _require(32 <= self.imgsz <= 4096 and self.imgsz % 32 == 0, "plates.imgsz", "must be a multiple of 32 in [32, 4096]")
        _require(0.0 < self.threshold < 1.0, "plates.threshold", "must be in (0, 1)")
        _require(0.0 < self.nms_iou <= 1.0, "plates.nms_iou", "must be in (0, 1]")
        _require(all(c >= 0 for c in self.classes), "plates.classes", "must be class ids >= 0")
        _require(len(self.tiles) == 2 and all(1 <= t <= 8 for t in self.tiles), "plates.tiles",
                 "must be [columns, rows], each in [1, 8]")
        _require(0.0 <= self.tile_overlap < 0.5, "plates.tile_overlap", "must be in [0, 0.5)")
        _require(0.0 <= self.padding <= 2.0, "plates.padding", "must be in [0, 2]")
        _require(0.0 <= self.feather <= 0.5, "plates.feather", "must be in [0, 0.5]")
        _require(0.05 <= self.strength <= 2.0, "plates.strength", "must be in [0.05, 2]")
        _require(2 <= self.blocks <= 64, "plates.blocks", "must be in [2, 64]")
        _require(len(self.color) == 3, "plates.color", "must be 3 values (B, G, R)")
        _require(self.every_n >= 1, "plates.every_n", "must be >= 1")
        _require(self.timeout_ms is None or self.timeout_ms > 0, "plates.timeout_ms", "must be > 0 or null (no limit)")

    @property
    def enabled(self) -> bool:
        return self.model is not None


@dataclass(frozen=True)
class StreamConfig:
    """One stream of a multi-stream run (``streams:`` in a config): ``fawn run -c cams.yaml``.

    ``source``: a path, ``rtsp://…``, ``cam:N`` or ``demo``; ``output``: a path,
    ``rtsp://…`` or ``null``. ``name`` labels its stats and metrics (default: stream-<i>).
    """

    source: str
    output: str = "null"
    name: str | None = None

    def __post_init__(self) -> None:
        _require(bool(self.source), "streams.source", "must not be empty")
        _require(self.name is None or bool(self.name.strip()), "streams.name", "must not be empty")


@dataclass(frozen=True)
class PipelineConfig:
    detector: DetectorConfig = field(default_factory=DetectorConfig)
    tracker: TrackerConfig = field(default_factory=TrackerConfig)
    anonymizer: AnonymizerConfig = field(default_factory=AnonymizerConfig)
    identity: IdentityConfig = field(default_factory=IdentityConfig)
    io: IOConfig = field(default_factory=IOConfig)
    ksame: KSameConfig = field(default_factory=KSameConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    plates: PlatesConfig = field(default_factory=PlatesConfig)
    annotations: AnnotationsConfig = field(default_factory=AnnotationsConfig)
    # detector failure on a frame: the whole frame is blurred in both modes (a face that
    # appeared during the failure has no track); "tracks" first anonymizes the known
    # tracks with the configured method
    on_error: str = _choice("blur_frame", ON_ERROR)
    streams: tuple[StreamConfig, ...] = ()

    def __post_init__(self) -> None:
        names = [s.name for s in self.streams if s.name is not None]
        dupes = sorted({n for n in names if names.count(n) > 1})
        _require(not dupes, "streams.name", f"must be unique (repeated: {', '.join(dupes)})")

    def stream_names(self) -> list[str]:
        """The name of each configured stream (``stream-<i>`` where none is given)."""
        return [s.name or f"stream-{i}" for i, s in enumerate(self.streams)]


def _require(ok: bool, key: str, message: str) -> None:
    if not ok:
        raise ConfigError(f"{key}: {message}")


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> PipelineConfig:
    """Load a preset name (``cctv``), a YAML path, or None (defaults), then apply overrides.

    ``overrides`` maps dotted keys (``"anonymizer.method"``) to values.
    """
    data: dict[str, Any] = _read_yaml(path) if path is not None else {}
    for dotted, value in (overrides or {}).items():
        _set_dotted(data, dotted, value)
    return from_dict(PipelineConfig, data, prefix="")


def presets_dir() -> Path:
    """The ``configs/`` folder (shipped as package data)."""
    return Path(str(resources.files("configs")))


def resolve_preset(path: str | Path) -> Path:
    p = Path(path)
    if p.suffix in (".yaml", ".yml") or p.exists():
        return p
    candidate = presets_dir() / f"{path}.yaml"
    if candidate.exists():
        return candidate
    names = sorted(q.stem for q in presets_dir().glob("*.yaml"))
    raise ConfigError(f"config '{path}' not found (a YAML path or a preset: {', '.join(names)})")


def _read_yaml(path: str | Path) -> dict[str, Any]:
    p = resolve_preset(path)
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {p}") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config {p} is not valid YAML: {str(exc).splitlines()[0]}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config {p} must be a mapping of sections, got {type(data).__name__}")
    return data


def _set_dotted(data: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    node = data
    for key in parents:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise ConfigError(f"{dotted}: '{key}' is not a section")
    node[leaf] = value


T = typing.TypeVar("T")


def from_dict(cls: type[T], data: Any, prefix: str) -> T:
    """Build dataclass ``cls`` from ``data``, rejecting unknown keys and bad types."""
    where = prefix.rstrip(".") or "config"
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    hints = typing.get_type_hints(cls)
    for key in data:
        if key not in fields:
            valid = ", ".join(sorted(fields))
            raise ConfigError(f"unknown key '{prefix}{key}' (valid keys in {where}: {valid})")
    kwargs = {key: _convert(hints[key], value, f"{prefix}{key}", fields[key]) for key, value in data.items()}
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _convert(hint: Any, value: Any, key: str, f: dataclasses.Field[Any]) -> Any:
    if dataclasses.is_dataclass(hint):
        return from_dict(hint, value, prefix=f"{key}.")  # type: ignore[arg-type]
    choices = f.metadata.get("choices")
    if choices is not None and value not in choices:
        raise ConfigError(f"{key}: '{value}' is not valid (choices: {', '.join(choices)})")
    return _coerce(hint, value, key)


def _coerce(hint: Any, value: Any, key: str) -> Any:
    origin = get_origin(hint)
    if origin in (Union, types.UnionType):
        options = get_args(hint)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _coerce(option, value, key)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"{key}: bad value {value!r}")
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        item = get_args(hint)[0]
        if dataclasses.is_dataclass(item):
            return tuple(from_dict(item, v, prefix=f"{key}[{i}].") for i, v in enumerate(value))  # type: ignore[arg-type]
        return tuple(_coerce(item, v, key) for v in value)
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: expected true/false, got {value!r}")
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: expected an integer, got {value!r}")
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"{key}: expected a number, got {value!r}")
    if hint is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{key}: expected a string, got {value!r}")
    return value


def to_dict(cfg: Any) -> dict[str, Any]:
    """Plain-dict view of a config (for stats, logs and config hashes)."""
    return dataclasses.asdict(cfg)
