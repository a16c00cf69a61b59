"""What ``fawn eval`` measures on: face photos (labelled by sub-folder) or a video's tracked faces.

- ``builtin``: the identity-labelled set made from package photos (:mod:`.faces`).
- a folder: every image in it (recursively); a photo's person is its top
  sub-folder (``alice/1.jpg``), a loose photo is its own person. The largest
  face of each photo is the one measured; every face found is anonymized.
- a video path or ``demo``: frames are anonymized by the real pipeline
  (detect, track, identity, anonymize); every ``stride``-th frame is kept, and
  each detected (not coasting, not exempted) face in it is measured, its track
  standing for its identity.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from streamer.core.config import PipelineConfig
from streamer.core.errors import SourceError
from streamer.core.media import IMAGE_SUFFIXES, VIDEO_SUFFIXES
from streamer.core.types import FaceDetections, FloatArray, Frame, Image
from streamer.stages.anonymize.base import Anonymizer
from streamer.stages.detect import Detector
from streamer.tools.evaluate.faces import AUGMENTATION_NOTE, LabelledPhoto, builtin_faces

log = logging.getLogger(__name__)

BUILTIN = "builtin"


@dataclass(frozen=True)
class EvalFace:
    """One measured face: the frame it is in, its box and landmarks, its person and where it came from."""

    frame: int
    box: FloatArray
    landmarks: FloatArray
    identity: str
    source: str
    track: int = -1


@dataclass
class EvalSet:
    """Original frames, the faces to anonymize in each, and the faces measured."""

    name: str
    kind: str  # "photos" or "video"
    frames: list[Image]
    detections: list[FaceDetections]
    faces: list[EvalFace]
    labelled: bool
    notes: list[str] = field(default_factory=list)
    anonymized: list[Image] | None = None  # video: what the pipeline made of each kept frame

    @property
    def labels(self) -> list[str]:
        return [f.identity for f in self.faces]

    @property
    def identities(self) -> int:
        return len(set(self.labels))


def is_video(spec: str) -> bool:
    return spec == "demo" or Path(spec).suffix.lower() in VIDEO_SUFFIXES


def load_photos(spec: str, detector: Detector, per_person: int = 4, seed: int = 0) -> EvalSet:
    """``builtin`` or a folder of photos, with every face detected."""
    if spec == BUILTIN:
        photos = builtin_faces(per_person, seed=seed)
        return photo_set(BUILTIN, photos, detector, labelled=True, notes=[AUGMENTATION_NOTE])
    root = Path(spec).expanduser()
    if not root.is_dir():
        raise SourceError(f"eval input not found: {spec} (a folder of face photos, a video, 'demo' or 'builtin')")
    photos, labelled = _read_folder(root)
    return photo_set(str(root), photos, detector, labelled, notes=[])


def _read_folder(root: Path) -> tuple[list[LabelledPhoto], bool]:
    photos, labelled = [], False
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if path.suffix.lower() not in IMAGE_SUFFIXES or not path.is_file() or any(p.startswith(".") for p in rel.parts):
            continue
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            log.warning("%s cannot be read as an image: skipped", path)
            continue
        nested = len(rel.parts) > 1
        labelled = labelled or nested
        photos.append(LabelledPhoto(str(rel), rel.parts[0] if nested else rel.stem, image))
    if not photos:
        raise SourceError(f"no photos in {root} (looked for {', '.join(sorted(IMAGE_SUFFIXES))})")
    return photos, labelled


def photo_set(name: str, photos: Iterable[LabelledPhoto], detector: Detector, labelled: bool, notes: list[str]) -> EvalSet:
    """Detect the faces of each photo; the largest one is measured (photos without a face are left out)."""
    frames: list[Image] = []
    detections: list[FaceDetections] = []
    faces: list[EvalFace] = []
    missing: list[str] = []
    for photo in photos:
        image, dets = detect_padded(detector, photo.image)
        if not len(dets) or dets.landmarks is None:
            missing.append(photo.name)
            continue
        row = int(np.argmax(dets.area))
        faces.append(EvalFace(len(frames), dets.xyxy[row].copy(), dets.landmarks[row].copy(), photo.person, photo.name))
        frames.append(image)
        detections.append(dets)
    if missing:
        notes = [*notes, f"{len(missing)} photo(s) without a detected face left out: {', '.join(missing[:5])}"]
        log.warning("no face found in %d photo(s): %s", len(missing), ", ".join(missing[:5]))
    if len(faces) < 2:
        raise SourceError(f"{name}: {len(faces)} face(s) found; evaluation needs at least 2")
    return EvalSet(name, "photos", frames, detections, faces, labelled, notes)


def detect_padded(detector: Detector, image: Image) -> tuple[Image, FaceDetections]:
    """Faces of a photo; a tightly cropped face is found again on a grey-padded copy (returned with it)."""
    dets = detector.detect(image)
    if len(dets):
        return image, dets
    pad = max(image.shape[:2]) // 2
    padded = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=(127, 127, 127))
    return padded, detector.detect(padded)


def run_video(
    spec: str, cfg: PipelineConfig, detector: Detector, anonymizer: Anonymizer, max_frames: int, stride: int
) -> EvalSet:
    """Anonymize a video with the real per-frame stages; keep every ``stride``-th frame and its faces."""
    from streamer.core.stats import RunStats
    from streamer.io.sources import open_source
    from streamer.runtime.processor import FrameProcessor
    from streamer.stages.identity.resolver import create_identity
    from streamer.stages.track import SortTracker

    t = cfg.tracker
    stats = RunStats()
    tracker = SortTracker(t.max_coast, t.iou_threshold, t.max_center_jump, t.box_grow_per_frame)
    processor = FrameProcessor(
        detector, tracker, create_identity(cfg.identity, stats), anonymizer, cfg.detector.every_n, cfg.on_error, stats
    )
    out = EvalSet(spec, "video", [], [], [], labelled=True, anonymized=[])
    source = open_source(spec, cfg.io)
    read = 0
    try:
        for item in source.read():
            if not isinstance(item, Frame):
                continue
            if read >= max_frames:
                break
            read += 1
            original = item.image.copy()
            tracked = processor.process(item)
            if item.index % stride == 0:
                _keep(out, original, item.image, tracked, item.index)
    finally:
        source.close()
        processor.close()
    out.notes.append(f"video: {read} frames read, every {stride}th measured; a face's identity is its track")
    if stats.faces_visible:
        out.notes.append(f"{stats.faces_visible} face-frames left visible by the identity stage (not measured)")
    if len(out.faces) < 2:
        raise SourceError(f"{spec}: {len(out.faces)} face(s) tracked in the frames kept; evaluation needs at least 2")
    return out


def _keep(out: EvalSet, original: Image, anonymized: Image, tracked: FaceDetections, index: int) -> None:
    assert out.anonymized is not None and tracked.coasting is not None and tracked.visible is not None
    assert tracked.track_id is not None
    k = len(out.frames)
    out.frames.append(original)
    out.anonymized.append(anonymized.copy())
    out.detections.append(tracked)
    if tracked.landmarks is None:
        return
    for i in np.flatnonzero(~tracked.coasting & ~tracked.visible):
        tid = int(tracked.track_id[i])
        out.faces.append(EvalFace(k, tracked.xyxy[i].copy(), tracked.landmarks[i].copy(), f"track{tid}", f"frame {index}", tid))
