"""The whole pipeline with ``--method diffusion`` on a clip of real faces and the tiny model.

Checks what a viewer would: every face is replaced (its detail is gone), each
track's synthetic face is stable from keyframe to keyframe while the face
barely moves, and the two people get different synthetic faces.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch", reason="needs fawn[diffusion]")
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")  # diffusers' DPM scheduler on numpy 2
pytest.importorskip("diffusers", reason="needs fawn[diffusion]")

from streamer.core.config import load_config  # noqa: E402
from streamer.core.types import FaceDetections, Frame, Image  # noqa: E402
from streamer.io import demo  # noqa: E402
from streamer.runtime.pipeline import RunOptions, run  # noqa: E402
from streamer.stages.anonymize.diffusion.crop import crop_matrix, face_mask, warp_crop  # noqa: E402
from streamer.tools.verify import face_hidden  # noqa: E402

INTERVAL = 5
SIZE = 64


def _still_clip_spec() -> demo.ClipSpec:
    """Two real faces drifting by about a pixel a second: keyframes see nearly the same face."""
    ast, grace = demo.default_photos()
    actors = (
        demo.Actor(ast, size=72, start=(0.28, 0.45), velocity=(0.004, 0.0)),
        demo.Actor(grace, size=64, start=(0.72, 0.5), velocity=(-0.004, 0.0)),
    )
    return demo.ClipSpec(320, 240, fps=15, seconds=2.0, actors=actors)


@pytest.fixture(scope="module")
def diffusion_run(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    tmp = tmp_path_factory.mktemp("diffusion_run")
    spec = _still_clip_spec()
    clip = tmp / "still.mp4"
    truths = demo.write_clip(spec, clip)
    overrides = {
        "anonymizer.method": "diffusion",
        "diffusion.model": str(tiny_model_dir),
        "diffusion.device": "cpu",
        "diffusion.num_inference_steps": 2,
        "diffusion.keyframe_interval": INTERVAL,
        "diffusion.change_threshold": 0.0,  # a keyframe every INTERVAL frames, to compare them
        "diffusion.latency_budget_ms": 120_000.0,  # offline: wait for every keyframe
        "diffusion.threads": 1,
    }
    cfg = load_config(None, overrides)
    outputs: list[tuple[Image, FaceDetections]] = []

    def keep(frame: Frame, dets: FaceDetections) -> None:
        outputs.append((frame.image.copy(), dets))

    stats = run(str(clip), str(tmp / "out.mp4"), cfg, RunOptions(progress=False, on_frame=keep))
    originals = [image for image, _ in demo.render(spec)]
    return {"stats": stats, "outputs": outputs, "originals": originals, "truths": truths}


def test_every_face_is_replaced(diffusion_run: dict) -> None:
    assert diffusion_run["stats"].frames_out == 30
    hidden = [
        face_hidden(original, output, box)
        for original, (output, _), boxes in zip(diffusion_run["originals"], diffusion_run["outputs"], diffusion_run["truths"])
        for box in boxes
    ]
    assert len(hidden) == 60 and all(hidden)
    for original, (output, _), boxes in zip(diffusion_run["originals"], diffusion_run["outputs"], diffusion_run["truths"]):
        for x1, y1, x2, y2 in boxes.astype(int):
            change = np.abs(output[y1:y2, x1:x2].astype(np.float32) - original[y1:y2, x1:x2]).mean()
            assert change > 10.0


def _aligned_outputs(diffusion_run: dict) -> dict[int, list[np.ndarray]]:
    """Per track: the output face at each keyframe, aligned to the model crop from that frame's landmarks."""
    out: dict[int, list[np.ndarray]] = {}
    for index, (image, dets) in enumerate(diffusion_run["outputs"]):
        if index % INTERVAL or dets.landmarks is None:
            continue
        for track, lm in zip(dets.track_id, dets.landmarks):
            out.setdefault(int(track), []).append(warp_crop(image, crop_matrix(lm, SIZE), SIZE).astype(np.float32))
    return out


def test_synthetic_faces_are_stable_per_track_and_differ_between_tracks(diffusion_run: dict) -> None:
    crops = _aligned_outputs(diffusion_run)
    assert len(crops) == 2 and all(len(c) == 30 // INTERVAL for c in crops.values())
    core = face_mask(SIZE, 0.0).alpha > 0.5

    def diff(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.abs(a - b)[core].mean())

    same = [diff(c[i], c[i + 1]) for c in crops.values() for i in range(len(c) - 1)]
    a, b = crops.values()
    between = [diff(x, y) for x, y in zip(a, b)]
    print(f"keyframe-to-keyframe diff per track: max {max(same):.2f}; between tracks: min {min(between):.2f} (grey levels)")
    assert max(same) < 6.0
    assert min(between) > 3 * max(same)
