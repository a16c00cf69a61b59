"""The adaptive attacker (numpy MLP) on data with a known answer."""

import numpy as np

from streamer.tools.evaluate.attacker import (
    MLPClassifier,
    MLPOptions,
    attacker_top1,
    split_by_identity,
)


def test_split_alternates_each_persons_faces() -> None:
    train, test = split_by_identity(["a", "a", "b", "a", "b", "c"])
    assert train.tolist() == [0, 2, 3]
    assert test.tolist() == [1, 4]  # "c" has one face: left out


def test_mlp_learns_separable_people() -> None:
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(5, 8)) * 4
    x = np.concatenate([c + rng.normal(size=(6, 8)) * 0.3 for c in centres]).astype(np.float32)
    y = np.repeat(np.arange(5), 6)
    model = MLPClassifier(MLPOptions(epochs=150)).fit(x[::2], y[::2])
    assert (model.predict(x[1::2]) == y[1::2]).mean() == 1.0


def test_attacker_on_recognizable_faces_is_perfect() -> None:
    rng = np.random.default_rng(1)
    centres = rng.normal(size=(4, 16))
    labels = [f"p{i}" for i in range(4) for _ in range(4)]
    x = np.concatenate([c + rng.normal(size=(4, 16)) * 0.05 for c in centres]).astype(np.float32)
    top1, reason = attacker_top1(x, labels)
    assert top1 == 1.0 and reason is None


def test_attacker_on_identical_faces_is_at_chance() -> None:
    labels = [f"p{i}" for i in range(4) for _ in range(4)]
    x = np.ones((16, 8), np.float32)  # every anonymized face the same: nothing to learn
    top1, _ = attacker_top1(x, labels)
    assert top1 == 0.25  # one class predicted for all: exactly 1 / people


def test_attacker_needs_repeated_people() -> None:
    top1, reason = attacker_top1(np.eye(3, dtype=np.float32), ["a", "b", "c"])
    assert top1 is None and reason is not None and "2 faces" in reason
