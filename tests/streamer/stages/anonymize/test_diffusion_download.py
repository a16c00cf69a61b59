"""The three folders as users download them (tiny SD2.1-topology models saved by the stock classes):
loading, `fawn models check`, and `fawn run --method diffusion` end to end."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="needs fawn[diffusion]")
pytest.importorskip("diffusers", reason="needs fawn[diffusion]")
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

from streamer.cli.main import main  # noqa: E402
from streamer.core.config import DiffusionConfig  # noqa: E402
from streamer.core.errors import ModelError  # noqa: E402
from streamer.io import demo  # noqa: E402
from streamer.models.diffusion.info import read_info  # noqa: E402
from streamer.models.diffusion.loader import load_image_encoder, load_model  # noqa: E402
from streamer.stages.anonymize.diffusion.runtime import place  # noqa: E402
from streamer.tools.verify import face_hidden  # noqa: E402


def _info(dl: Any) -> Any:
    return read_info(dl.model, dl.base, dl.image_encoder)


def test_full_clip_checkpoint_gives_its_vision_half(tiny_download: Any) -> None:
    from safetensors.torch import load_file

    encoder = load_image_encoder(tiny_download.image_encoder)
    saved = load_file(str(tiny_download.image_encoder / "model.safetensors"))
    assert any(k.startswith("text_model.") for k in saved)  # it really is a full CLIPModel
    state = encoder.state_dict()
    assert torch.equal(state["visual_projection.weight"], saved["visual_projection.weight"])
    vision = [k for k in state if k.startswith("vision_model.")]
    assert vision and all(torch.equal(state[k], saved[k]) for k in vision)


def test_vision_only_clip_saved_by_transformers_loads(tmp_path: Path) -> None:
    """Issue 14, first report: a stock CLIPVisionModel save was refused by the former loader."""
    from transformers import CLIPVisionConfig, CLIPVisionModel

    cfg = CLIPVisionConfig(hidden_size=32, intermediate_size=37, num_hidden_layers=1, num_attention_heads=4, image_size=32, patch_size=8)
    from safetensors.torch import load_file

    CLIPVisionModel(cfg).save_pretrained(tmp_path / "clip")
    saved = load_file(str(tmp_path / "clip" / "model.safetensors"))
    encoder = load_image_encoder(tmp_path / "clip")
    state = encoder.vision_model.state_dict()
    key = next(k for k in saved if k.endswith("embeddings.patch_embedding.weight"))  # the prefix depends on the version
    assert torch.equal(state["embeddings.patch_embedding.weight"], saved[key])
    assert len(state) == len([k for k in saved if not k.endswith("position_ids")])


def test_three_folders_load_and_run_at_512(tiny_download: Any) -> None:
    info = _info(tiny_download)
    assert info.sample_size == 96 and info.vae_scale == 8  # SD2.1-768's config says 768 px ...
    assert info.native_resolution == 512  # ... the weights were trained at 512
    assert place(DiffusionConfig(model=str(tiny_download.model), device="cpu"), info).resolution == 512
    assert info.clip_output == "pooler_output"  # ViT-L/14-like: projection narrower than the UNet context
    assert len(info.ref_layers(512)) == 16 and len(info.ref_sources(512)) == 7
    model = load_model(info)
    assert model.unet.config.layers_per_block == 2


def test_missing_base_is_one_clear_line(tiny_download: Any, tmp_path: Path) -> None:
    with pytest.raises(ModelError) as err:
        read_info(tiny_download.model, None, tiny_download.image_encoder)
    text = str(err.value)
    assert "\n" not in text and "vae" in text and str(tiny_download.model) in text and "--diffusion-base" in text
    empty = tmp_path / "clip"
    empty.mkdir()
    (empty / "config.json").write_text(json.dumps({"model_type": "clip", "vision_config": {"hidden_size": 48}}))
    with pytest.raises(ModelError, match=r"clip: no weights \(expected model.safetensors"):
        load_image_encoder(empty)


def test_models_check_reports_parts_configs_and_checksums(tiny_download: Any, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["models", "check", str(tiny_download.image_encoder), str(tiny_download.model), str(tiny_download.base)])
    out = capsys.readouterr().out
    assert code == 0, out
    digest = hashlib.sha256((tiny_download.model / "referencenet" / "diffusion_pytorch_model.safetensors").read_bytes()).hexdigest()
    assert f"sha256 {digest}  diffusion_pytorch_model.safetensors" in out
    assert "16 denoiser self-attention layers read 7 ReferenceNet states" in out and "crops 512 px" in out
    assert "full_clip: True" in out and "fits together: yes" in out


def test_models_check_says_what_does_not_fit(tiny_download: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = tmp_path / "face-anon-simple"
    shutil.copytree(tiny_download.model, model)
    cfg_path = model / "referencenet" / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["layers_per_block"] = 1
    cfg_path.write_text(json.dumps(cfg))
    code = main(["models", "check", str(model), str(tiny_download.base), str(tiny_download.image_encoder)])
    captured = capsys.readouterr()
    assert code != 0
    assert "fits together: NO: referencenet/config.json 'layers_per_block'" in captured.out


def _clip_spec() -> demo.ClipSpec:
    ast, _ = demo.default_photos()
    return demo.ClipSpec(320, 240, fps=10, seconds=1.0, actors=(demo.Actor(ast, size=80, start=(0.5, 0.5), velocity=(0.01, 0.0)),))


def test_fawn_run_with_the_three_downloaded_folders(tiny_download: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    import logging
    import re

    import av

    caplog.set_level(logging.INFO, logger="streamer.stages.anonymize.diffusion")
    spec = _clip_spec()
    clip, out, stats = tmp_path / "clip.mp4", tmp_path / "out.mp4", tmp_path / "stats.json"
    truths = demo.write_clip(spec, clip)
    code = main([
        "run", str(clip), "-o", str(out), "--method", "diffusion",
        "--diffusion-model", str(tiny_download.model), "--diffusion-base", str(tiny_download.base),
        "--diffusion-image-encoder", str(tiny_download.image_encoder),
        "--diffusion-device", "cpu", "--diffusion-steps", "1", "--keyframe-interval", "5",
        "--latency-budget-ms", "600000", "--stats-json", str(stats),
    ])
    assert code == 0
    with av.open(str(out)) as container:
        frames = [f.to_ndarray(format="bgr24") for f in container.decode(video=0)]
    originals = [image for image, _ in demo.render(spec)]
    assert len(frames) == len(originals) == 10
    checked = 0
    for original, output, boxes in zip(originals, frames, truths):
        for box in boxes:
            assert face_hidden(original, output, box)
            x1, y1, x2, y2 = box.astype(int)
            assert np.abs(output[y1:y2, x1:x2].astype(np.float32) - original[y1:y2, x1:x2]).mean() > 10.0
            checked += 1
    assert checked == 10
    summary = next(r.getMessage() for r in caplog.records if "keyframes (" in r.getMessage())
    found = re.search(r"(\d+) keyframes \((\d+) failed\).*faces: (\d+) synthetic", summary)
    assert found is not None, summary
    keyframes, failed, synthetic = (int(g) for g in found.groups())
    assert keyframes >= 2 and failed == 0 and synthetic >= 8, summary  # real synthetic faces at 512 px, not just blur
