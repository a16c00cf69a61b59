"""``fawn doctor``: what this installation can do, checked rather than assumed."""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import logging
import platform
from typing import Any, Literal

import engines

log = logging.getLogger(__name__)

PACKAGES = ("fawn", "numpy", "av", "onnxruntime", "onnxruntime-gpu", "openvino", "opencv-python-headless",
            "opencv-python", "scipy")
EXTRAS = {"aiortc": "webrtc", "torch": "diffusion", "diffusers": "diffusion", "tensorrt": "tensorrt",
          "openvino": "openvino"}
CODECS: dict[str, Literal["r", "w"]] = {"libx264": "w", "h264": "r", "aac": "r", "hevc": "r", "vp8": "r", "mpeg4": "r"}
PROVIDER_FOR_DEVICE = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider", "tensorrt": "TensorrtExecutionProvider"}


def _version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _providers() -> dict[str, str]:
    """Create a real session per device and report the provider it actually got."""
    import onnxruntime as ort

    from engines.ort import OnnxRuntimeEngine

    result: dict[str, str] = {}
    model = engines.builtin_model("centerface")
    available = set(ort.get_available_providers())
    for device, provider in PROVIDER_FOR_DEVICE.items():
        if provider not in available:
            result[device] = "not built into this onnxruntime"
            continue
        try:
            engine = OnnxRuntimeEngine(model, device=device, threads=1, strict_device=True)
            result[device] = f"ok ({engine.providers[0]})"
        except Exception as exc:  # report, don't fail: this is a diagnostic
            result[device] = f"unusable: {str(exc).splitlines()[0][:160]}"
    return result


def _openvino() -> dict[str, str]:
    """OpenVINO's devices, each checked by compiling the int8 CenterFace on it."""
    from engines.openvino_engine import DEVICES, OpenVinoEngine, devices

    found = devices()
    if not found:
        return {"openvino": "not installed (fawn[openvino])"}
    result: dict[str, str] = {}
    by_name = {v: k for k, v in DEVICES.items()}
    for name in found:
        device = by_name.get(name.split(".")[0])
        if device is None:
            result[name] = "present (no fawn device name)"
            continue
        try:
            engine = OpenVinoEngine(engines.builtin_model("centerface-int8"), device=device, threads=1)
            result[name] = f"ok ({engine.providers[0]}, detector.device: {device})"
        except Exception as exc:  # report, don't fail: this is a diagnostic
            result[name] = f"unusable: {str(exc).splitlines()[0][:160]}"
    return result


def _default_detector() -> str:
    from streamer.core.config import DetectorConfig
    from streamer.stages.detect import resolve_engine

    cfg = DetectorConfig()
    engine, model = resolve_engine(cfg)
    return f"{model.name if model else '?'} on {engine} ({cfg.device}), max_side {cfg.max_side}"


def _codecs() -> dict[str, str]:
    import av

    out = {}
    for name, mode in CODECS.items():
        try:
            av.codec.Codec(name, mode)
            out[name] = "encoder" if mode == "w" else "decoder"
        except Exception:
            out[name] = "missing"
    return out


def _models() -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in engines.BUILTIN_MODELS:
        try:
            path = engines.builtin_model(name)
            out[name] = {"path": str(path), "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
        except Exception as exc:
            out[name] = {"error": str(exc)}
    return out


def report() -> dict[str, Any]:
    data: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": {name: _version(name) for name in PACKAGES},
        "extras": {mod: ("installed" if importlib.util.find_spec(mod) else f"missing (fawn[{extra}])")
                   for mod, extra in EXTRAS.items()},
        "engines": engines.available(),
        "execution_providers": _providers(),
        "openvino_devices": _openvino(),
        "default_detector": _default_detector(),
        "codecs": _codecs(),
        "models": _models(),
    }
    data["ok"] = data["codecs"]["libx264"] != "missing" and all("error" not in m for m in data["models"].values()) \
        and data["execution_providers"].get("cpu", "").startswith("ok")
    if data["packages"]["onnxruntime"] and data["packages"]["onnxruntime-gpu"]:
        data["warnings"] = ["onnxruntime and onnxruntime-gpu are both installed: uninstall one"]
    return data


def format_report(data: dict[str, Any]) -> str:
    lines = [f"fawn doctor: {'OK' if data['ok'] else 'PROBLEMS FOUND'}", f"python {data['python']} on {data['platform']}"]
    for section in ("packages", "extras", "execution_providers", "openvino_devices", "codecs"):
        lines.append(f"{section}:")
        lines += [f"  {k}: {v if v is not None else '-'}" for k, v in data[section].items()]
    lines.append("models:")
    for name, info in data["models"].items():
        lines.append(f"  {name}: {info.get('path', info.get('error'))}")
    lines.append(f"engines: {', '.join(data['engines'])}")
    lines.append(f"default detector: {data['default_detector']}")
    lines += [f"warning: {w}" for w in data.get("warnings", [])]
    return "\n".join(lines) + "\n"
