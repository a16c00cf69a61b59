"""Identity stage: ``IdentityResolver.resolve(image, dets) -> FaceDetections``.

It sets ``identity`` per row (``"pending"``, ``"registered:<name>"`` or
``"unknown"``) and marks rows ``visible`` only for decided tracks the mode
allows to be shown. Without a gallery nothing is visible: every face is
anonymized. :func:`create_identity` picks the resolver for a config.

:class:`TrackIdentityResolver`, the policy (fail closed throughout):

- A track starts ``pending`` (anonymized in every mode). While pending, good
  samples (not coasting, face side >= ``min_face``, sharp, frontal, plausible
  landmarks; at least ``sample_gap`` frames apart) are embedded and matched
  against the gallery. A sample's label is the best person when its cosine
  similarity reaches the threshold, else "no one". When the last ``samples``
  (K) labels agree the track is decided ``registered:<name>`` or ``unknown``.
  After ``max_samples`` samples without agreement the track stays pending and
  stops sampling for ``recheck_every`` frames (it stays anonymized).
- The decision is cached for the track's life: a stable track costs K
  embeddings plus one every ``recheck_every`` frames.
- Re-checks of shown tracks. Each frame, the detected (non-coasting) row of a
  track whose decision the mode shows is compared with the track's
  reference: a box jump (centre moved by more than ``jump`` of the box size,
  or size changed by more than that factor), an appearance drift (a cheap
  colour-histogram + grey-thumbnail distance above ``drift``), a
  re-acquisition after ``reacquire_after`` or more coasting frames, each
  starts a re-check and the row is anonymized in that very frame. The next
  good sample (the same frame when it is good) confirms the decision (shown
  again, reference refreshed) or revokes it (the track is pending again, with
  that sample as its first). A track re-born after a long occlusion gets a
  new id from the tracker, so it starts pending.
- The periodic re-check: every decided track is re-embedded once it has gone
  ``recheck_every`` frames without verification. A shown track stays shown
  for at most ``recheck_grace`` more frames while waiting for a good sample,
  then is anonymized until one confirms it. Tracks the mode hides anyway
  (``unknown`` in exempt mode, registered in target mode) get only this
  periodic re-check: a change there can only un-hide someone later, never
  leak, so it is not worth an embedding per occlusion.
- Take-over bound: a stranger who takes over a shown track is anonymized in
  the frame a cheap check fires (0 frames); if every cheap check misses, at
  most ``recheck_every + recheck_grace`` frames after the track's last
  verification (100 frames with the defaults).
- Coasting rows (the detector missed the face; the box is predicted): shown
  only when the track is decided visible for the mode *and* no re-check is
  pending (a soft periodic re-check within its grace counts as none). They
  are never sampled and never drift-checked (their landmarks are predicted).
  Nor are the rows of a frame the detector skipped (``detector.every_n`` > 1)
  or failed on: ``resolve(..., measured=False)``; only measured detections
  are sampled.
- While a re-check is pending, ``identity`` still reports the cached decision
  but ``visible`` is False.
- Scores (audit log): cosine similarities; for ``registered:<name>`` the
  lowest of the K agreeing samples, for ``unknown`` the highest (how close the
  nearest registered person came).

Modes: ``exempt`` shows ``registered:*`` tracks; ``target`` shows ``unknown``
tracks only (registered and pending stay anonymized); ``all`` shows nothing.
Frame numbers in the audit log count ``resolve`` calls from 0.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TextIO

import numpy as np

from streamer.core.config import IdentityConfig
from streamer.core.errors import ConfigError, GalleryError
from streamer.core.stats import RunStats
from streamer.core.types import FaceDetections, FloatArray, Image
from streamer.stages.identity.align import appearance_distance, appearance_signature, face_quality
from streamer.stages.identity.embed import Embedder, create_embedder
from streamer.stages.identity.gallery import Gallery

log = logging.getLogger(__name__)

PENDING = "pending"
UNKNOWN = "unknown"
REGISTERED = "registered:"
Signature = tuple[FloatArray, FloatArray]


class IdentityResolver(Protocol):
    """``measured``: False on a frame the detector skipped or failed (every box is predicted)."""

    def resolve(self, image: Image, dets: FaceDetections, measured: bool = True) -> FaceDetections: ...


class AnonymizeEveryone:
    """No gallery (or mode ``all``): no face is ever visible."""

    def resolve(self, image: Image, dets: FaceDetections, measured: bool = True) -> FaceDetections:
        dets.visible = np.zeros(len(dets), dtype=bool)
        return dets

    def close(self) -> None:
        """Nothing to flush."""


class AuditLog:
    """Append-only JSONL of identity decisions (mode 0600). Never embeddings or crops."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        except OSError as exc:
            raise ConfigError(f"identity.audit: cannot open {self.path}: {exc.strerror or exc}") from exc
        try:  # an existing log keeps its mode on open: make it private too
            os.fchmod(fd, 0o600)
        except OSError as exc:
            os.close(fd)
            raise ConfigError(f"identity.audit: cannot make {self.path} private (chmod 600): {exc.strerror or exc}") from exc
        self._file: TextIO | None = os.fdopen(fd, "a", buffering=1, encoding="utf-8")

    def write(self, record: dict[str, Any]) -> None:
        if self._file is not None:
            self._file.write(json.dumps({"time": round(time.time(), 3), **record}) + "\n")

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


