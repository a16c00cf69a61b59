"""aiortc video tracks that carry only anonymized frames.

- :class:`BroadcastHub` runs one pipeline thread (read the source, anonymize
  once) and fans every anonymized frame out to any number of
  :class:`BroadcastTrack` viewers; a slow viewer drops frames, it never delays
  the others.
- :class:`CameraTrack` anonymizes a browser's incoming camera track for one
  peer: the raw frames are only ever read, never forwarded.

Both tracks accept nothing but :class:`AnonymizedFrame`, which only
:func:`anonymize` makes: the frame went through the processor, or, when the
processor failed, was blurred whole (privacy fails closed).
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, Any, Protocol

import cv2
import numpy as np

from streamer.core.errors import FawnError, MissingExtraError
from streamer.core.redact import redact_text, redact_url
from streamer.core.types import FaceDetections, Frame, Image
from streamer.io.sources import is_live_spec
from streamer.runtime.processor import FrameProcessor
from streamer.stages.anonymize.filters import blur_frame

if TYPE_CHECKING:
    import av

try:
    from aiortc import MediaStreamTrack
    from aiortc.mediastreams import MediaStreamError
except ImportError:  # pragma: no cover - exercised only without the extra
    raise MissingExtraError("aiortc", "webrtc") from None

log = logging.getLogger(__name__)

VIDEO_CLOCK = 90_000
VIDEO_TIME_BASE = Fraction(1, VIDEO_CLOCK)


@dataclass(frozen=True)
class FrameSummary:
    """What the page shows about the last frame: faces, active tracks, registered people shown."""

    faces: int = 0
    tracks: int = 0
    visible_names: tuple[str, ...] = ()


@dataclass(frozen=True)
class AnonymizedFrame:
    """A frame whose faces are hidden. Make one only with :func:`anonymize`."""

    image: Image
    index: int
    t_source: float
    summary: FrameSummary


def registered_name(identity: str | None) -> str | None:
    if identity is not None and identity.startswith("registered:"):
        return identity.split(":", 1)[1]
    return None


def summarize(dets: FaceDetections) -> FrameSummary:
    assert dets.visible is not None and dets.identity is not None and dets.coasting is not None
    names = [registered_name(i) for i, shown in zip(dets.identity, dets.visible) if shown]
    return FrameSummary(
        faces=int((~dets.coasting).sum()),
        tracks=len(dets),
        visible_names=tuple(sorted(n for n in names if n)),
    )


def draw_labels(image: Image, dets: FaceDetections) -> None:
    """Write registered names above the faces shown un-anonymized (never on hidden faces)."""
    assert dets.visible is not None and dets.identity is not None
    scale = max(0.4, image.shape[0] / 900)
    for box, identity, shown in zip(dets.xyxy, dets.identity, dets.visible):
        name = registered_name(identity)
        if not shown or name is None:
            continue
        x, y = int(box[0]), max(int(box[1]) - 6, 12)
        cv2.putText(image, name, (x, y), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 3, cv2.LINE_AA)
        cv2.putText(image, name, (x, y), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)


def anonymize(
    processor: FrameProcessor, frame: Frame, labels: bool = False
) -> AnonymizedFrame:
    """Run the processor on ``frame`` (in place) and seal the result.

    The processor detects cuts itself (a detection is forced after a jump). Any
    failure blurs the whole frame: a frame that could not be anonymized is never
    sent as it came.
    """
    try:
        dets = processor.process(frame)
    except Exception:  # noqa: BLE001 - fail closed on anything, then keep streaming
        log.exception("anonymizing frame %d failed: sending it blurred whole", frame.index)
        blur_frame(frame.image)
        dets = FaceDetections.empty()
    if labels:
        draw_labels(frame.image, dets)
    processor.stats.frames_in += 1
    processor.stats.frame_done(frame.t_decoded)
    image = frame.image
    image.setflags(write=False)
    return AnonymizedFrame(image, frame.index, frame.t_decoded, summarize(dets))


def to_video_frame(item: AnonymizedFrame, pts: int, time_base: Fraction) -> av.VideoFrame:
    import av

    video = av.VideoFrame.from_ndarray(item.image, format="bgr24")
    video.pts = pts
    video.time_base = time_base
    return video


# ---------------------------------------------------------------------------------------------
# Frame stamps: a frame number drawn as black/white blocks, read back after encode/decode.
# Used to measure glass-to-glass latency and to map received frames to source frames.

STAMP_BITS = 16


def draw_stamp(image: Image, value: int, block: int = 8) -> None:
    """Draw ``value`` (16 bits) in the top-left corner: a row of bits above its complement."""
    for i in range(STAMP_BITS):
        bit = (value >> (STAMP_BITS - 1 - i)) & 1
        x = i * block
        image[0:block, x : x + block] = 255 if bit else 0
        image[block : 2 * block, x : x + block] = 0 if bit else 255


def read_stamp(image: Image, block: int = 8) -> int | None:
    """The stamped value, or None when the corner does not hold a clean stamp."""
    gray = image if image.ndim == 2 else cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_BGR2GRAY)
    lo, hi = block // 4, block - block // 4
    value = 0
    for i in range(STAMP_BITS):
        x = i * block
        top = float(gray[lo:hi, x + lo : x + hi].mean())
        bottom = float(gray[block + lo : block + hi, x + lo : x + hi].mean())
        if abs(top - bottom) < 80:
            return None
        value = (value << 1) | int(top > bottom)
    return value


# ---------------------------------------------------------------------------------------------
# Feeds: where the broadcast pipeline gets its frames.


class FrameFeed(Protocol):
    """A video source for :class:`BroadcastHub`. ``frames`` is one pass; files can be replayed."""

    live: bool
    fps: float

    def frames(self, stop: threading.Event) -> Iterator[Frame]: ...

    def close(self) -> None: ...


class IterFeed:
    """A feed from a callable that returns a fresh frame iterator (tests, benchmarks, generated clips)."""

    def __init__(self, make: Callable[[], Iterator[Frame]], live: bool, fps: float) -> None:
        self._make = make
        self.live = live
        self.fps = fps

    def frames(self, stop: threading.Event) -> Iterator[Frame]:
        for frame in self._make():
            if stop.is_set():
                return
            yield frame

    def close(self) -> None:
        return None


class SourceFeed:
    """A feed from :func:`streamer.io.sources.open_source` (file, ``rtsp://``, ``cam:N``, ``demo``).

    With ``open_now`` the source is opened at once, so a bad file fails before the
    server starts; otherwise (cameras) on the broadcast thread, which retries. A
    file is reopened to replay it. ``name`` is the spec without its password.
    """

    def __init__(self, spec: str, io: Any, open_now: bool = True) -> None:
        from streamer.io.sources import open_source

        self._open = open_source
        self._spec = spec
        self._io = io
        self.name = redact_url(spec)
        self.live: bool = is_live_spec(spec)
        self.fps: float = 30.0
        self.width = self.height = 0
        self._source: Any = None
        self._reader: Any = None
        if open_now:
            self._use(open_source(spec, io))

    def _use(self, source: Any) -> Any:
        info = source.info
        self.live = bool(info.live)
        self.fps = float(info.fps or 30.0)
        self.width, self.height = int(info.width), int(info.height)
        return source

    @property
    def dropped(self) -> int:
        """Frames the decode thread dropped because the pipeline was behind (live sources)."""
        return int(self._reader.dropped) if self._reader is not None else 0

    def frames(self, stop: threading.Event) -> Iterator[Frame]:
        from streamer.io.threads import FrameReader

        source = self._source if self._source is not None else self._use(self._open(self._spec, self._io))
        self._source = None
        reader = FrameReader(source, self._io.queue_size, drop_oldest=self.live)
        self._reader = reader
        reader.start()
        try:
            yield from _reader_frames(reader, stop)
        finally:
            reader.stop()  # closes the source

    def close(self) -> None:
        if self._source is not None:
            self._source.close()
            self._source = None


def _reader_frames(reader: Any, stop: threading.Event) -> Iterator[Frame]:
    import av

    while not stop.is_set():
        try:
            item = reader.get(timeout=0.5)
        except queue.Empty:  # a stalled live source: look at ``stop`` again
            continue
        if item is None:
            return
        if isinstance(item, av.Packet):
            continue  # audio is not previewed
        yield item


# ---------------------------------------------------------------------------------------------
# Broadcast: one pipeline, many viewers.


class BroadcastHub:
    """Reads a feed on one thread, anonymizes each frame once and fans it out to viewer tracks.

    Files are paced at their frame rate and replayed when they end; live sources
    come paced already. A live source that cannot be reached or is lost ends the
    broadcast, unless ``retry_every`` is set: then the hub keeps reopening it
    (``state`` ``retrying``, ``error`` says why, password redacted) while the
    server and the other streams go on.

    ``state``: ``starting`` (not opened yet), ``running``, ``retrying``, ``failed`` or ``ended``.
    """

    def __init__(
        self,
        feed: FrameFeed,
        processor: FrameProcessor,
        labels: Callable[[], bool] = lambda: False,
        replay: bool = True,
        retry_every: float | None = None,
        name: str = "source",
    ) -> None:
        self.feed = feed
        self.processor = processor
        self.labels = labels
        self.replay = replay and not feed.live
        self.retry_every = retry_every
        self.name = name
        self.summary = FrameSummary()
        self.error: str | None = None
        self.ended = False
        self.state = "running" if retry_every is None else "starting"  # a camera: until its first frame
        self.retries = 0
        self._tracks: set[BroadcastTrack] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.t0 = time.monotonic()

    @property
    def viewers(self) -> int:
        return len(self._tracks)

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._thread = threading.Thread(target=self._run, name="fawn-broadcast", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("broadcast thread did not stop within %.0fs", timeout)
        self.feed.close()  # viewers get the end-of-stream sentinel from the thread's exit

    def subscribe(self) -> BroadcastTrack:
        track = BroadcastTrack(self)
        self._tracks.add(track)
        if self.ended:
            track.push(None)
        return track

    def unsubscribe(self, track: BroadcastTrack) -> None:
        self._tracks.discard(track)

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                try:
                    self._play_once()
                except FawnError as exc:
                    if self.retry_every is None:
                        raise
                    self._retry_later(redact_text(str(exc)))
                    continue
                if self.retry_every is not None and not self._stop.is_set():
                    self._retry_later("the source ended")  # a camera does not end: reconnect
                    continue
                if not self.replay:
                    break
                self.processor.reset()  # the replay jumps: no stale track may cover it
            self.state = "ended"
        except FawnError as exc:
            self._fail(redact_text(str(exc)))
        except Exception as exc:  # noqa: BLE001 - report, end the stream, keep the server up
            self._fail(redact_text(f"{type(exc).__name__}: {exc}"), trace=True)
        finally:
            self.ended = True
            self._emit(None)

    def _fail(self, message: str, trace: bool = False) -> None:
        self.state, self.error = "failed", message
        if trace:
            log.exception("%s: broadcast pipeline failed: %s", self.name, message)
        else:
            log.error("%s: broadcast source failed: %s", self.name, message)

    def _retry_later(self, message: str) -> None:
        """Record why the source is away and wait ``retry_every`` seconds (or until stopped)."""
        changed = message != self.error
        self.state, self.error = "retrying", message
        self.retries += 1
        self.processor.reset()  # what comes back is a new scene: no stale track may cover it
        level = logging.WARNING if changed or self.retries % 60 == 0 else logging.DEBUG  # no log flood
        log.log(level, "%s: %s; retrying every %.1fs (try %d; the other streams keep running)",
                self.name, message, self.retry_every or 0.0, self.retries)
        self._stop.wait(self.retry_every)

    def _play_once(self) -> None:
        start, first = time.monotonic(), None
        for frame in self.feed.frames(self._stop):
            if self.state != "running":
                self.state, self.error = "running", None
                if self.retries:
                    log.info("%s: the source is back after %d retries", self.name, self.retries)
            if not self.feed.live:  # a file is decoded ahead: it is "captured" when its time comes
                first = frame.index if first is None else first
                start = self._pace(start, (frame.index - first) / max(self.feed.fps, 1e-3))
                frame.t_decoded = time.monotonic()
            elif not frame.t_decoded:
                frame.t_decoded = time.monotonic()
            item = anonymize(self.processor, frame, self.labels())
            self.summary = item.summary
            self.processor.stats.dropped = int(getattr(self.feed, "dropped", 0))
            self._emit(item)

    def _pace(self, start: float, offset: float) -> float:
        """Sleep until ``start + offset``; restart the clock when far behind (no bursts)."""
        delay = start + offset - time.monotonic()
        if delay > 0:
            self._stop.wait(delay)
        elif delay < -1.0:
            return time.monotonic() - offset
        return start

    def _emit(self, item: AnonymizedFrame | None) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            loop.call_soon_threadsafe(self._publish, item)
        except RuntimeError:  # the loop closed in between
            pass

    def _publish(self, item: AnonymizedFrame | None) -> None:
        for track in list(self._tracks):
            track.push(item)


class _Latest:
    """A one-slot mailbox: a new item replaces an unread one (a slow reader drops frames)."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=1)
        self.dropped = 0

    def put(self, item: Any) -> None:
        if self._queue.full():
            self._queue.get_nowait()
            self.dropped += 1
        self._queue.put_nowait(item)

    async def get(self) -> Any:
        return await self._queue.get()


class BroadcastTrack(MediaStreamTrack):
    """One viewer of a :class:`BroadcastHub`. Timestamps follow the source clock."""

    kind = "video"

    def __init__(self, hub: BroadcastHub) -> None:
        super().__init__()
        self._hub = hub
        self._mailbox = _Latest()
        self._last_pts = -1

    def push(self, item: AnonymizedFrame | None) -> None:
        self._mailbox.put(item)

    async def recv(self) -> av.VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        item: AnonymizedFrame | None = await self._mailbox.get()
        if item is None:
            self.stop()
            raise MediaStreamError
        pts = max(int((item.t_source - self._hub.t0) * VIDEO_CLOCK), self._last_pts + 1)
        self._last_pts = pts
        return to_video_frame(item, pts, VIDEO_TIME_BASE)

    def stop(self) -> None:
        super().stop()
        self._hub.unsubscribe(self)


# ---------------------------------------------------------------------------------------------
# Camera: a browser's webcam in, anonymized, back out.


class CameraTrack(MediaStreamTrack):
    """Anonymizes an incoming track for one peer. Only :func:`anonymize` output leaves ``recv``.

    A pump task keeps only the newest incoming frame, so latency stays bounded
    when anonymizing is slower than the camera.
    """

    kind = "video"

    def __init__(
        self, source: MediaStreamTrack, processor: FrameProcessor, labels: Callable[[], bool] = lambda: False
    ) -> None:
        super().__init__()
        self.source = source
        self.processor = processor
        self.labels = labels
        self.summary = FrameSummary()
        self._mailbox = _Latest()
        self._pump: asyncio.Task[None] | None = None
        self._index = 0

    async def recv(self) -> av.VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._pump is None:
            self._pump = asyncio.ensure_future(self._pump_frames())
        received: tuple[av.VideoFrame, float] | None = await self._mailbox.get()
        if received is None:
            self.stop()
            raise MediaStreamError
        raw = received[0]
        item = await asyncio.get_running_loop().run_in_executor(None, self._anonymize, *received)
        self.summary = item.summary
        self.processor.stats.dropped = self._mailbox.dropped
        return to_video_frame(item, raw.pts if raw.pts is not None else 0, raw.time_base or VIDEO_TIME_BASE)

    def _anonymize(self, raw: av.VideoFrame, t_received: float) -> AnonymizedFrame:
        image = raw.to_ndarray(format="bgr24")
        frame = Frame(image, self._index, raw.pts, raw.time_base, t_decoded=t_received)
        self._index += 1
        return anonymize(self.processor, frame, self.labels())

    async def _pump_frames(self) -> None:
        try:
            while True:
                raw = await self.source.recv()
                self._mailbox.put((raw, time.monotonic()))
        except MediaStreamError:
            self._mailbox.put(None)
        except asyncio.CancelledError:
            raise

    def stop(self) -> None:
        super().stop()
        if self._pump is not None:
            self._pump.cancel()
