"""Privacy metrics: how well a face recognizer still finds the person behind an anonymized face.

Inputs are unit embeddings (rows) of the original faces and of the same faces
anonymized (row i of both is the same face), and optional identity labels.
A score is a cosine similarity. Without labels every face is its own identity.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from scipy.stats import rankdata

from streamer.core.types import FloatArray

BoolArray = npt.NDArray[np.bool_]


def similarity_matrix(a: FloatArray, b: FloatArray) -> FloatArray:
    """Cosine similarity of every row of ``a`` [N,D] with every row of ``b`` [M,D] -> [N,M]."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    return (a @ b.T).astype(np.float32)


def reid_rate(anonymized: FloatArray, original: FloatArray) -> float:
    """Fraction of anonymized faces whose nearest original (of the whole set) is their own source.

    Chance is 1/N; an unchanged face scores 1. Ties go to the lowest index (so N
    identical anonymized faces score exactly 1/N).
    """
    sims = similarity_matrix(anonymized, original)
    return float(np.mean(np.argmax(sims, axis=1) == np.arange(len(sims))))


def avg_similarity(anonymized: FloatArray, original: FloatArray) -> float:
    """Mean cosine similarity of each anonymized face to its own source."""
    return float(np.mean(np.diag(similarity_matrix(anonymized, original))))


def same_identity(labels: Sequence[str]) -> BoolArray:
    """[N,N] True where two faces have the same label."""
    arr = np.asarray(list(labels), dtype=object)
    return np.asarray(arr[:, None] == arr[None, :], dtype=bool)


def auc(scores: npt.ArrayLike, positive: npt.ArrayLike) -> float:
    """Area under the ROC curve (Mann-Whitney U with average ranks for ties): P(score_pos > score_neg).

    0.5 when scores carry no information (or are all equal), 1 when they separate perfectly.
    """
    s = np.asarray(scores, np.float64).ravel()
    pos = np.asarray(positive, bool).ravel()
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError("auc needs both positive and negative pairs")
    ranks = rankdata(s)
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def roc_curve(scores: npt.ArrayLike, positive: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    """False- and true-positive rates at every threshold (from strictest), starting at (0, 0)."""
    s = np.asarray(scores, np.float64).ravel()
    pos = np.asarray(positive, bool).ravel()
    order = np.argsort(-s, kind="stable")
    s, pos = s[order], pos[order]
    last = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]  # last index of each distinct score
    tp = np.cumsum(pos)[last]
    fp = np.cumsum(~pos)[last]
    tpr = np.r_[0.0, tp / max(int(pos.sum()), 1)]
    fpr = np.r_[0.0, fp / max(int((~pos).sum()), 1)]
    return fpr.astype(np.float32), tpr.astype(np.float32)


def verification_pairs(anonymized: FloatArray, original: FloatArray, labels: Sequence[str]) -> tuple[FloatArray, BoolArray]:
    """Scores and same-person flags of every (anonymized i, original j) pair, i == j included."""
    sims = similarity_matrix(anonymized, original)
    return sims.ravel(), same_identity(labels).ravel()


def verification_auc(anonymized: FloatArray, original: FloatArray, labels: Sequence[str]) -> float | None:
    """AUC of telling same from different person by comparing anonymized faces with original photos.

    1 when the anonymized face still matches its person, 0.5 when the scores say nothing.
    None when there are no different-person pairs (one identity).
    """
    scores, same = verification_pairs(anonymized, original, labels)
    if same.all() or not same.any():
        return None
    return auc(scores, same)


def closed_set_top1(anonymized: FloatArray, original: FloatArray, labels: Sequence[str]) -> float | None:
    """Fraction of anonymized faces whose nearest *other* original photo shows the same person.

    The source photo itself is left out of the gallery, so this asks whether the
    person (not the photo) is found. Counted over faces whose person has another
    photo; None when no person has two.
    """
    sims = similarity_matrix(anonymized, original).astype(np.float64)
    same = same_identity(labels)
    np.fill_diagonal(sims, -np.inf)
    np.fill_diagonal(same, False)
    usable = same.any(axis=1)
    if not usable.any():
        return None
    hits = same[np.arange(len(sims)), np.argmax(sims, axis=1)]
    return float(np.mean(hits[usable]))


def impostor_similarity(original: FloatArray, labels: Sequence[str]) -> float | None:
    """Mean cosine similarity between original faces of different people (the recognizer's floor)."""
    sims = similarity_matrix(original, original)
    different = ~same_identity(labels)
    return float(sims[different].mean()) if different.any() else None


def normalized_similarity(similarity: float, impostor: float) -> float:
    """0 when an anonymized face is as close to its source as a different person is, 1 when identical."""
    span = 1.0 - impostor
    return float(np.clip((similarity - impostor) / span, 0.0, 1.0)) if span > 1e-9 else 0.0


def normalized_reid(rate: float, n: int) -> float:
    """0 at chance (1/n), 1 when every face is re-identified."""
    chance = 1.0 / max(n, 1)
    return float(np.clip((rate - chance) / (1.0 - chance), 0.0, 1.0)) if n > 1 else 0.0