@dataclass
class _Sample:
    frame: int
    label: str | None  # the matched person, or None (no one above the threshold)
    score: float


@dataclass
class _Track:
    track_id: int
    first_frame: int
    last_frame: int
    decision: str = PENDING
    score: float = float("nan")
    window: list[_Sample] = field(default_factory=list)
    samples: int = 0  # embeddings over the track's life
    last_sample: int = -(10**9)
    held_until: int = -1  # undecided: no sampling before this frame
    recheck: str | None = None  # trigger of the pending re-check
    recheck_since: int = 0
    verified: int = 0  # frame of the last decision or confirmation
    reference: Signature | None = None
    last_box: FloatArray | None = None
    coast_run: int = 0

    @property
    def decided(self) -> bool:
        return self.decision != PENDING

    @property
    def label(self) -> str | None:
        return self.decision[len(REGISTERED):] if self.decision.startswith(REGISTERED) else None


@dataclass
class _Row:
    """One row of the current frame that is owed a sample."""

    index: int
    track: _Track
    crop: Image


class TrackIdentityResolver:
    """Per-track, cached, fail-closed identity decisions (see the module docstring)."""

    def __init__(
        self,
        embedder: Embedder,
        gallery: Gallery,
        cfg: IdentityConfig,
        stats: RunStats | None = None,
        audit: AuditLog | None = None,
    ) -> None:
        gallery.check_model(embedder.model_id, cfg.gallery or "the gallery")
        self.embedder = embedder
        self.gallery = gallery
        self.cfg = cfg
        self.stats = stats
        self.audit = audit
        self.threshold = cfg.threshold if cfg.threshold is not None else embedder.default_threshold
        self._tracks: dict[int, _Track] = {}
        self._frame = 0

    # -- the stage ---------------------------------------------------------
    def resolve(self, image: Image, dets: FaceDetections, measured: bool = True) -> FaceDetections:
        """``measured`` False (the detector skipped or failed this frame): every box is a
        prediction, so nothing is sampled or drift-checked (a misaligned crop scores low, and
        in target mode a low score would decide "unknown" = shown)."""
        frame = self._frame
        self._frame += 1
        assert dets.track_id is not None and dets.coasting is not None
        tracks = [self._observe(image, dets, i, frame, measured) for i in range(len(dets))]
        if measured:
            self._sample(image, dets, tracks, frame)
        dets.identity = [t.decision if t else PENDING for t in tracks]
        dets.visible = np.array([self._visible(t, frame) for t in tracks], bool)
        self._end_missing({t.track_id for t in tracks if t}, frame)
        return dets

    def close(self) -> None:
        """End every live track in the audit log and close it."""
        self._end_missing(set(), self._frame)
        if self.audit is not None:
            self.audit.close()

    # -- per-frame bookkeeping and re-check triggers ------------------------
    def _observe(self, image: Image, dets: FaceDetections, i: int, frame: int, measured: bool = True) -> _Track | None:
        assert dets.track_id is not None and dets.coasting is not None
        tid = int(dets.track_id[i])
        if tid < 0:
            return None
        track = self._tracks.get(tid)
        if track is None:
            track = self._tracks[tid] = _Track(tid, frame, frame)
        track.last_frame = frame
        box = dets.xyxy[i]
        if dets.coasting[i]:
            track.coast_run += 1
        elif measured:
            self._check_detected(track, image, dets, i, frame)
            track.coast_run = 0
        if track.decided and track.recheck is None and frame - track.verified >= self.cfg.recheck_every:
            self._trigger(track, "periodic", frame)
        track.last_box = box.copy()
        return track

    def _check_detected(self, track: _Track, image: Image, dets: FaceDetections, i: int, frame: int) -> None:
        jumped = track.last_box is not None and self.cfg.jump is not None and _jumped(track.last_box, dets.xyxy[i], self.cfg.jump)
        if not track.decided:
            if jumped:  # earlier samples may show someone else
                track.window.clear()
            return
        if not self._shown_decision(track):  # hidden either way: only the periodic re-check applies
            return
        if track.coast_run >= self.cfg.reacquire_after:
            self._trigger(track, "reacquire", frame)
        if jumped:
            self._trigger(track, "jump", frame)
        if self.cfg.drift is not None and dets.landmarks is not None and track.reference is not None and track.recheck in (None, "periodic"):
            drift = appearance_distance(track.reference, appearance_signature(image, dets.landmarks[i]))
            if drift > self.cfg.drift:
                self._trigger(track, "drift", frame)

    def _trigger(self, track: _Track, reason: str, frame: int) -> None:
        if track.recheck is not None and track.recheck != "periodic":
            return
        track.recheck, track.recheck_since = reason, frame
        log.debug("track %d: re-check (%s) at frame %d", track.track_id, reason, frame)
        self._audit({"event": "recheck", "track": track.track_id, "trigger": reason, "frame": frame})

    # -- sampling -----------------------------------------------------------
    def _owed_sample(self, track: _Track, coasting: bool, frame: int) -> bool:
        if coasting:
            return False
        if track.decided:
            return track.recheck is not None
        return frame >= track.held_until and frame - track.last_sample >= self.cfg.sample_gap

    def _sample(self, image: Image, dets: FaceDetections, tracks: list[_Track | None], frame: int) -> None:
        assert dets.coasting is not None
        if dets.landmarks is None:
            return
        rows = []
        for i, track in enumerate(tracks):
            if track is None or not self._owed_sample(track, bool(dets.coasting[i]), frame):
                continue
            crop = self.embedder.align(image, dets.landmarks[i])
            quality = face_quality(dets.xyxy[i], dets.landmarks[i], crop, self.embedder.template)
            if quality.good(self.cfg.min_face, self.cfg.min_sharpness, self.cfg.min_frontal):
                rows.append(_Row(i, track, crop))
        if not rows:
            return
        names, scores = self.gallery.match(self.embedder.embed([r.crop for r in rows]))
        for row, name, score in zip(rows, names, scores):
            label = name if float(score) >= self.threshold else None
            self._count_call(row.track)
            signature = appearance_signature(image, dets.landmarks[row.index])
            self._take(row.track, _Sample(frame, label, float(score)), signature)

    def _count_call(self, track: _Track) -> None:
        track.samples += 1
        if self.stats is not None:
            self.stats.identity_calls[track.track_id] += 1

    def _take(self, track: _Track, sample: _Sample, signature: Signature) -> None:
        track.last_sample = sample.frame
        if track.decided:
            if sample.label == track.label:
                self._confirm(track, sample, signature)
                return
            self._revoke(track, sample)
        track.window.append(sample)
        self._try_decide(track, signature)

    # -- decisions ------------------------------------------------------------
    def _try_decide(self, track: _Track, signature: Signature) -> None:
        k = self.cfg.samples
        recent = track.window[-k:]
        if len(recent) == k and len({s.label for s in recent}) == 1:
            label = recent[0].label
            track.decision = UNKNOWN if label is None else REGISTERED + label
            track.score = min(s.score for s in recent) if label is not None else max(s.score for s in recent)
            track.verified, track.reference, track.window = recent[-1].frame, signature, []
            log.info("track %d: %s (score %.3f, %d samples)", track.track_id, track.decision, track.score, track.samples)
            self._count_decision(track.decision.split(":", 1)[0])
            self._audit(self._record("decision", track, recent[-1].frame))
        elif len(track.window) >= self.cfg.max_samples:
            frame = track.window[-1].frame
            track.held_until, track.window = frame + self.cfg.recheck_every, []
            self._audit({**self._record("undecided", track, frame), "decision": PENDING})

    def _confirm(self, track: _Track, sample: _Sample, signature: Signature) -> None:
        self._audit({**self._record("confirmed", track, sample.frame), "trigger": track.recheck, "sample_score": round(sample.score, 4)})
        track.recheck, track.verified, track.reference = None, sample.frame, signature

    def _revoke(self, track: _Track, sample: _Sample) -> None:
        log.info("track %d: %s revoked after a %s re-check", track.track_id, track.decision, track.recheck)
        self._audit({**self._record("revoked", track, sample.frame), "trigger": track.recheck, "sample_score": round(sample.score, 4)})
        track.decision, track.score, track.recheck, track.reference = PENDING, float("nan"), None, None
        track.window = []
        self._count_decision("revoked")

    def _count_decision(self, kind: str) -> None:
        if self.stats is not None:
            self.stats.identity_decisions[kind] += 1

    # -- visibility ----------------------------------------------------------
    def _shown_decision(self, track: _Track) -> bool:
        mode = self.cfg.mode
        if mode == "exempt":
            return track.decision.startswith(REGISTERED)
        if mode == "target":
            return track.decision == UNKNOWN
        return False

    def _visible(self, track: _Track | None, frame: int) -> bool:
        """Coasting rows follow the same rule: shown only for a decided track with no re-check pending."""
        if track is None or not self._shown_decision(track):
            return False
        if track.recheck is None:
            return True
        soft = track.recheck == "periodic" and frame - track.recheck_since < self.cfg.recheck_grace
        return soft

    # -- track ends and the audit log ----------------------------------------
    def _end_missing(self, alive: set[int], frame: int) -> None:
        for tid in [t for t in self._tracks if t not in alive]:
            track = self._tracks.pop(tid)
            self._audit({**self._record("end", track, track.last_frame), "identity_calls": track.samples})

    def _record(self, event: str, track: _Track, frame: int) -> dict[str, Any]:
        score = None if np.isnan(track.score) else round(track.score, 4)
        return {
            "event": event,
            "track": track.track_id,
            "decision": track.decision,
            "score": score,
            "samples": track.samples,
            "first_frame": track.first_frame,
            "frame": frame,
        }

    def _audit(self, record: dict[str, Any]) -> None:
        if self.audit is not None:
            self.audit.write(record)


