"""Privacy metrics on cases with a known answer."""

import numpy as np
import pytest

from streamer.tools.evaluate import privacy


def _unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture
def originals() -> np.ndarray:
    return _unit(np.random.default_rng(0).normal(size=(10, 16)))


def test_unchanged_faces_are_all_reidentified(originals: np.ndarray) -> None:
    assert privacy.reid_rate(originals, originals) == 1.0
    assert privacy.avg_similarity(originals, originals) == pytest.approx(1.0, abs=1e-6)


def test_identical_anonymized_faces_score_exactly_chance(originals: np.ndarray) -> None:
    same = np.repeat(_unit(np.ones((1, 16))), len(originals), axis=0)
    assert privacy.reid_rate(same, originals) == pytest.approx(1 / len(originals))


def test_swapped_faces_are_never_reidentified(originals: np.ndarray) -> None:
    assert privacy.reid_rate(np.roll(originals, 1, axis=0), originals) == 0.0


def test_orthogonal_faces_have_zero_similarity() -> None:
    eye = np.eye(4, dtype=np.float32)
    assert privacy.avg_similarity(np.roll(eye, 1, axis=0), eye) == pytest.approx(0.0)


def test_auc_known_values() -> None:
    assert privacy.auc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) == pytest.approx(0.75)
    assert privacy.auc([1, 2, 3, 4], [0, 0, 1, 1]) == 1.0
    assert privacy.auc([4, 3, 2, 1], [0, 0, 1, 1]) == 0.0
    assert privacy.auc([5, 5, 5, 5], [0, 1, 0, 1]) == 0.5
    with pytest.raises(ValueError):
        privacy.auc([1, 2], [1, 1])


def test_roc_curve_known_points() -> None:
    fpr, tpr = privacy.roc_curve([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1])
    np.testing.assert_allclose(fpr, [0, 0, 0.5, 0.5, 1])
    np.testing.assert_allclose(tpr, [0, 0.5, 0.5, 1, 1])


def test_verification_auc_and_closed_set_with_labels() -> None:
    # two people, two photos each: a's photos point along x, b's along y
    orig = _unit(np.array([[1, 0.1], [1, -0.1], [0.1, 1], [-0.1, 1]], np.float32))
    labels = ["a", "a", "b", "b"]
    assert privacy.verification_auc(orig, orig, labels) == 1.0
    assert privacy.closed_set_top1(orig, orig, labels) == 1.0
    swapped = orig[[2, 3, 0, 1]]  # every anonymized face looks like the other person
    assert privacy.verification_auc(swapped, orig, labels) == 0.0
    assert privacy.closed_set_top1(swapped, orig, labels) == 0.0


def test_metrics_that_need_labels_say_so() -> None:
    orig = _unit(np.eye(3, dtype=np.float32))
    assert privacy.verification_auc(orig, orig, ["a", "a", "a"]) is None
    assert privacy.closed_set_top1(orig, orig, ["a", "b", "c"]) is None
    assert privacy.impostor_similarity(orig, ["a", "b", "c"]) == pytest.approx(0.0)


def test_normalizations() -> None:
    assert privacy.normalized_reid(0.1, 10) == pytest.approx(0.0)
    assert privacy.normalized_reid(1.0, 10) == pytest.approx(1.0)
    assert privacy.normalized_similarity(0.8, 0.8) == 0.0
    assert privacy.normalized_similarity(1.0, 0.8) == pytest.approx(1.0)
    assert privacy.normalized_similarity(0.9, 0.8) == pytest.approx(0.5)
