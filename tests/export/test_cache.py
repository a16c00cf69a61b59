"""Export cache and I/O descriptions: skip what is built, rebuild what changed, one spec per model, ``fawn export``."""

from __future__ import annotations

import argparse
import importlib.util
import shutil
from pathlib import Path
from typing import Any

import pytest

import engines
from export import cache
from export.build import ExportOptions, export_diffusion, export_existing
from streamer.cli.export import add_export_parser
from streamer.core.errors import ConfigError, MissingExtraError, ModelError
from streamer.models.diffusion.info import read_info
from streamer.models.diffusion.spec import DIFFUSION_COMPONENTS, diffusion_specs, spec_from_onnx


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="fawn")
    add_export_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(argv)


def test_unet_spec_describes_guided_batch_and_reference_inputs(tiny_model_dir: Path) -> None:
    specs = diffusion_specs(read_info(tiny_model_dir), 64, 3, "fp16")
    assert list(specs) == list(DIFFUSION_COMPONENTS)
    unet = specs["unet"]
    names = [t.name for t in unet.inputs]
    assert names[:3] == ["sample", "timestep", "encoder_hidden_states"] and names[3:] == [f"ref_{i:02d}" for i in range(5)]  # 7 attn1 layers read 5 routed states
    assert unet.ranges == {"B": (1, 4, 6)}  # rows = 2 x faces (conditional + unconditional)
    lo, opt, hi = unet.profile()["ref_00"]
    assert lo == (1, 512, 32) and opt == (4, 512, 32) and hi == (6, 512, 32)  # source + conditioning tokens
    assert unet.dynamic_axes()["sample"] == {0: "B"}
    assert [t.dtype for t in unet.inputs[:3]] == ["float16", "float32", "float16"]
    ref = specs["referencenet"]
    assert [t.shape for t in ref.outputs][:2] == [("B", 256, 32), ("B", 64, 64)]
    assert type(unet).from_json(unet.to_json()) == unet


def test_second_export_is_all_cached(tiny_model_dir: Path, fp32_export: dict[str, Any]) -> None:
    out = next(iter(fp32_export.values())).path.parent.parent
    assert all(a.built for a in fp32_export.values())
    mtimes = {n: a.path.stat().st_mtime_ns for n, a in fp32_export.items()}
    again = export_diffusion(tiny_model_dir, ExportOptions(out_dir=out, backend="onnx", precision="fp32", max_batch=2))
    assert not any(a.built for a in again.values())
    assert {n: a.path for n, a in again.items()} == {n: a.path for n, a in fp32_export.items()}
    assert {n: a.path.stat().st_mtime_ns for n, a in again.items()} == mtimes
    other_batch = export_diffusion(tiny_model_dir, ExportOptions(out_dir=out, precision="fp32", max_batch=3, components=("image_encoder",)))
    assert other_batch["image_encoder"].built  # other shapes: another key


def test_changed_weights_rebuild_only_their_networks(tiny_model_dir: Path, tmp_path: Path) -> None:
    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    opts = ExportOptions(out_dir=tmp_path / "engines", precision="fp32", max_batch=1, components=("image_encoder", "vae_encoder"))
    first = export_diffusion(model, opts)
    weights = model / "vae" / "diffusion_pytorch_model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF  # one byte of one tensor
    weights.write_bytes(bytes(data))
    second = export_diffusion(model, opts)
    assert not second["image_encoder"].built and second["image_encoder"].key == first["image_encoder"].key
    assert second["vae_encoder"].built and second["vae_encoder"].key != first["vae_encoder"].key


def test_damaged_artifact_is_rebuilt(tiny_model_dir: Path, tmp_path: Path) -> None:
    opts = ExportOptions(out_dir=tmp_path, precision="fp32", max_batch=1, components=("image_encoder",))
    first = export_diffusion(tiny_model_dir, opts)["image_encoder"]
    first.path.write_bytes(b"truncated")
    again = export_diffusion(tiny_model_dir, opts)["image_encoder"]
    assert again.built and again.path == first.path and again.path.stat().st_size > 1000


def test_fingerprint_samples_large_files(tmp_path: Path) -> None:
    big = tmp_path / "weights.bin"
    big.write_bytes(bytes(16 << 20))
    before = cache.fingerprint_file(big)
    with big.open("r+b") as f:
        f.seek(8 << 20)  # inside the middle sample
        f.write(b"\x01")
    assert cache.fingerprint_file(big) != before
    small = tmp_path / "config.json"
    small.write_text("{}")
    assert cache.fingerprint_file(small) != cache.fingerprint_file(big)
    assert cache.cache_key(a=1, b=[1, 2]) == cache.cache_key(b=[1, 2], a=1)


def test_detector_and_identity_go_through_the_same_path(tmp_path: Path) -> None:
    detector = engines.builtin_model("centerface")
    with pytest.raises(ModelError, match="'H' needs a"):
        spec_from_onnx(detector, "detector")
    ranges = {"B": (1, 1, 2), "H": (32, 480, 640), "W": (32, 640, 640)}
    spec = spec_from_onnx(detector, "detector", ranges)
    assert spec.profile()["input.1"] == ((1, 3, 32, 32), (1, 3, 480, 640), (2, 3, 640, 640))
    opts = ExportOptions(out_dir=tmp_path, backend="onnx")
    art = export_existing(detector, "detector", opts, ranges)
    assert art.built and art.path.parent == tmp_path
    assert not export_existing(detector, "detector", opts, ranges).built
    ident = export_existing(engines.builtin_model("dlib-resnet"), "identity", opts, {"N": (1, 1, 4)})
    assert ident.spec.profile()["images"][2] == (4, 3, 150, 150)
    assert engines.create("onnxruntime", ident.path).outputs[0].name == "embedding"


def test_cli_exports_and_reports(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = _parse(["export", "--out", str(tmp_path), "--detector", "--identity", "--precision", "fp32"])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "detector" in out and "identity" in out and "built" in out
    assert args.func(args) == 0
    assert capsys.readouterr().out.count("cached") == 2
    with pytest.raises(ConfigError, match="nothing to export"):
        nothing = _parse(["export", "--out", str(tmp_path)])
        nothing.func(nothing)


@pytest.mark.skipif(importlib.util.find_spec("tensorrt") is not None, reason="tensorrt is installed here")
def test_cli_tensorrt_without_tensorrt_names_the_extra(tmp_path: Path) -> None:
    args = _parse(["export", "--out", str(tmp_path), "--detector", "--backend", "tensorrt"])
    with pytest.raises(MissingExtraError, match=r"fawn\[tensorrt\]"):
        args.func(args)


def test_export_options_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="choices: onnx, tensorrt"):
        ExportOptions(out_dir=tmp_path, backend="openvino")
    with pytest.raises(ConfigError, match="unknown model component"):
        ExportOptions(out_dir=tmp_path, components=("textencoder",))