def _jumped(previous: FloatArray, box: FloatArray, limit: float) -> bool:
    """Centre moved by more than ``limit`` of the box size, or the size changed by more than ``1 + limit``."""
    pw, ph = max(float(previous[2] - previous[0]), 1.0), max(float(previous[3] - previous[1]), 1.0)
    w, h = max(float(box[2] - box[0]), 1.0), max(float(box[3] - box[1]), 1.0)
    shift = np.hypot((box[0] + box[2] - previous[0] - previous[2]) / 2, (box[1] + box[3] - previous[1] - previous[3]) / 2)
    grow = max(w / pw, pw / w, h / ph, ph / h)
    return bool(shift > limit * max(pw, ph) or grow > 1.0 + limit)


def create_identity(
    cfg: IdentityConfig, stats: RunStats | None = None, embedder: Embedder | None = None
) -> IdentityResolver:
    """Factory: anonymize everyone without a gallery (or in mode ``all``), else per-track decisions.

    ``embedder``: a model session to share (several streams); None loads the one ``cfg`` names.
    """
    if cfg.gallery is None:
        if cfg.mode == "target":
            raise ConfigError("identity.mode target anonymizes registered people only: it needs identity.gallery (--gallery)")
        return AnonymizeEveryone()
    if cfg.mode == "all":
        log.info("identity.mode all: every face is anonymized, the gallery is not used")
        return AnonymizeEveryone()
    gallery = Gallery.load(cfg.gallery)
    if not len(gallery):
        raise GalleryError(f"gallery {cfg.gallery} has no registered people")
    embedder = embedder if embedder is not None else create_embedder(cfg)
    audit = AuditLog(cfg.audit) if cfg.audit else None
    return TrackIdentityResolver(embedder, gallery, cfg, stats, audit)
