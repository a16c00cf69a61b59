"""Identity models on real faces: the built-in dlib ResNet, and ArcFace through a tiny ONNX made here.

The tiny ArcFace (112x112 -> 512: average-pool + a fixed random projection)
goes through exactly the code a real insightface pack uses: pack discovery,
input-normalization detection, the 112 ArcFace alignment, engines, gallery,
enrolment and the per-track resolver. A real ``buffalo_l`` pack in
``~/.insightface/models`` is tested too when present.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from streamer.core.config import IdentityConfig, load_config
from streamer.core.errors import ConfigError, GalleryError, ModelError
from streamer.core.stats import RunStats
from streamer.core.types import Image
from streamer.io import demo
from streamer.stages.detect import CenterFaceDetector
from streamer.stages.identity.embed import (
    ARCFACE_THRESHOLD,
    DLIB_THRESHOLD,
    Embedder,
    OnnxEmbedder,
    create_embedder,
    find_arcface_model,
    graph_normalizes,
)
from streamer.stages.identity.enroll import EnrollOptions, enroll
from streamer.stages.identity.gallery import Gallery
from streamer.stages.identity.resolver import create_identity
from streamer.stages.packs import insightface_models_dir
from streamer.stages.scrfd import ScrfdDetector


def build_tiny_arcface(path: Path, normalize_inside: bool, seed: int = 7) -> Path:
    """A 112x112 -> 512 ONNX with an ArcFace model's interface (``input.1`` [N,3,112,112] -> [N,512]).

    ``normalize_inside``: the graph starts with Sub(127.5) and Mul(1/127.5), as
    mxnet-exported ArcFace models do; else the caller must normalize (like w600k_r50).
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weights = (np.random.default_rng(seed).standard_normal((588, 512)) / np.sqrt(588)).astype(np.float32)
    inits = [numpy_helper.from_array(weights, "fc_weight")]
    nodes, x = [], "input.1"
    if normalize_inside:
        inits += [numpy_helper.from_array(np.array(127.5, np.float32), "mean"),
                  numpy_helper.from_array(np.array(1 / 127.5, np.float32), "scale")]
        nodes += [helper.make_node("Sub", [x, "mean"], ["centred"], name="Sub_0"),
                  helper.make_node("Mul", ["centred", "scale"], ["scaled"], name="Mul_1")]
        x = "scaled"
    nodes += [
        helper.make_node("AveragePool", [x], ["pooled"], kernel_shape=[8, 8], strides=[8, 8], name="pool"),
        helper.make_node("Flatten", ["pooled"], ["flat"], axis=1, name="flatten"),
        helper.make_node("MatMul", ["flat", "fc_weight"], ["683"], name="fc"),
    ]
    graph = helper.make_graph(
        nodes, "tiny_arcface",
        [helper.make_tensor_value_info("input.1", TensorProto.FLOAT, ["None", 3, 112, 112])],
        [helper.make_tensor_value_info("683", TensorProto.FLOAT, ["None", 512])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def build_tiny_scrfd(path: Path, seed: int = 3) -> Path:
    """An untrained SCRFD-shaped ONNX (input [1,3,640,640]; scores, box distances, landmarks for strides
    8/16/32, 2 anchors per cell; the 9 outputs in a real pack's order): exercises the decoding only."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    nodes, inits = [], []
    outs: dict[str, list[onnx.ValueInfoProto]] = {"score": [], "bbox": [], "kps": []}
    for stride in (8, 16, 32):
        nodes.append(helper.make_node("AveragePool", ["input.1"], [f"p{stride}"], kernel_shape=[stride, stride], strides=[stride, stride]))
        for kind, channels in (("score", 2), ("bbox", 8), ("kps", 20)):
            weight = (rng.standard_normal((channels, 3, 1, 1)) * (2.0 if kind == "score" else 1.5)).astype(np.float32)
            bias = np.full(channels, -5.0 if kind == "score" else 2.0, np.float32)
            inits += [numpy_helper.from_array(weight, f"w_{kind}{stride}"), numpy_helper.from_array(bias, f"b_{kind}{stride}"),
                      numpy_helper.from_array(np.array([-1, channels // 2], np.int64), f"shape_{kind}{stride}")]
            x = f"c_{kind}{stride}"
            nodes.append(helper.make_node("Conv", [f"p{stride}", f"w_{kind}{stride}", f"b_{kind}{stride}"], [x]))
            if kind == "score":
                nodes.append(helper.make_node("Sigmoid", [x], [f"s{stride}"]))
                x = f"s{stride}"
            nodes.append(helper.make_node("Transpose", [x], [f"t_{kind}{stride}"], perm=[0, 2, 3, 1]))
            nodes.append(helper.make_node("Reshape", [f"t_{kind}{stride}", f"shape_{kind}{stride}"], [f"{kind}_{stride}"]))
            outs[kind].append(helper.make_tensor_value_info(f"{kind}_{stride}", TensorProto.FLOAT, ["n", channels // 2]))
    graph = helper.make_graph(nodes, "tiny_scrfd", [helper.make_tensor_value_info("input.1", TensorProto.FLOAT, [1, 3, 640, 640])],
                              outs["score"] + outs["bbox"] + outs["kps"], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def grace_other_crop() -> Image:
    """Grace Hopper from another crop than the clips show: rotated 10 degrees, scaled 0.6, JPEG q60."""
    image = demo.grace_hopper().image
    h, w = image.shape[:2]
    rotated = cv2.warpAffine(image, cv2.getRotationMatrix2D((w / 2, h / 2), 10, 0.6), (w, h), borderValue=(90, 90, 90))
    decoded: Image = cv2.imdecode(cv2.imencode(".jpg", rotated, [cv2.IMWRITE_JPEG_QUALITY, 60])[1], cv2.IMREAD_COLOR)
    return decoded


@pytest.fixture(scope="module")
def faces(detector: CenterFaceDetector) -> dict[str, tuple[Image, np.ndarray]]:
    """Real faces: (image, landmarks [5,2]) by name."""
    out: dict[str, tuple[Image, np.ndarray]] = {}
    clip = demo.ClipSpec(actors=(demo.Actor(demo.grace_hopper(), 95, (0.5, 0.5), (0.0, 0.0)),), seconds=0.1)
    sources = {"grace": demo.grace_hopper().image, "grace_crop": grace_other_crop(),
               "grace_clip": next(demo.render(clip))[0], "astronaut": demo.astronaut().image}
    for name, image in sources.items():
        found = detector.detect(image)
        assert found.landmarks is not None and len(found) == 1, name
        out[name] = (image, found.landmarks[0])
    t1_path = demo.insightface_t1_path()
    assert t1_path is not None, "insightface's t1.jpg is needed: pip install --no-deps insightface==2.1"
    t1 = cv2.imread(str(t1_path))
    found = detector.detect(t1)
    assert found.landmarks is not None
    for k, i in enumerate(np.argsort(found.xyxy[:, 0])):
        out[f"t1_{k}"] = (t1, found.landmarks[i])
    return out


@pytest.fixture(scope="module")
def dlib() -> OnnxEmbedder:
    embedder = create_embedder(IdentityConfig(threads=2))
    assert isinstance(embedder, OnnxEmbedder)
    return embedder


def _embed(embedder: Embedder, faces: dict[str, tuple[Image, np.ndarray]], names: list[str]) -> np.ndarray:
    return embedder.embed([embedder.align(*faces[n]) for n in names])


def test_dlib_same_person_from_another_crop_matches_strangers_do_not(dlib: OnnxEmbedder, faces: dict[str, tuple[Image, np.ndarray]]) -> None:
    names = ["grace_crop", "grace", "grace_clip", "astronaut", "t1_0", "t1_1", "t1_2", "t1_3", "t1_5"]
    vectors = _embed(dlib, faces, names)
    assert vectors.shape == (len(names), 128)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    sims = vectors[1:] @ vectors[0]
    assert sims[0] > 0.97 and sims[1] > 0.97  # the original photo and the clip's rendering
    assert sims[2:].max() < DLIB_THRESHOLD - 0.02  # nobody else reaches the threshold


def test_dlib_batch_equals_one_by_one(dlib: OnnxEmbedder, faces: dict[str, tuple[Image, np.ndarray]]) -> None:
    names = ["grace", "astronaut", "t1_0"]
    batch = _embed(dlib, faces, names)
    single = np.concatenate([_embed(dlib, faces, [n]) for n in names])
    np.testing.assert_allclose(batch, single, atol=1e-5)


def test_model_id_names_the_model_and_its_file(dlib: OnnxEmbedder, tmp_path: Path) -> None:
    assert dlib.model_id.startswith("dlib-resnet:") and len(dlib.model_id) == len("dlib-resnet:") + 16
    assert create_embedder(IdentityConfig()).model_id == dlib.model_id
    tiny = build_tiny_arcface(tmp_path / "a.onnx", False)
    other = build_tiny_arcface(tmp_path / "b.onnx", False, seed=8)
    ids = {create_embedder(IdentityConfig(model="arcface", model_path=str(p))).model_id for p in (tiny, other)}
    assert len(ids) == 2 and all(i.startswith("arcface:") for i in ids)


def test_unknown_model_lists_the_valid_ones() -> None:
    with pytest.raises(ConfigError, match="dlib-resnet, arcface"):
        create_embedder(IdentityConfig(model="facenet"))
    with pytest.raises(ConfigError, match="choices: dlib-resnet, arcface"):
        load_config(None, {"identity.model": "facenet"})


def test_arcface_pack_is_found_where_insightface_keeps_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INSIGHTFACE_HOME", str(tmp_path / "home"))
    with pytest.raises(ModelError, match=r"put insightface's buffalo_l pack there .*home/models/buffalo_l/w600k_r50.onnx"):
        create_embedder(IdentityConfig(model="arcface"))
    model = build_tiny_arcface(tmp_path / "home" / "models" / "buffalo_l" / "w600k_r50.onnx", False)
    (tmp_path / "home" / "models" / "buffalo_l" / "det_10g.onnx").write_bytes(b"not this one")
    assert insightface_models_dir() == tmp_path / "home" / "models"
    assert find_arcface_model(None) == model
    assert find_arcface_model(str(model.parent)) == model  # a pack folder
    embedder = create_embedder(IdentityConfig(model="arcface"))
    assert (embedder.size, embedder.dim, embedder.default_threshold) == (112, 512, ARCFACE_THRESHOLD)


def test_arcface_rejects_a_model_that_is_not_one() -> None:
    from engines import builtin_model

    with pytest.raises(ModelError, match="input"):
        create_embedder(IdentityConfig(model="arcface", model_path=str(builtin_model("centerface"))))


def test_arcface_normalization_inside_or_outside_the_graph_gives_the_same_embedding(
    tmp_path: Path, faces: dict[str, tuple[Image, np.ndarray]]
) -> None:
    outside = build_tiny_arcface(tmp_path / "outside.onnx", False)
    inside = build_tiny_arcface(tmp_path / "inside.onnx", True)
    assert not graph_normalizes(outside) and graph_normalizes(inside)
    a = create_embedder(IdentityConfig(model="arcface", model_path=str(outside)))
    b = create_embedder(IdentityConfig(model="arcface", model_path=str(inside)))
    crops = [a.align(*faces[n]) for n in ("grace", "astronaut", "t1_2")]
    assert crops[0].shape == (112, 112, 3)
    np.testing.assert_allclose(a.embed(crops), b.embed(crops), atol=1e-5)


@pytest.mark.filterwarnings("ignore::FutureWarning")
@pytest.mark.parametrize("inside", [False, True])
def test_arcface_matches_insightface_own_loader(tmp_path: Path, faces: dict[str, tuple[Image, np.ndarray]], inside: bool) -> None:
    from insightface.model_zoo import get_model
    from insightface.utils.face_align import norm_crop

    path = build_tiny_arcface(tmp_path / "w600k_r50.onnx", inside)
    theirs = get_model(str(path), providers=["CPUExecutionProvider"])
    assert type(theirs).__name__ == "ArcFaceONNX"  # insightface routes it as a recognition model
    ours = create_embedder(IdentityConfig(model="arcface", model_path=str(tmp_path)))
    for name in ("grace", "t1_0"):
        image, landmarks = faces[name]
        reference = theirs.get_feat(norm_crop(image, landmarks, 112)).ravel()
        reference /= np.linalg.norm(reference)
        mine = ours.embed([ours.align(image, landmarks)])[0]
        assert float(mine @ reference) > 0.9999


def test_arcface_end_to_end_enroll_and_resolve(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, detector: CenterFaceDetector
) -> None:
    """Enrol from another crop with the ArcFace path, then a clip: Grace shown, a stranger hidden."""
    monkeypatch.setenv("INSIGHTFACE_HOME", str(tmp_path / "home"))
    build_tiny_arcface(tmp_path / "home" / "models" / "buffalo_l" / "w600k_r50.onnx", False)
    photo = tmp_path / "grace.jpg"
    cv2.imwrite(str(photo), grace_other_crop())
    gallery_path = tmp_path / "g.fawn"
    overrides = {"identity.model": "arcface", "identity.threshold": 0.8}
    enroll(EnrollOptions((str(photo),), str(gallery_path)), load_config(None, overrides))
    assert Gallery.load(gallery_path).model_id.startswith("arcface:")
    cfg = load_config(None, {**overrides, "identity.gallery": str(gallery_path)})
    stats = RunStats()
    resolver = create_identity(cfg.identity, stats)
    spec = demo.ClipSpec(seconds=1.0, actors=(
        demo.Actor(demo.grace_hopper(), 100, (0.3, 0.5), (0.03, 0.0)),
        demo.Actor(demo.astronaut(), 100, (0.72, 0.5), (-0.03, 0.0)),
    ))
    from streamer.stages.track import SortTracker

    tracker = SortTracker()
    shown: dict[str, int] = {"registered:grace": 0, "unknown": 0}
    for index, (image, _) in enumerate(demo.render(spec)):
        dets = resolver.resolve(image, tracker.update(detector.detect(image), index))
        assert dets.identity is not None and dets.visible is not None
        for identity, visible in zip(dets.identity, dets.visible):
            assert identity in ("pending", "registered:grace", "unknown")
            assert not visible or identity == "registered:grace"
            shown[str(identity)] = shown.get(str(identity), 0) + int(visible)
    assert shown["registered:grace"] >= 20 and shown["unknown"] == 0
    assert all(n <= 5 for n in stats.identity_calls.values())
    # the dlib default refuses the ArcFace gallery
    with pytest.raises(GalleryError, match="made with identity model arcface:"):
        create_identity(load_config(None, {"identity.gallery": str(gallery_path)}).identity)


def test_scrfd_missing_pack_says_where_to_put_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INSIGHTFACE_HOME", str(tmp_path))
    with pytest.raises(ModelError, match=r"no SCRFD detector found in .*: put insightface's buffalo_l pack there .*buffalo_l/det_10g.onnx"):
        ScrfdDetector()
    from engines import builtin_model

    with pytest.raises(ModelError, match="9 outputs"):  # CenterFace is not an SCRFD
        ScrfdDetector(builtin_model("centerface"))


@pytest.mark.parametrize("photo", ["grace", "astronaut"])
def test_scrfd_decoding_matches_insightface(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, photo: str) -> None:
    """Same letterbox, anchors, box and landmark decoding and NMS as insightface's SCRFD, on real photos."""
    from insightface.model_zoo.scrfd import SCRFD

    monkeypatch.setenv("INSIGHTFACE_HOME", str(tmp_path))
    path = build_tiny_scrfd(tmp_path / "models" / "buffalo_l" / "det_10g.onnx")
    image = demo.grace_hopper().image if photo == "grace" else demo.astronaut().image
    ours = ScrfdDetector(threads=2).detect(image)  # found in the pack folder
    boxes, landmarks = SCRFD(str(path)).detect(image)
    assert 3 <= len(ours) == len(boxes)
    h, w = image.shape[:2]
    np.testing.assert_allclose(ours.xyxy, np.clip(boxes[:, :4], 0, [w, h, w, h]), atol=1e-3)
    np.testing.assert_allclose(ours.score, boxes[:, 4], atol=1e-6)
    np.testing.assert_allclose(ours.landmarks, landmarks, atol=1e-3)  # type: ignore[arg-type]


def test_real_insightface_pack_when_present(faces: dict[str, tuple[Image, np.ndarray]]) -> None:
    """buffalo_l's w600k_r50 and det_10g on real faces, when ~/.insightface/models has them."""
    try:
        path = find_arcface_model(None)
        scrfd = ScrfdDetector(threads=2)
    except ModelError as exc:
        pytest.skip(f"no insightface pack on this machine ({exc})")
    embedder = create_embedder(IdentityConfig(model="arcface", model_path=str(path)))
    vectors = _embed(embedder, faces, ["grace_crop", "grace", "astronaut", "t1_0"])
    sims = vectors[1:] @ vectors[0]
    assert sims[0] > ARCFACE_THRESHOLD and sims[1:].max() < ARCFACE_THRESHOLD
    t1, landmarks = faces["t1_0"]
    found = scrfd.detect(t1)
    assert len(found) >= 5 and found.landmarks is not None
    assert np.abs(found.landmarks - landmarks).sum(axis=(1, 2)).min() < 40  # the same face, the same 5 points
