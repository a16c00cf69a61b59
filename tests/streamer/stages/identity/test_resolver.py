"""Per-track identity on clips of real people: registered faces shown, everyone else hidden, fail closed.

The clips (640x480, 30 fps) are made from real photos: Grace Hopper (the
registered person, enrolled from *another crop* of her photo: rotated 10
degrees, scaled 0.6, JPEG q60, with ``fawn enroll``'s code), the astronaut, and
people of insightface's t1.jpg. The real CenterFace detector runs once per
clip; the tracker, the identity stage and the blur anonymizer run per test.
"Shown"/"hidden" is checked on the output pixels (``verify.face_hidden``) and
on the rows' ``visible`` flags.

Take-over bound chosen here: N = 3 frames. A stranger who replaces the
registered person inside her track is anonymized within 3 frames (measured:
0, the appearance-drift check fires in the frame of the swap and the row is
hidden in that same frame). If every cheap check misses, the periodic
re-check still bounds it to ``recheck_every + recheck_grace`` frames after
the last verification (tested with the cheap checks switched off).
"""

from __future__ import annotations

import json
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from streamer.core.boxes import iou_matrix
from streamer.core.config import AnonymizerConfig, load_config
from streamer.core.stats import RunStats
from streamer.core.types import FaceDetections, Frame, Image
from streamer.io import demo
from streamer.runtime.processor import FrameProcessor
from streamer.stages.anonymize import create_anonymizer
from streamer.stages.detect import CenterFaceDetector
from streamer.stages.identity.enroll import EnrollOptions, enroll
from streamer.stages.identity.resolver import (
    IdentityResolver,
    TrackIdentityResolver,
    create_identity,
)
from streamer.stages.track import SortTracker
from streamer.tools import verify

TAKEOVER_N = 3
FPS = 30


@dataclass
class Clip:
    frames: list[tuple[Image, np.ndarray]]  # (image, ground-truth boxes in actor order)
    detections: list[FaceDetections]


class ReplayDetector:
    """The real detector's results on a clip, replayed (blind on chosen frames: a detector miss)."""

    def __init__(self, detections: list[FaceDetections], blind: set[int] | None = None) -> None:
        self.detections, self.blind, self.calls = detections, blind or set(), 0

    def detect(self, image: Image) -> FaceDetections:
        index = self.calls
        self.calls += 1
        if index in self.blind:
            return FaceDetections.empty()
        d = self.detections[index]
        assert d.landmarks is not None
        return FaceDetections(d.xyxy.copy(), d.score.copy(), d.landmarks.copy())


@dataclass
class Seen:
    """One actor in one frame: its matched row (if any) and whether its face is hidden in the output."""

    track: int | None
    identity: str | None
    visible: bool
    coasting: bool
    hidden: bool


@dataclass
class Result:
    seen: list[list[Seen]]  # [frame][actor]
    rows: list[FaceDetections]
    stats: RunStats
    audit: list[dict[str, Any]] = field(default_factory=list)

    def actor(self, k: int) -> list[Seen]:
        return [frame[k] for frame in self.seen]


def _t1_photos(detector: CenterFaceDetector) -> list[demo.FacePhoto]:
    path = demo.insightface_t1_path()
    assert path is not None, "insightface's t1.jpg is needed: pip install --no-deps insightface==2.1"
    image = cv2.imread(str(path))
    faces = detector.detect(image)
    faces = faces[faces.score >= 0.5]  # the six people (the stream threshold also finds a shoulder)
    return [demo.FacePhoto(f"t1_{k}", image, tuple(float(v) for v in faces.xyxy[i]))  # type: ignore[arg-type]
            for k, i in enumerate(np.argsort(faces.xyxy[:, 0]))]


def _clip(spec: demo.ClipSpec, detector: CenterFaceDetector) -> Clip:
    frames = list(demo.render(spec))
    return Clip(frames, [detector.detect(image) for image, _ in frames])


