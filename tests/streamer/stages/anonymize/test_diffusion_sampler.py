"""The batched sampler on the tiny model: determinism, per-track identity, degree and guidance."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="needs fawn[diffusion]")
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")  # diffusers' DPM scheduler on numpy 2
pytest.importorskip("diffusers", reason="needs fawn[diffusion]")

from streamer.core.errors import ConfigError  # noqa: E402
from streamer.models.diffusion.info import read_info  # noqa: E402
from streamer.stages.anonymize.diffusion.runtime import Placement, _torch_engines  # noqa: E402
from streamer.stages.anonymize.diffusion.sampler import (  # noqa: E402
    EngineSet,
    Sampler,
    SamplerParams,
    make_scheduler,
)


@pytest.fixture(scope="module")
def engine_set(tiny_model_dir: Path) -> EngineSet:
    info = read_info(tiny_model_dir)
    engines = _torch_engines(info, Placement("torch", "cpu", "fp32", 64), max_batch=4, threads=1)
    return EngineSet(engines, torch.device("cpu"), torch.float32)


def _sampler(engine_set: EngineSet, tiny_model_dir: Path, **kw: object) -> Sampler:
    params = SamplerParams(resolution=64, num_inference_steps=2, **kw)  # type: ignore[arg-type]
    return Sampler(engine_set, read_info(tiny_model_dir), params)


@pytest.fixture(scope="module")
def crops(demo_frames: list) -> list[np.ndarray]:
    from streamer.stages.anonymize.diffusion.crop import crop_matrix, warp_crop
    from streamer.stages.detect import CenterFaceDetector

    image = demo_frames[0][0]
    dets = CenterFaceDetector(threads=1).detect(image)
    assert dets.landmarks is not None
    return [warp_crop(image, crop_matrix(lm, 64), 64) for lm in dets.landmarks]


def _diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.float32) - b.astype(np.float32)).mean())


def test_generate_is_deterministic_and_reuses_identities(engine_set: EngineSet, tiny_model_dir: Path, crops: list) -> None:
    sampler = _sampler(engine_set, tiny_model_dir)
    first, made = sampler.generate(crops, [1, 2], {})
    assert set(made) == {1, 2}
    again, made_again = sampler.generate(crops, [1, 2], made)
    assert made_again == {}
    assert all(a.shape == (64, 64, 3) and a.dtype == np.uint8 for a in first)
    assert all(np.array_equal(a, b) for a, b in zip(first, again))


def test_each_track_gets_its_own_face(engine_set: EngineSet, tiny_model_dir: Path, crops: list) -> None:
    sampler = _sampler(engine_set, tiny_model_dir)
    same_crop, _ = sampler.generate([crops[0], crops[0]], [1, 2], {})
    assert _diff(same_crop[0], same_crop[1]) > 2.0  # same input, other track: other noise, other face
    single, _ = sampler.generate([crops[0]], [1], {})
    assert _diff(single[0], same_crop[0]) < 0.5  # batching does not change a face


def test_small_input_change_gives_small_output_change(engine_set: EngineSet, tiny_model_dir: Path, crops: list) -> None:
    sampler = _sampler(engine_set, tiny_model_dir)
    base, ids = sampler.generate([crops[0]], [1], {})
    nudged = np.roll(crops[0], 1, axis=1)
    moved, _ = sampler.generate([nudged], [1], ids)
    other, _ = sampler.generate([crops[0]], [2], {})
    assert _diff(base[0], moved[0]) < 0.5 * _diff(base[0], other[0])


def test_degree_scales_the_source(engine_set: EngineSet, tiny_model_dir: Path, crops: list) -> None:
    images = torch.stack([torch.from_numpy(c[:, :, ::-1].copy()).permute(2, 0, 1).float() / 127.5 - 1 for c in crops[:1]])
    for degree in (0.0, 1.0, 1.25):
        sampler = _sampler(engine_set, tiny_model_dir, anonymization_degree=degree)
        embeds, latents = sampler.embed(images), sampler.encode(images)
        ident = sampler.identities(embeds, latents, [7])[0]
        scaled = (1 - degree) * embeds  # the source ReferenceNet's context is the scaled embedding, as in training
        real = sampler._refs("referencenet", latents, torch.stack([scaled, scaled], 1))
        expect = [(1 - degree) * r[0] + degree * n for r, n in zip(real, sampler.null_refs)]
        assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(ident.refs, expect))
        assert torch.allclose(ident.embedding, (1 - degree) * embeds[0], atol=1e-6)
    assert sampler._noise(7).shape == (4, 16, 16) and torch.equal(sampler._noise(7), sampler._noise(7))


def test_guidance_one_skips_the_unconditional_rows(engine_set: EngineSet, tiny_model_dir: Path, crops: list) -> None:
    seen: list[int] = []
    original = engine_set.__call__

    class Spy(EngineSet):
        def __call__(self, name: str, inputs: dict) -> dict:  # type: ignore[override]
            if name == "unet":
                seen.append(int(inputs["sample"].shape[0]))
            return original(name, inputs)

    spy = Spy(engine_set.engines, engine_set.device, engine_set.dtype)
    for guidance in (1.0, 4.0):
        Sampler(spy, read_info(tiny_model_dir), SamplerParams(64, guidance_scale=guidance, num_inference_steps=2)).generate(crops, [1, 2], {})
    assert seen == [2, 2, 4, 4]


@pytest.mark.parametrize("kind", ["ddim", "dpmsolver++"])
def test_schedulers_are_deterministic_and_start_at_pure_noise(tiny_model_dir: Path, kind: str) -> None:
    sched = make_scheduler(read_info(tiny_model_dir).scheduler_config, kind)
    sched.set_timesteps(4)
    assert int(sched.timesteps[0]) == 999
    assert sched.config.prediction_type == "v_prediction"
    with pytest.raises(ConfigError, match="choices"):
        make_scheduler({}, "euler_ancestral")


def test_ddpm_is_the_authors_sampler_on_the_model_config(tiny_model_dir: Path) -> None:
    """``ddpm``: DDPMScheduler from the scheduler config as is (the authors' choice), stochastic but seeded."""
    sched = make_scheduler(read_info(tiny_model_dir).scheduler_config, "ddpm")
    assert type(sched).__name__ == "DDPMScheduler" and sched.config.prediction_type == "v_prediction"
    sched.set_timesteps(25)
    assert len(sched.timesteps) == 25 and sched.config.timestep_spacing == "leading"


def test_ddpm_generation_is_reproducible(engine_set: EngineSet, tiny_model_dir: Path, crops: list) -> None:
    sampler = _sampler(engine_set, tiny_model_dir, scheduler="ddpm")
    first, _ = sampler.generate([crops[0]], [1], {})
    again, _ = sampler.generate([crops[0]], [1], {})
    assert np.array_equal(first[0], again[0]) and first[0].std() > 0
