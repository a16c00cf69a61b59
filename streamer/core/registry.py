"""The names of every pluggable kind, in one place: config validation, the factories and their
"valid names" errors all read them from here. Adding a backend = one entry here + its factory branch
(each factory's test checks that it builds every name listed here)."""

from __future__ import annotations

# face detectors (streamer.stages.detect.create_detector)
DETECTORS = ("centerface", "scrfd")  # scrfd: insightface packs (detector.model: pack folder or .onnx)
# identity embedders (streamer.stages.identity.embed.create_embedder)
EMBEDDERS = ("dlib-resnet", "arcface")
# anonymizers (streamer.stages.anonymize.create_anonymizer)
ANONYMIZERS = ("blur", "pixelate", "solid", "ksame", "diffusion")
# plate anonymizers: the per-region methods (no identity, no synthesis)
PLATE_ANONYMIZERS = ("blur", "pixelate", "solid")
# inference engines (engines.create): name -> "module:Class", imported only when asked for
ENGINE_BACKENDS = {
    "onnxruntime": "engines.ort:OnnxRuntimeEngine",
    "tensorrt": "engines.trt:TensorRTEngine",
    "torch": "engines.torch_engine:TorchEngine",
    "openvino": "engines.openvino_engine:OpenVinoEngine",
}
# the engines a model file given by the user may run on (identity, plates, diffusion)
MODEL_ENGINES = ("onnxruntime", "tensorrt", "torch")
# the face detector's engine: "auto" picks OpenVINO when installed (measured fastest on x86 CPUs)
DETECTOR_ENGINES = ("auto", *sorted(ENGINE_BACKENDS))
