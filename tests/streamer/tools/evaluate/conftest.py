"""Fixtures of the evaluation tests: one evaluator on the identity-labelled set made from package photos."""

from __future__ import annotations

import pytest

from streamer.tools.evaluate.faces import package_people
from streamer.tools.evaluate.runner import EvalOptions, Evaluator

PER_PERSON = 3


@pytest.fixture(scope="session")
def evaluator() -> Evaluator:
    """8 real people x 3 photos (augmented), models loaded once; FID off (tested on its own)."""
    if len(package_people()) < 4:
        pytest.skip("the insightface wheel (t1.jpg's six people) is not installed")
    overrides = {"detector.threads": 2, "identity.threads": 2}
    return Evaluator(EvalOptions("builtin", overrides=overrides, per_person=PER_PERSON, fid=False, examples=2))
