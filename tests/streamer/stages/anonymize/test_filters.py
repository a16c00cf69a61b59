import numpy as np
import pytest

from streamer.core.config import AnonymizerConfig
from streamer.core.types import FaceDetections, Image
from streamer.stages.anonymize import create_anonymizer
from streamer.stages.anonymize.base import face_regions, region_mask
from streamer.tools import verify

METHODS = ["blur", "pixelate", "solid"]


def _faces(gt: np.ndarray, visible: list[bool] | None = None) -> FaceDetections:
    return FaceDetections(gt, np.ones(len(gt)), visible=visible)


@pytest.mark.parametrize("method", METHODS)
def test_every_face_hidden_background_kept(method: str, demo_frames: list[tuple[Image, np.ndarray]]) -> None:
    anonymizer = create_anonymizer(AnonymizerConfig(method=method))
    for frame, gt in demo_frames[::15]:
        out = anonymizer.apply(frame.copy(), _faces(gt))
        for box in gt:
            assert verify.face_hidden(frame, out, box), f"{method} left a face recognizable"
        assert verify.background_psnr(frame, out, gt) == float("inf")


def test_visible_rows_are_left_untouched(demo_frames: list[tuple[Image, np.ndarray]]) -> None:
    frame, gt = demo_frames[0]
    out = create_anonymizer(AnonymizerConfig()).apply(frame.copy(), _faces(gt, [True, False]))
    assert verify.detail_correlation(frame, out, gt[0]) > 0.99
    assert verify.face_hidden(frame, out, gt[1])


def test_weak_blur_is_measurably_weaker(demo_frames: list[tuple[Image, np.ndarray]]) -> None:
    frame, gt = demo_frames[0]
    strong = create_anonymizer(AnonymizerConfig(strength=0.5)).apply(frame.copy(), _faces(gt))
    weak = create_anonymizer(AnonymizerConfig(strength=0.05)).apply(frame.copy(), _faces(gt))
    assert verify.detail_correlation(frame, weak, gt[0]) > verify.detail_correlation(frame, strong, gt[0])


def test_mask_is_solid_over_the_face_and_feathered_outside() -> None:
    dets = _faces(np.array([[100, 100, 200, 220]], np.float32))
    (region,) = face_regions(dets, (480, 640, 3), padding=0.25)
    mask = region_mask(region, "ellipse", 0.15)[:, :, 0]
    # the face ellipse inscribed in the detector box is fully covered
    cy, cx = 160 - region.y1, 150 - region.x1
    assert mask[cy - 50 : cy + 50, cx - 35 : cx + 35].min() == 1.0
    assert mask[0, 0] == 0.0 and 0.0 < mask.mean() < 1.0


def test_faces_at_the_frame_border_are_clipped() -> None:
    frame = np.random.default_rng(0).integers(0, 255, (120, 160, 3), dtype=np.uint8)
    dets = _faces(np.array([[-30, -20, 40, 50], [150, 100, 200, 160]], np.float32))
    out = create_anonymizer(AnonymizerConfig(method="solid", feather=0.0)).apply(frame.copy(), dets)
    assert (out[10, 10] == 0).all() and (out[115, 158] == 0).all()


@pytest.mark.parametrize("size", [22, 30, 40])
def test_small_faces_are_blurred_beyond_recognition_too(size: int) -> None:
    from streamer.io import demo

    ast, grace = demo.default_photos()
    spec = demo.ClipSpec(actors=(demo.Actor(ast, size, (0.3, 0.4), (0, 0)), demo.Actor(grace, size, (0.7, 0.6), (0, 0))))
    frame, gt = next(demo.render(spec))
    out = create_anonymizer(AnonymizerConfig()).apply(frame.copy(), _faces(gt))
    assert all(verify.face_hidden(frame, out, box) for box in gt)


@pytest.mark.parametrize("method", ["blur", "pixelate", "solid"])
def test_every_pixel_of_the_box_is_replaced_whatever_the_padding(method: str) -> None:
    """A small padding puts the box corners on the ellipse's feathered edge: they are still fully replaced."""
    frame = np.random.default_rng(0).integers(0, 255, (240, 320, 3), dtype=np.uint8)
    box = np.array([[100, 60, 180, 160]], np.float32)
    cfg = AnonymizerConfig(method=method, padding=0.0, feather=0.3, color=(0, 0, 0))
    out = create_anonymizer(cfg).apply(frame.copy(), _faces(box))
    corner = (slice(60, 64), slice(100, 104))  # the box's top-left corner, outside the ellipse
    assert verify.face_hidden(frame, out, box[0])
    assert not np.array_equal(out[corner], frame[corner])
    if method == "solid":
        assert (out[60:160, 100:180] == 0).all()
