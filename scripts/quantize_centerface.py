#!/usr/bin/env python3
"""Make the int8 CenterFace (``engines/models/centerface_int8.onnx``) from the shipped fp32 model.

Recipe (reproducible: same fp32 file, same onnx/onnxruntime versions -> same bytes):

1. Load ``engines/models/centerface.onnx`` (opset 9), name its unnamed nodes
   (``<op>_<index>``), drop the unused BatchNorm counters from the initializers,
   upgrade it to opset 13 (``onnx.version_converter``): QDQ needs opset >= 13 for
   per-channel ``QuantizeLinear`` axes.
2. ``onnxruntime.quantization.quant_pre_process`` (shape inference, no optimization).
3. ``quantize_static``: QDQ, per-channel int8 weights, uint8 activations (this
   CPU has VNNI, so no ``reduce_range``), MinMax calibration. The four output
   heads (heatmap + sigmoid, scale, offset, landmarks) stay fp32: they are 4 tiny
   1x1 convolutions, and keeping them float keeps the scores and box sizes exact.
4. Calibration: 48 frames at 640x480 generated in code from real photos that ship
   in packages (scikit-image's astronaut, matplotlib's grace_hopper, the six
   people of insightface's t1.jpg when installed): faces 18-160 px, some rolled,
   noisy, dark, blurred, cut by the frame edge -- the footage fawn must handle.
   Fixed seeds.

The sha256 of the result is printed and compared with ``EXPECTED_SHA256`` when
the versions match (``--check``). Usage::

    python scripts/quantize_centerface.py [-o engines/models/centerface_int8.onnx] [--check]
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

# versions the recorded checksum was made with (another onnx/onnxruntime may write other bytes)
EXPECTED = {"onnx": "1.23.2", "onnxruntime": "1.32.0"}
EXPECTED_SHA256 = "cd5de1f5eb1fec2f66d302966b429891499fff2d24dccd3ebac630700f85e916"
CALIB_FRAMES = 48
CALIB_SIZE = (640, 480)
OPSET = 13


def calibration_frames(count: int = CALIB_FRAMES, size: tuple[int, int] = CALIB_SIZE) -> Iterator[np.ndarray]:
    """BGR frames of real faces in the conditions fawn meets (see the module docstring)."""
    from streamer.io import demo
    from streamer.tools.stress import stress_frame

    photos = [demo.astronaut(), demo.grace_hopper(), *demo.t1_photos()]
    rng = np.random.default_rng(20261203)
    for i in range(count):
        yield stress_frame(photos, size, rng, variant=i)


def _prepare(src: Path, dst: Path) -> list[str]:
    """Named nodes, no unused initializers, opset 13; returns the output-head node names."""
    import onnx
    from onnx import version_converter

    model = onnx.load(str(src))
    _fold_batchnorm(model)
    for i, node in enumerate(model.graph.node):
        if not node.name:
            node.name = f"{node.op_type}_{i}"
    used = {name for node in model.graph.node for name in node.input}
    keep = [t for t in model.graph.initializer if t.name in used]
    del model.graph.initializer[:]
    model.graph.initializer.extend(keep)
    model = version_converter.convert_version(model, OPSET)
    onnx.checker.check_model(model)
    outputs = {o.name for o in model.graph.output}
    heads = [n for n in model.graph.node if set(n.output) & outputs]
    head_inputs = {name for n in heads for name in n.input}
    # the Conv feeding the Sigmoid of the heatmap is a head too
    heads += [n for n in model.graph.node if set(n.output) & head_inputs and n.op_type == "Conv"
              and any(h.op_type == "Sigmoid" for h in heads if n.output[0] in h.input)]
    onnx.save(model, str(dst))
    return sorted({n.name for n in heads})


def _fold_batchnorm(model: Any) -> None:
    """Fold each BatchNormalization that follows a ConvTranspose into its weights and a bias."""
    from onnx import numpy_helper

    inits = {t.name: t for t in model.graph.initializer}
    producer = {out: node for node in model.graph.node for out in node.output}
    for bn in [n for n in model.graph.node if n.op_type == "BatchNormalization"]:
        deconv = producer.get(bn.input[0])
        if deconv is None or deconv.op_type != "ConvTranspose" or len(deconv.input) != 2:
            continue
        gamma, beta, mean, var = (numpy_helper.to_array(inits[name]) for name in bn.input[1:5])
        eps = next((a.f for a in bn.attribute if a.name == "epsilon"), 1e-5)
        scale = gamma / np.sqrt(var + eps)
        weight = numpy_helper.to_array(inits[deconv.input[1]])  # [Cin, Cout, kh, kw]
        inits[deconv.input[1]].CopyFrom(numpy_helper.from_array(
            (weight * scale[None, :, None, None]).astype(np.float32), deconv.input[1]))
        bias_name = deconv.input[1].replace(".weight", ".bias_folded")
        model.graph.initializer.append(numpy_helper.from_array((beta - mean * scale).astype(np.float32), bias_name))
        deconv.input.append(bias_name)
        deconv.output[0] = bn.output[0]
        model.graph.node.remove(bn)


class _Reader:
    """onnxruntime CalibrationDataReader over :func:`calibration_frames`."""

    def __init__(self, input_name: str) -> None:
        self._frames = calibration_frames()
        self._input = input_name

    def get_next(self) -> dict[str, np.ndarray] | None:
        frame = next(self._frames, None)
        if frame is None:
            return None
        return {self._input: np.ascontiguousarray(frame.transpose(2, 0, 1)[::-1][None], np.float32)}

    def rewind(self) -> None:  # pragma: no cover - the quantizer reads once
        self._frames = calibration_frames()


def quantize(src: Path, dst: Path) -> str:
    """Write the int8 model to ``dst``; returns its sha256."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory() as tmp:
        upgraded, pre = Path(tmp) / "opset13.onnx", Path(tmp) / "pre.onnx"
        heads = _prepare(src, upgraded)
        quant_pre_process(str(upgraded), str(pre), skip_optimization=True, skip_symbolic_shape=True)
        quantize_static(
            str(pre), str(dst), _Reader("input.1"),
            quant_format=QuantFormat.QDQ, per_channel=True, reduce_range=False,
            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax, nodes_to_exclude=heads,
        )
    return hashlib.sha256(dst.read_bytes()).hexdigest()


def main(argv: list[str] | None = None) -> int:
    import onnx
    import onnxruntime

    root = Path(__file__).resolve().parent.parent
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--src", default=str(root / "engines" / "models" / "centerface.onnx"))
    p.add_argument("-o", "--output", default=str(root / "engines" / "models" / "centerface_int8.onnx"))
    p.add_argument("--check", action="store_true", help="fail when the sha256 differs from the recorded one")
    args = p.parse_args(argv)
    digest = quantize(Path(args.src), Path(args.output))
    versions = {"onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__}
    print(f"{args.output}: sha256 {digest} ({versions})")
    if args.check and versions == EXPECTED and digest != EXPECTED_SHA256:
        print(f"sha256 differs from the recorded {EXPECTED_SHA256}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