@pytest.fixture(scope="module")
def people(detector: CenterFaceDetector) -> dict[str, demo.FacePhoto]:
    t1 = _t1_photos(detector)
    return {"grace": demo.grace_hopper(), "astronaut": demo.astronaut(), "jennifer": t1[0], "matthew": t1[2]}


@pytest.fixture(scope="module")
def gallery(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Grace Hopper enrolled from another crop than the clips show."""
    folder = tmp_path_factory.mktemp("gallery")
    image = demo.grace_hopper().image
    h, w = image.shape[:2]
    other = cv2.warpAffine(image, cv2.getRotationMatrix2D((w / 2, h / 2), 10, 0.6), (w, h), borderValue=(90, 90, 90))
    photo = folder / "grace.jpg"
    cv2.imwrite(str(photo), other, [cv2.IMWRITE_JPEG_QUALITY, 60])
    path = folder / "people.fawn"
    enroll(EnrollOptions((str(photo),), str(path)), load_config(None))
    return path


@pytest.fixture(scope="module")
def four_people(people: dict[str, demo.FacePhoto], detector: CenterFaceDetector) -> Clip:
    """4 s, four real people moving in their own quadrant; actor 0 (Grace) is registered."""
    actors = (
        demo.Actor(people["grace"], 95, (0.27, 0.3), (0.03, 0.02), wobble=0.15),
        demo.Actor(people["astronaut"], 90, (0.73, 0.3), (-0.03, 0.02), wobble=0.1),
        demo.Actor(people["jennifer"], 85, (0.27, 0.75), (0.03, -0.02), wobble=0.1),
        demo.Actor(people["matthew"], 85, (0.73, 0.75), (-0.03, -0.02), wobble=0.1),
    )
    return _clip(demo.ClipSpec(fps=FPS, seconds=4.0, actors=actors), detector)


TAKEOVER_AT = 60


@pytest.fixture(scope="module")
def takeover(people: dict[str, demo.FacePhoto], detector: CenterFaceDetector) -> Clip:
    """Grace walks left to right; at frame 60 Jennifer stands exactly where she was (same track). The astronaut is elsewhere."""
    def spec(first: demo.FacePhoto) -> demo.ClipSpec:
        return demo.ClipSpec(fps=FPS, seconds=100 / FPS, actors=(
            demo.Actor(first, 95, (0.25, 0.45), (0.05, 0.0)),
            demo.Actor(people["astronaut"], 90, (0.75, 0.4), (-0.02, 0.03)),
        ))
    before, after = demo.render(spec(people["grace"])), demo.render(spec(people["jennifer"]))
    frames = [a if i < TAKEOVER_AT else b for i, (a, b) in enumerate(zip(before, after))]
    return Clip(frames, [detector.detect(image) for image, _ in frames])


def _run(clip: Clip, overrides: dict[str, Any], tmp_path: Path, blind: set[int] | None = None) -> Result:
    audit = tmp_path / "audit.jsonl"
    cfg = load_config(None, {"identity.audit": str(audit), **overrides})
    stats = RunStats()
    resolver: IdentityResolver = create_identity(cfg.identity, stats)
    processor = FrameProcessor(ReplayDetector(clip.detections, blind), SortTracker(), resolver,
                               create_anonymizer(AnonymizerConfig()), stats=stats)
    seen, rows = [], []
    for index, (image, truth) in enumerate(clip.frames):
        frame = Frame(image.copy(), index)
        dets = processor.process(frame)
        rows.append(dets)
        seen.append([_match(dets, box, verify.face_hidden(image, frame.image, box)) for box in truth])
    if isinstance(resolver, TrackIdentityResolver):
        resolver.close()
    records = [json.loads(line) for line in audit.read_text().splitlines()] if audit.exists() else []
    return Result(seen, rows, stats, records)


def _match(dets: FaceDetections, box: np.ndarray, hidden: bool) -> Seen:
    assert dets.identity is not None and dets.visible is not None and dets.track_id is not None and dets.coasting is not None
    if not len(dets):
        return Seen(None, None, False, False, hidden)
    # the row whose box covers most of the actor's face (a coasting box grows, so not IoU)
    tl = np.maximum(box[None, :2], dets.xyxy[:, :2])
    br = np.minimum(box[None, 2:], dets.xyxy[:, 2:])
    cover = np.prod(np.clip(br - tl, 0, None), axis=1) / max(float(np.prod(box[2:] - box[:2])), 1.0)
    j = int(cover.argmax())
    if cover[j] < 0.6 or iou_matrix(box[None], dets.xyxy[j : j + 1])[0, 0] < 0.1:
        return Seen(None, None, False, False, hidden)
    return Seen(int(dets.track_id[j]), dets.identity[j], bool(dets.visible[j]), bool(dets.coasting[j]), hidden)


def _exempt(gallery: Path) -> dict[str, Any]:
    return {"identity.gallery": str(gallery), "identity.mode": "exempt", "identity.threads": 2}


@pytest.fixture(scope="module")
def exempt_run(four_people: Clip, gallery: Path, tmp_path_factory: pytest.TempPathFactory) -> Result:
    return _run(four_people, _exempt(gallery), tmp_path_factory.mktemp("exempt"))


def test_every_face_is_tracked_in_every_frame(exempt_run: Result) -> None:
    assert all(s.track is not None for frame in exempt_run.seen for s in frame)


def test_registered_face_is_shown_after_its_decision(exempt_run: Result) -> None:
    grace = exempt_run.actor(0)
    decided = next(i for i, s in enumerate(grace) if s.identity == "registered:grace")
    assert decided <= 15  # K=3 samples, 3 frames apart
    after = grace[decided:]
    shown = sum(s.visible and not s.hidden for s in after)
    assert shown >= 0.95 * len(after), f"shown in {shown}/{len(after)} frames after the decision"
    assert all(s.hidden and not s.visible for s in grace[:decided])  # pending: anonymized
    assert len({s.track for s in grace}) == 1


def test_every_unregistered_face_is_hidden_in_every_frame(exempt_run: Result) -> None:
    for k in (1, 2, 3):
        stranger = exempt_run.actor(k)
        assert all(s.hidden for s in stranger), f"actor {k} leaked in frames {[i for i, s in enumerate(stranger) if not s.hidden]}"
        assert not any(s.visible for s in stranger)
        assert stranger[-1].identity == "unknown"


def test_pending_rows_are_never_visible(exempt_run: Result) -> None:
    pending = [(d.identity[j], bool(d.visible[j])) for d in exempt_run.rows  # type: ignore[index]
               for j in range(len(d)) if d.identity[j] == "pending"]  # type: ignore[index]
    assert len(pending) >= 4 * 5  # every track was pending for a while
    assert not any(visible for _, visible in pending)


def test_a_stable_track_costs_a_handful_of_embeddings(exempt_run: Result) -> None:
    calls = exempt_run.stats.identity_calls
    assert len(calls) == 4 and all(1 <= n <= 5 for n in calls.values()), dict(calls)
    summary = exempt_run.stats.to_json()
    assert summary["identity_calls"] == sum(calls.values())
    assert set(summary["identity_calls_per_track"]) == {str(t) for t in calls}


def test_audit_log_has_one_line_per_event_and_no_embeddings(exempt_run: Result, tmp_path_factory: pytest.TempPathFactory) -> None:
    ends = [r for r in exempt_run.audit if r["event"] == "end"]
    assert len(ends) == 4
    grace_track = exempt_run.actor(0)[0].track
    by_track = {r["track"]: r for r in ends}
    grace = by_track[grace_track]
    assert grace["decision"] == "registered:grace" and grace["score"] > 0.93
    assert grace["first_frame"] == 0 and grace["frame"] == len(exempt_run.seen) - 1
    assert grace["samples"] == grace["identity_calls"] == exempt_run.stats.identity_calls[grace_track]
    assert sorted(r["decision"] for r in ends) == ["registered:grace", "unknown", "unknown", "unknown"]
    decisions = [r for r in exempt_run.audit if r["event"] == "decision"]
    assert len(decisions) == 4 and all(r["samples"] == 3 for r in decisions)
    for record in exempt_run.audit:  # scalars only: no embeddings, no crops
        assert all(v is None or isinstance(v, (str, int, float)) for v in record.values())


def test_audit_file_is_private(four_people: Clip, gallery: Path, tmp_path: Path) -> None:
    short = Clip(four_people.frames[:12], four_people.detections[:12])
    _run(short, _exempt(gallery), tmp_path)
    audit = tmp_path / "audit.jsonl"
    assert stat.S_IMODE(audit.stat().st_mode) == 0o600
    assert audit.stat().st_size < 4000


def test_target_mode_hides_only_the_registered(four_people: Clip, gallery: Path, tmp_path: Path) -> None:
    result = _run(four_people, {**_exempt(gallery), "identity.mode": "target"}, tmp_path)
    grace = result.actor(0)
    assert all(s.hidden and not s.visible for s in grace)
    for k in (1, 2, 3):
        stranger = result.actor(k)
        decided = next(i for i, s in enumerate(stranger) if s.identity == "unknown")
        assert all(s.hidden for s in stranger[:decided])  # pending stays anonymized in target mode too
        after = stranger[decided:]
        assert sum(s.visible and not s.hidden for s in after) >= 0.95 * len(after)


def test_mode_all_shows_no_one(four_people: Clip, gallery: Path, tmp_path: Path) -> None:
    short = Clip(four_people.frames[:30], four_people.detections[:30])
    result = _run(short, {**_exempt(gallery), "identity.mode": "all"}, tmp_path)
    assert all(s.hidden and not s.visible for frame in result.seen for s in frame)
    assert not result.stats.identity_calls


def test_stranger_taking_over_a_registered_track_is_hidden_within_n_frames(takeover: Clip, gallery: Path, tmp_path: Path) -> None:
    result = _run(takeover, _exempt(gallery), tmp_path)
    first = result.actor(0)
    track = first[TAKEOVER_AT - 1].track
    assert first[TAKEOVER_AT - 1].identity == "registered:grace" and first[TAKEOVER_AT - 1].visible
    assert first[TAKEOVER_AT].track == track  # the stranger is inside the registered track
    leaked = [i for i, s in enumerate(first) if i >= TAKEOVER_AT and not s.hidden]
    assert len(leaked) <= TAKEOVER_N and all(i < TAKEOVER_AT + TAKEOVER_N for i in leaked), leaked
    assert not any(s.visible for s in first[TAKEOVER_AT + TAKEOVER_N:])
    events = [(r["event"], r.get("trigger")) for r in result.audit if r["track"] == track]
    assert ("revoked", "drift") in events or ("revoked", "jump") in events, events
    assert first[-1].identity == "unknown"


def test_take_over_is_bounded_by_the_periodic_recheck_when_cheap_checks_miss(takeover: Clip, gallery: Path, tmp_path: Path) -> None:
    every, grace_frames = 20, 5
    overrides = {**_exempt(gallery), "identity.jump": None, "identity.drift": None,
                 "identity.recheck_every": every, "identity.recheck_grace": grace_frames}
    result = _run(takeover, overrides, tmp_path)
    first = result.actor(0)
    leaked = [i for i, s in enumerate(first) if i >= TAKEOVER_AT and not s.hidden]
    assert leaked, "with the cheap checks off the swap is only caught by the periodic re-check"
    assert len(leaked) <= every + grace_frames and max(leaked) < TAKEOVER_AT + every + grace_frames
    assert all(s.hidden for s in first[TAKEOVER_AT + every + grace_frames:])
    assert any(r["event"] == "revoked" and r["trigger"] == "periodic" for r in result.audit)


def test_coasting_rows_of_a_decided_track_stay_shown_without_a_pending_recheck(four_people: Clip, gallery: Path, tmp_path: Path) -> None:
    blind = set(range(40, 46))  # the detector misses every face for 6 frames
    result = _run(four_people, _exempt(gallery), tmp_path, blind)
    grace = result.actor(0)
    assert all(s.coasting for s in grace[40:46])
    assert all(s.visible for s in grace[40:46])  # decided registered, no re-check pending
    for k in (1, 2, 3):
        assert not any(s.visible for s in result.actor(k)[40:46])
        assert all(s.hidden for s in result.actor(k))
    # re-acquired after 6 coasting frames: re-checked, confirmed in that very frame
    assert any(r["event"] == "confirmed" and r["trigger"] == "reacquire" and r["frame"] == 46 for r in result.audit)
    assert grace[46].visible


def test_coasting_rows_are_hidden_while_a_recheck_is_pending(four_people: Clip, gallery: Path, tmp_path: Path) -> None:
    overrides = {**_exempt(gallery), "identity.recheck_every": 12, "identity.recheck_grace": 0}
    blind = set(range(30, 42))
    result = _run(four_people, overrides, tmp_path, blind)
    grace = result.actor(0)
    track = grace[0].track
    due = [r["frame"] for r in result.audit if r["event"] == "recheck" and r["track"] == track and r["frame"] in blind]
    assert due, "a periodic re-check falls due while the detector is blind"
    assert all(grace[i].coasting and grace[i].visible for i in range(30, due[0]))
    assert all(grace[i].coasting and not grace[i].visible and grace[i].hidden for i in range(due[0], 42))
    assert grace[42].visible  # detected again: confirmed at once


class FrameReplayDetector:
    """The real detector's results replayed for the frame the test is on (the stride skips some)."""

    def __init__(self, detections: list[FaceDetections]) -> None:
        self.detections, self.frame, self.detected = detections, 0, set()

    def detect(self, image: Image) -> FaceDetections:
        self.detected.add(self.frame)
        d = self.detections[self.frame]
        assert d.landmarks is not None
        return FaceDetections(d.xyxy.copy(), d.score.copy(), d.landmarks.copy())


@pytest.mark.parametrize("mode", ["exempt", "target"])
def test_identity_samples_only_measured_detections_with_a_detector_stride(
    four_people: Clip, gallery: Path, tmp_path: Path, mode: str
) -> None:
    """``every_n: 2`` (cctv, webrtc): frames the detector skips carry predicted boxes; sampling them
    gives misaligned crops (a low score decides "unknown" = shown in target mode). Only measured rows are sampled."""
    cfg = load_config(None, {**_exempt(gallery), "identity.mode": mode, "detector.every_n": 2})
    stats = RunStats()
    resolver = create_identity(cfg.identity, stats)
    assert isinstance(resolver, TrackIdentityResolver)
    sampled: list[int] = []
    embed = resolver.embedder.embed

    def spy(crops: list[Image]) -> Any:
        sampled.append(replay.frame)
        return embed(crops)

    resolver.embedder.embed = spy  # type: ignore[method-assign]
    replay = FrameReplayDetector(four_people.detections)
    processor = FrameProcessor(replay, SortTracker(), resolver, create_anonymizer(AnonymizerConfig()),
                               every_n=2, stats=stats)
    seen = []
    for index, (image, truth) in enumerate(four_people.frames):
        replay.frame = index
        frame = Frame(image.copy(), index)
        dets = processor.process(frame)
        seen.append([_match(dets, box, verify.face_hidden(image, frame.image, box)) for box in truth])
    resolver.close()
    skipped = set(range(len(four_people.frames))) - replay.detected
    assert len(skipped) >= len(four_people.frames) // 3, "the stride skips frames"
    assert sampled, "identity sampled nothing"
    assert not set(sampled) & skipped, f"sampled on frames the detector skipped: {sorted(set(sampled) & skipped)}"
    grace = [frame[0] for frame in seen]
    strangers = [[frame[k] for frame in seen] for k in (1, 2, 3)]
    if mode == "exempt":
        assert grace[-1].identity == "registered:grace" and grace[-1].visible
        assert all(s.hidden for actor in strangers for s in actor)
    else:
        assert all(s.hidden and not s.visible for s in grace)
        assert all(actor[-1].identity == "unknown" and actor[-1].visible for actor in strangers)
