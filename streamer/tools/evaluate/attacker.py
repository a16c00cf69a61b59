"""The adaptive attacker: a small MLP that learns to recognize people *from their anonymized faces*.

A fixed recognizer compares an anonymized face with original photos; an
adaptive attacker instead trains on anonymized faces of known people (it can
anonymize photos itself) and is tested on other anonymized photos of the same
people. Blur or pixelation that fools a fixed recognizer often still leaves
a consistent, learnable signature per person; this metric measures that.

The model: standardized embedding -> 64 ReLU units -> softmax over people,
full-batch Adam with weight decay, a fixed seed (deterministic). Pure numpy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from streamer.core.types import FloatArray, IntArray


@dataclass(frozen=True)
class MLPOptions:
    hidden: int = 64
    epochs: int = 300
    learning_rate: float = 0.01
    weight_decay: float = 1e-4
    seed: int = 0


class MLPClassifier:
    """One-hidden-layer softmax classifier trained with Adam (cross-entropy)."""

    def __init__(self, options: MLPOptions | None = None) -> None:
        self.options = options or MLPOptions()
        self._params: list[npt.NDArray[np.float64]] = []
        self._mean = np.zeros(1)
        self._std = np.ones(1)

    def fit(self, x: FloatArray, y: IntArray) -> MLPClassifier:
        o = self.options
        x = np.asarray(x, np.float64)
        y = np.asarray(y, np.int64)
        self._mean, self._std = x.mean(axis=0), x.std(axis=0) + 1e-6
        xs = (x - self._mean) / self._std
        rng = np.random.default_rng(o.seed)
        n_classes = int(y.max()) + 1
        d = xs.shape[1]
        self._params = [
            rng.normal(0, np.sqrt(2.0 / d), (d, o.hidden)), np.zeros(o.hidden),
            rng.normal(0, np.sqrt(1.0 / o.hidden), (o.hidden, n_classes)), np.zeros(n_classes),
        ]
        onehot = np.eye(n_classes)[y]
        adam = _Adam(self._params, o.learning_rate)
        for _ in range(o.epochs):
            grads = self._gradients(xs, onehot)
            adam.step(self._params, grads, o.weight_decay)
        return self

    def _gradients(self, xs: npt.NDArray[np.float64], onehot: npt.NDArray[np.float64]) -> list[npt.NDArray[np.float64]]:
        w1, b1, w2, _b2 = self._params
        hidden = np.maximum(xs @ w1 + b1, 0.0)
        probs = _softmax(hidden @ w2 + self._params[3])
        d_logits = (probs - onehot) / len(xs)
        d_hidden = (d_logits @ w2.T) * (hidden > 0)
        return [xs.T @ d_hidden, d_hidden.sum(axis=0), hidden.T @ d_logits, d_logits.sum(axis=0)]

    def predict_proba(self, x: FloatArray) -> npt.NDArray[np.float64]:
        if not self._params:
            raise RuntimeError("MLPClassifier.predict before fit")
        w1, b1, w2, b2 = self._params
        xs = (np.asarray(x, np.float64) - self._mean) / self._std
        return _softmax(np.maximum(xs @ w1 + b1, 0.0) @ w2 + b2)

    def predict(self, x: FloatArray) -> IntArray:
        return np.argmax(self.predict_proba(x), axis=1).astype(np.int64)


def _softmax(logits: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    out: npt.NDArray[np.float64] = e / e.sum(axis=1, keepdims=True)
    return out


class _Adam:
    def __init__(self, params: list[npt.NDArray[np.float64]], lr: float, b1: float = 0.9, b2: float = 0.999) -> None:
        self.lr, self.b1, self.b2 = lr, b1, b2
        self.m = [np.zeros_like(p) for p in params]
        self.v = [np.zeros_like(p) for p in params]
        self.t = 0

    def step(self, params: list[npt.NDArray[np.float64]], grads: list[npt.NDArray[np.float64]], decay: float) -> None:
        self.t += 1
        for p, g, m, v in zip(params, grads, self.m, self.v):
            g = g + decay * p
            m *= self.b1
            m += (1 - self.b1) * g
            v *= self.b2
            v += (1 - self.b2) * g * g
            m_hat = m / (1 - self.b1**self.t)
            v_hat = v / (1 - self.b2**self.t)
            p -= self.lr * m_hat / (np.sqrt(v_hat) + 1e-8)


def split_by_identity(labels: Sequence[str]) -> tuple[IntArray, IntArray]:
    """Train/test indices: each person's faces alternate between the splits (people with one face are left out)."""
    train: list[int] = []
    test: list[int] = []
    seen: dict[str, int] = {}
    counts: dict[str, int] = {}
    for label in labels:
        counts[label] = counts.get(label, 0) + 1
    for i, label in enumerate(labels):
        if counts[label] < 2:
            continue
        k = seen.get(label, 0)
        (train if k % 2 == 0 else test).append(i)
        seen[label] = k + 1
    return np.array(train, np.int64), np.array(test, np.int64)


def attacker_top1(
    anonymized: FloatArray, labels: Sequence[str], options: MLPOptions | None = None
) -> tuple[float | None, str | None]:
    """Top-1 accuracy of an MLP trained on half of each person's anonymized faces, tested on the rest.

    Returns (accuracy, None) or (None, why it was skipped). Chance is 1 / people.
    """
    train, test = split_by_identity(labels)
    people = sorted({labels[i] for i in train})
    if len(people) < 2 or not len(test):
        return None, "needs identity labels with at least 2 faces for each of at least 2 people"
    index = {p: i for i, p in enumerate(people)}
    y = np.array([index[label] for label in labels], np.int64)
    model = MLPClassifier(options).fit(np.asarray(anonymized)[train], y[train])
    predicted = model.predict(np.asarray(anonymized)[test])
    return float(np.mean(predicted == y[test])), None
