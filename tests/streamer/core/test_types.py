import numpy as np
import pytest

from streamer.core.types import FaceDetections


def test_defaults_fail_closed() -> None:
    d = FaceDetections(np.zeros((3, 4)), np.ones(3))
    assert d.track_id.tolist() == [-1, -1, -1]
    assert d.identity == [None, None, None]
    assert not d.visible.any()
    assert not d.coasting.any()


def test_shapes_are_checked() -> None:
    with pytest.raises(ValueError, match="score has 2 rows"):
        FaceDetections(np.zeros((3, 4)), np.ones(2))
    with pytest.raises(ValueError, match="landmarks shape"):
        FaceDetections(np.zeros((1, 4)), np.ones(1), np.zeros((1, 4, 2)))


def test_indexing_keeps_every_column() -> None:
    d = FaceDetections(
        np.arange(12).reshape(3, 4), np.array([0.1, 0.9, 0.5]), np.zeros((3, 5, 2)),
        track_id=[4, 5, 6], identity=["a", None, "b"], visible=[True, False, False],
    )
    sub = d[d.score > 0.3]
    assert sub.track_id.tolist() == [5, 6]
    assert sub.identity == [None, "b"]
    assert sub.visible.tolist() == [False, False]
    assert len(FaceDetections.empty()) == 0
