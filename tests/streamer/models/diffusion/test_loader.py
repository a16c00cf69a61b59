"""Loading a face_anon_simple-style folder through from_pretrained: configs, weights, errors that name the tensor."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

torch = pytest.importorskip("torch", reason="needs fawn[diffusion]")
pytest.importorskip("diffusers", reason="needs fawn[diffusion]")

from safetensors.torch import load_file, save_file  # noqa: E402

from streamer.core.errors import ModelError  # noqa: E402
from streamer.models.diffusion.attention import self_attention_names  # noqa: E402
from streamer.models.diffusion.info import read_info  # noqa: E402
from streamer.models.diffusion.loader import load_model, load_unet  # noqa: E402

WEIGHTS = "diffusion_pytorch_model.safetensors"


@pytest.fixture
def model_copy(tiny_model_dir: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "model"
    shutil.copytree(tiny_model_dir, dst)
    return dst


def _edit_weights(folder: Path, edit: object) -> None:
    state = load_file(str(folder / WEIGHTS))
    edit(state)  # type: ignore[operator]
    save_file(state, str(folder / WEIGHTS))


def test_loads_every_network_and_reads_native_resolution(tiny_model_dir: Path) -> None:
    model = load_model(tiny_model_dir)
    assert model.info.native_resolution == 64
    assert model.info.cross_dim == model.info.clip_dim == 32 and model.info.clip_output == "image_embeds"
    assert model.info.prediction_type == "v_prediction"
    for net in (model.unet, model.referencenet, model.conditioning_referencenet, model.vae, model.image_encoder):
        assert not net.training
        assert all(p.device.type == "cpu" and p.dtype == torch.float32 for p in net.parameters())


def test_loaded_weights_equal_the_files(tiny_model_dir: Path) -> None:
    model = load_model(tiny_model_dir)
    saved = load_file(str(tiny_model_dir / "referencenet" / WEIGHTS))
    state = model.referencenet.state_dict()
    assert set(saved) == set(state)
    assert all(torch.equal(saved[k], state[k]) for k in saved)


def test_reference_layout_from_config_matches_the_module(tiny_model_dir: Path) -> None:
    info = read_info(tiny_model_dir)
    unet = load_unet(tiny_model_dir / "unet")
    assert [layer.name for layer in info.ref_layers(64)] == self_attention_names(unet)
    assert [layer.tokens for layer in info.ref_layers(64)] == [256, 64, 64, 64, 64, 256, 256]


def test_missing_tensor_is_named(model_copy: Path) -> None:
    _edit_weights(model_copy / "unet", lambda s: s.pop("conv_in.weight"))
    with pytest.raises(ModelError, match=r"unet: weights do not match its config.json: 1 missing tensors: conv_in\.weight"):
        load_model(model_copy)


def test_unexpected_tensor_is_named(model_copy: Path) -> None:
    _edit_weights(model_copy / "referencenet", lambda s: s.update({"extra.weight": torch.zeros(2)}))
    with pytest.raises(ModelError, match=r"referencenet: weights do not match its config.json: 1 unexpected tensors: extra\.weight"):
        load_model(model_copy)


def test_mismatched_shape_is_named(model_copy: Path) -> None:
    _edit_weights(model_copy / "vae", lambda s: s.update({"quant_conv.bias": torch.zeros(3)}))
    with pytest.raises(ModelError, match=r"vae: AutoencoderKL cannot load it: .*quant_conv\.bias"):
        load_model(model_copy)


def test_missing_folder_and_weights(model_copy: Path) -> None:
    shutil.rmtree(model_copy / "conditioning_referencenet")
    with pytest.raises(ModelError, match="conditioning_referencenet: folder .* not found"):
        read_info(model_copy)
    (model_copy / "conditioning_referencenet").mkdir()
    shutil.copy(model_copy / "unet" / "config.json", model_copy / "conditioning_referencenet")
    with pytest.raises(ModelError, match=r"conditioning_referencenet: no weights \(expected diffusion_pytorch_model.safetensors\)"):
        load_model(model_copy)


def test_inconsistent_configs_are_rejected(model_copy: Path) -> None:
    cfg_path = model_copy / "image_encoder" / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["projection_dim"], cfg["hidden_size"] = 48, 40
    cfg_path.write_text(json.dumps(cfg))
    with pytest.raises(ModelError, match="projection_dim 48 and hidden_size 40 both differ from unet cross_attention_dim 32"):
        read_info(model_copy)


def test_pooled_clip_output_when_only_the_hidden_size_fits(model_copy: Path) -> None:
    """A ViT-L/14-style encoder (projection narrower than the UNet's context) feeds its pooled hidden state."""
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    from streamer.models.diffusion.modules import build_modules

    shutil.rmtree(model_copy / "image_encoder")
    config = CLIPVisionConfig(
        hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4, image_size=32, patch_size=8, projection_dim=16
    )
    CLIPVisionModelWithProjection(config).save_pretrained(model_copy / "image_encoder")
    assert read_info(model_copy).clip_output == "pooler_output"
    model = load_model(model_copy)
    pixels = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        out = build_modules(model, 64)["image_encoder"](pixels)
        pooled = model.image_encoder.vision_model(pixel_values=pixels).pooler_output
    assert out.shape == (2, 32) and torch.equal(out, pooled)


def test_referencenet_must_match_the_denoiser(model_copy: Path) -> None:
    cfg_path = model_copy / "referencenet" / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["layers_per_block"] = 2
    cfg_path.write_text(json.dumps(cfg))
    with pytest.raises(ModelError, match="referencenet/config.json 'layers_per_block'"):
        read_info(model_copy)


def test_resolution_must_fit_the_model(tiny_model_dir: Path) -> None:
    info = read_info(tiny_model_dir)
    assert info.latent_size(128) == 32
    with pytest.raises(ModelError, match="multiple of 8"):
        info.latent_size(60)


def test_sd21_layout_has_sixteen_reference_layers() -> None:
    """The real model's UNet (SD2.1 config) gives 16 self-attention layers at 512 px."""
    from streamer.models.diffusion.info import reference_layout

    cfg = {
        "block_out_channels": [320, 640, 1280, 1280],
        "down_block_types": ["CrossAttnDownBlock2D"] * 3 + ["DownBlock2D"],
        "up_block_types": ["UpBlock2D"] + ["CrossAttnUpBlock2D"] * 3,
        "layers_per_block": 2,
    }
    layers = reference_layout(cfg, 64)
    assert len(layers) == 16
    assert layers[0].tokens == 4096 and layers[0].channels == 320
    assert layers[6].name == "mid_block.attentions.0.transformer_blocks.0.attn1" and layers[6].tokens == 64
    assert layers[-1].name == "up_blocks.3.attentions.2.transformer_blocks.0.attn1"


def test_real_model_configs_give_512_px_and_pooled_clip(tmp_path: Path) -> None:
    """Configs shaped like the real model (SD2.1-base UNets and VAE, CLIP ViT-L/14): native 512 px, no weights read."""
    from streamer.models.diffusion.spec import diffusion_specs

    unet = {
        "sample_size": 64, "in_channels": 4, "cross_attention_dim": 1024, "layers_per_block": 2,
        "block_out_channels": [320, 640, 1280, 1280],
        "down_block_types": ["CrossAttnDownBlock2D"] * 3 + ["DownBlock2D"],
        "up_block_types": ["UpBlock2D"] + ["CrossAttnUpBlock2D"] * 3,
    }
    configs = {
        "unet/config.json": unet, "referencenet/config.json": unet, "conditioning_referencenet/config.json": unet,
        "vae/config.json": {"block_out_channels": [128, 256, 512, 512], "latent_channels": 4, "scaling_factor": 0.18215},
        "image_encoder/config.json": {"hidden_size": 1024, "projection_dim": 768, "image_size": 224},
        "scheduler/scheduler_config.json": {"_class_name": "DDPMScheduler", "prediction_type": "v_prediction"},
    }
    for rel, cfg in configs.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(json.dumps(cfg))
    info = read_info(tmp_path)
    assert info.native_resolution == 512 and info.clip_output == "pooler_output"
    unet_spec = diffusion_specs(info, info.native_resolution, 4, "fp16")["unet"]
    assert len(unet_spec.inputs) == 3 + 7  # 16 self-attention layers read 7 routed ReferenceNet states
    assert unet_spec.profile()["ref_00"][2] == (8, 8192, 320)  # 4 faces x CFG, source + conditioning tokens at 64x64
