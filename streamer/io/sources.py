"""Video sources: files, RTSP cameras/servers, V4L2 webcams and the built-in demo clip.

:func:`open_source` turns a source spec into a :class:`Source`. Opening checks the
input up front (it decodes the first frame), so a bad input fails with a one-line
:class:`~streamer.core.errors.SourceError` before any thread starts, and never hangs:
network and device opens are bounded by ``IOConfig.open_timeout``.

Live sources (RTSP, webcams) reconnect with exponential backoff when the stream
drops; frame indices keep counting and timestamps stay monotonic across
reconnects. Files yield their audio packets (untouched, demux order) between
the video frames so a sink can pass the audio through.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Protocol

import av
import av.error

from streamer.core.config import IOConfig
from streamer.core.errors import SourceError, SourceLostError
from streamer.core.media import RTSP_SCHEMES
from streamer.core.redact import redact_url
from streamer.core.types import Frame, StreamInfo

log = logging.getLogger(__name__)

Item = Frame | av.Packet

# errors that mean "this URL will never work": do not spend the reconnect budget on them
_PERMANENT_RTSP_ERRORS: tuple[type[BaseException], ...] = (
    av.error.HTTPBadRequestError,
    av.error.HTTPUnauthorizedError,
    av.error.HTTPForbiddenError,
    av.error.HTTPNotFoundError,
    av.error.ProtocolNotFoundError,
)


class Source(Protocol):
    """A stream of decoded frames (and, for files, audio packets)."""

    info: StreamInfo

    def read(self) -> Iterator[Item]: ...

    def close(self) -> None: ...


def is_live_spec(spec: str) -> bool:
    """An RTSP camera or a webcam: a source that may be unreachable for a while and come back."""
    return spec.lower().startswith(RTSP_SCHEMES) or spec.startswith("cam:")


def open_source(spec: str, io: IOConfig) -> Source:
    """Open ``spec``: a file path, a folder of images (one sequence), ``rtsp://…``/``rtsps://…``, ``cam:N``, ``demo`` or
    ``demo-live[:WxH][@FPS]`` (the demo clip as an endless live camera)."""
    if spec == "demo":
        return DemoSource()
    if spec.startswith("demo-live"):
        return DemoLiveSource(*parse_demo_live(spec))
    if spec.lower().startswith(RTSP_SCHEMES):
        return LiveSource(_RtspConnector(spec, io), io)
    if spec.startswith("cam:"):
        return LiveSource(_CameraConnector(spec, io), io)
    from streamer.io import imageseq

    if imageseq.is_sequence(spec):
        return imageseq.ImageSequenceSource(spec, io)
    return FileSource(spec, io)


# ---------------------------------------------------------------- helpers


def error_reason(exc: BaseException) -> str:
    """A short reason: FFmpeg's own words without errno and URL, else the first line of the message."""
    if isinstance(exc, av.error.FFmpegError) and exc.strerror:
        return str(exc.strerror)
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


def _to_frame(frame: av.VideoFrame, index: int, pts: int | None, time_base: Fraction | None) -> Frame:
    image = frame.to_ndarray(format="bgr24")
    return Frame(image=image, index=index, pts=pts, time_base=time_base, t_decoded=time.monotonic())


def _fps(stream: av.video.stream.VideoStream, default: float = 30.0) -> float:
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    value = float(rate) if rate else 0.0
    return value if 0.0 < value < 1000.0 else default


def _video_stream(
    container: av.container.InputContainer, name: str, live: bool = False
) -> av.video.stream.VideoStream:
    if not container.streams.video:
        kinds = ", ".join(sorted({s.type for s in container.streams})) or "none"
        raise SourceError(f"no video stream in {name} (streams found: {kinds})")
    stream = container.streams.video[0]
    if stream.codec_context is None:
        raise SourceError(f"unsupported video codec in {name}: FFmpeg has no decoder for it")
    # frame threading delays every frame by a frame per thread: live streams use slice threads only
    stream.thread_type = "SLICE" if live else "AUTO"
    return stream


def _decode(packet: av.Packet, name: str) -> list[av.VideoFrame]:
    """Decode one packet; a corrupt packet is skipped (logged), not fatal."""
    try:
        return list(packet.decode())
    except av.error.InvalidDataError as exc:
        log.debug("%s: skipped an undecodable packet: %s", name, error_reason(exc))
        return []


# ---------------------------------------------------------------- files


class FileSource:
    """A video file (any container/codec FFmpeg decodes). Frames keep their own pts (VFR-safe)."""

    def __init__(self, path: str, io: IOConfig) -> None:
        self.path = Path(path)
        self._check_path()
        self._container = self._open(io.open_timeout)
        try:
            self._video = _video_stream(self._container, str(self.path))
            audio = self._container.streams.audio[0] if self._container.streams.audio else None
            self._items = self._demux(audio)
            self._pending = self._prime()
        except BaseException:
            self._container.close()
            raise
        first = next(item for item in self._pending if isinstance(item, Frame))
        self.info = StreamInfo(
            name=str(self.path),
            width=first.width,
            height=first.height,
            fps=_fps(self._video),
            time_base=self._video.time_base or Fraction(1, 90000),
            live=False,
            audio=audio,
            frames=self._video.frames or None,
        )
        self._closed = False

    def _check_path(self) -> None:
        if not self.path.exists():
            raise SourceError(f"input file not found: {self.path}")
        if self.path.is_dir():
            raise SourceError(f"input is a directory, not a video file: {self.path}")
        if self.path.stat().st_size == 0:
            raise SourceError(f"input file is empty (0 bytes): {self.path}")

    def _open(self, timeout: float) -> av.container.InputContainer:
        try:
            return av.open(str(self.path), timeout=timeout)
        except PermissionError:
            raise SourceError(f"input file is not readable (permission denied): {self.path}") from None
        except (av.error.FFmpegError, OSError, ValueError) as exc:
            raise SourceError(f"not a readable video file: {self.path} ({error_reason(exc)})") from None

    def _prime(self) -> list[Item]:
        """Decode up to the first frame now, so an undecodable file fails in open_source."""
        pending: list[Item] = []
        try:
            for item in self._items:
                pending.append(item)
                if isinstance(item, Frame):
                    return pending
        except av.error.FFmpegError as exc:
            raise SourceError(f"cannot decode {self.path}: {error_reason(exc)}") from None
        codec = self._video.codec_context.name
        raise SourceError(f"no decodable video frame in {self.path} (codec {codec}; truncated or corrupt?)")

    def _demux(self, audio: av.audio.stream.AudioStream | None) -> Iterator[Item]:
        streams = [self._video] if audio is None else [self._video, audio]
        index = 0
        for packet in self._container.demux(streams):
            if packet.stream is audio:
                if packet.dts is not None:
                    yield packet
                continue
            for frame in _decode(packet, str(self.path)):
                yield _to_frame(frame, index, frame.pts, frame.time_base)
                index += 1

    def read(self) -> Iterator[Item]:
        """Yield frames and audio packets in demux order until the end of the file."""
        while self._pending:
            yield self._pending.pop(0)
        try:
            yield from self._items
        except av.error.FFmpegError as exc:
            raise SourceError(f"error while reading {self.path}: {error_reason(exc)}") from None

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._container.close()


# ---------------------------------------------------------------- demo


class DemoSource:
    """The built-in clip of real face photos (:mod:`streamer.io.demo`), rendered on the fly."""

    def __init__(self) -> None:
        from streamer.io import demo

        self._spec = demo.demo_spec()
        self._render = demo.render
        self.info = StreamInfo(
            name="demo",
            width=self._spec.width,
            height=self._spec.height,
            fps=float(self._spec.fps),
            time_base=Fraction(1, self._spec.fps),
            live=False,
            frames=self._spec.n_frames,
        )
        self._closed = False

    def read(self) -> Iterator[Item]:
        for index, (image, _boxes) in enumerate(self._render(self._spec)):
            if self._closed:
                return
            yield Frame(image, index, pts=index, time_base=self.info.time_base, t_decoded=time.monotonic())

    def close(self) -> None:
        self._closed = True


def parse_demo_live(spec: str) -> tuple[int, int, float]:
    """``demo-live[:WxH][@FPS]`` -> (width, height, fps); defaults 640x480 at 30 fps."""
    bad = SourceError(f"bad source '{spec}': expected demo-live[:WIDTHxHEIGHT][@FPS], e.g. demo-live:1280x720@15")
    rest = spec.removeprefix("demo-live")
    size, _, rate = rest.lstrip(":").partition("@")
    try:
        width, height = (int(v) for v in size.lower().split("x")) if size else (640, 480)
        fps = float(rate) if rate else 30.0
    except ValueError:
        raise bad from None
    if not (32 <= width <= 7680 and 32 <= height <= 4320 and 1 <= fps <= 240) or (rest and rest[0] not in ":@"):
        raise bad
    return width, height, fps


_DEMO_LOCK = threading.Lock()  # several demo-live streams of one size encode their loop once


def _demo_loop(width: int, height: int, fps: int) -> tuple[bytes, ...]:
    with _DEMO_LOCK:
        return _encode_demo_loop(width, height, fps)


@functools.lru_cache(maxsize=4)
def _encode_demo_loop(width: int, height: int, fps: int) -> tuple[bytes, ...]:
    """3 s of the demo clip as H.264 packets (a keyframe a second), decoded live like a camera stream."""
    from streamer.io import demo

    codec = av.CodecContext.create("libx264", "w")
    codec.width, codec.height, codec.pix_fmt = width, height, "yuv420p"
    codec.time_base, codec.framerate, codec.gop_size = Fraction(1, fps), Fraction(fps), fps
    codec.options = {"preset": "veryfast", "crf": "23", "bframes": "0"}
    packets: list[bytes] = []
    for i, (image, _) in enumerate(demo.render(demo.demo_spec(width, height, seconds=3.0, fps=fps))):
        frame = av.VideoFrame.from_ndarray(image, format="bgr24")
        frame.pts = i
        packets += [bytes(p) for p in codec.encode(frame)]
    packets += [bytes(p) for p in codec.encode(None)]
    return tuple(packets)


class DemoLiveSource:
    """The demo clip's real faces as an endless live H.264 camera at ``fps`` (smoke tests, benchmarks).

    Packets are decoded as they come, on the wall clock whether or not anyone
    keeps up, like a camera: a slow pipeline drops frames (live), it does not
    slow the source down.
    """

    def __init__(self, width: int = 640, height: int = 480, fps: float = 30.0) -> None:
        self._packets = _demo_loop(width, height, max(1, round(fps)))
        self.info = StreamInfo(f"demo-live:{width}x{height}@{fps:g}", width, height, fps, Fraction(1, 90000),
                               live=True)
        self._closed = False

    def read(self) -> Iterator[Item]:
        decoder = av.CodecContext.create("h264", "r")
        decoder.thread_type = "SLICE"
        start, step = time.monotonic(), 1.0 / self.info.fps
        sent = index = 0
        while not self._closed:
            time.sleep(max(0.0, start + sent * step - time.monotonic()))
            for frame in decoder.decode(av.Packet(self._packets[sent % len(self._packets)])):
                yield _to_frame(frame, index, round(index * step * 90000), self.info.time_base)
                index += 1
            sent += 1

    def close(self) -> None:
        self._closed = True


# ---------------------------------------------------------------- live sources


class _Connector(Protocol):
    """Opens one connection of a live source. ``permanent`` errors are not retried."""

    name: str
    permanent: tuple[type[BaseException], ...]

    def connect(self) -> av.container.InputContainer: ...


@dataclass
class _RtspConnector:
    url: str
    io: IOConfig
    name: str = field(init=False)
    permanent: tuple[type[BaseException], ...] = _PERMANENT_RTSP_ERRORS

    def __post_init__(self) -> None:
        self.name = redact_url(self.url)

    def options(self) -> dict[str, str]:
        return {
            "rtsp_transport": "tcp",
            "analyzeduration": "100000",
            "probesize": "32768",
            # socket I/O timeout, microseconds: a stalled server drops the connection (then: reconnect)
            "timeout": str(int(self.io.read_timeout * 1_000_000)),
        }

    def connect(self) -> av.container.InputContainer:
        timeout = (self.io.open_timeout, self.io.read_timeout)
        return av.open(self.url, options=self.options(), timeout=timeout)


@dataclass
class _CameraConnector:
    spec: str
    io: IOConfig
    name: str = field(init=False)
    device: Path = field(init=False)
    permanent: tuple[type[BaseException], ...] = (av.error.FileNotFoundError, av.error.PermissionError)

    def __post_init__(self) -> None:
        number = self.spec.removeprefix("cam:")
        if not number.isdigit():
            raise SourceError(f"bad webcam spec '{self.spec}': expected cam:N with N a device number, e.g. cam:0")
        self.device = Path(f"/dev/video{int(number)}")
        self.name = self.spec
        if not self.device.exists():
            found = ", ".join(sorted(str(p) for p in Path("/dev").glob("video*"))) or "none"
            raise SourceError(f"webcam {self.spec} not found: {self.device} does not exist (devices: {found})")

    def connect(self) -> av.container.InputContainer:
        return av.open(str(self.device), format="v4l2", timeout=(self.io.open_timeout, self.io.read_timeout))


class _Clock:
    """Makes live timestamps strictly increasing in one time base, across reconnects.

    A new connection continues from the last pts plus the wall time the stream
    was away (at least one frame), so gaps stay visible but time never goes back.
    """

    def __init__(self, time_base: Fraction, fps: float) -> None:
        self.time_base = time_base
        self.step = max(1, round(1 / (fps * time_base)))
        self.last: int | None = None
        self._offset: int | None = None
        self._last_wall = 0.0

    def new_connection(self) -> None:
        self._offset = None

    def stamp(self, pts: int | None, time_base: Fraction | None) -> int:
        now = time.monotonic()
        value = self._rescale(pts, time_base)
        if self.last is None:
            self._offset = -value if value is not None else 0
            out = 0
        elif value is None:
            out = self.last + self.step
        else:
            if self._offset is None:
                gap = max(self.step, round((now - self._last_wall) / self.time_base))
                self._offset = self.last + gap - value
            out = max(value + self._offset, self.last + 1)
        self.last, self._last_wall = out, now
        return out

    def _rescale(self, pts: int | None, time_base: Fraction | None) -> int | None:
        if pts is None or time_base is None:
            return None
        return round(Fraction(pts) * time_base / self.time_base)


class LiveSource:
    """An RTSP stream or a webcam: reconnects with backoff, never rewinds timestamps.

    The reconnect budget (``reconnect_attempts`` tries, sleeping
    ``reconnect_backoff * 2**k``, at most ``reconnect_max_backoff``, before try k)
    is per outage: it refills once frames flow again. The cap bounds how long
    frames stay away after the server is back.
    """

    def __init__(self, connector: _Connector, io: IOConfig) -> None:
        self._connector = connector
        self._io = io
        self._closed = False
        self._tries = 0  # reconnect tries spent in the current outage
        self.reconnects = 0  # successful reconnections so far
        self._container = self._connect(initial=True)
        try:
            video = _video_stream(self._container, connector.name, live=True)
            self._frames = self._decode_frames(video)
            first = next(self._frames, None)
        except (av.error.FFmpegError, OSError) as exc:
            self._container.close()
            raise SourceError(f"cannot read {connector.name}: {error_reason(exc)}") from None
        except BaseException:
            self._container.close()
            raise
        if first is None:
            self._container.close()
            raise SourceError(f"no video frame received from {connector.name}")
        self._first: av.VideoFrame | None = first
        tb = video.time_base or Fraction(1, 90000)
        self._clock = _Clock(tb, _fps(video))
        self.info = StreamInfo(connector.name, first.width, first.height, _fps(video), tb, live=True)

    # -- connecting

    def _connect(self, initial: bool) -> av.container.InputContainer:
        """Connect, retrying with exponential backoff; SourceLostError when the budget is spent."""
        name, attempts = self._connector.name, self._io.reconnect_attempts
        last: BaseException | None = None
        if initial:
            try:
                return self._connect_once()
            except (av.error.FFmpegError, OSError) as exc:
                last = exc
        while self._tries < attempts and not self._closed:
            delay = min(self._io.reconnect_backoff * 2**self._tries, self._io.reconnect_max_backoff)
            self._tries += 1
            why = error_reason(last) if last else "stream dropped"
            log.warning("%s: %s; reconnect attempt %d/%d in %.2fs", name, why, self._tries, attempts, delay)
            time.sleep(delay)
            try:
                return self._connect_once(initial)
            except (av.error.FFmpegError, OSError) as exc:
                last = exc
        what = "could not connect to" if initial else "lost"
        reason = error_reason(last) if last else "no frames after reconnecting"
        raise SourceLostError(f"{what} {name} after {attempts} reconnect attempts (last error: {reason})")

    def _connect_once(self, initial: bool = True) -> av.container.InputContainer:
        """One connection. A "not found" is final on the first open (a wrong URL) but not after
        a drop: a relay answers 404 while the camera behind it reboots."""
        try:
            return self._connector.connect()
        except self._connector.permanent as exc:
            if not initial and isinstance(exc, av.error.HTTPNotFoundError):
                raise
            raise SourceError(f"cannot open {self._connector.name}: {error_reason(exc)}") from None

    # -- reading

    def _decode_frames(self, video: av.video.stream.VideoStream) -> Iterator[av.VideoFrame]:
        for packet in self._container.demux(video):
            yield from _decode(packet, self._connector.name)

    def _frames_of_connection(self) -> Iterator[av.VideoFrame]:
        if self._first is not None:
            first, self._first = self._first, None
            yield first
        yield from self._frames

    def read(self) -> Iterator[Item]:
        """Yield frames until closed; reconnect on a drop; SourceLostError when the budget is spent."""
        index = 0
        while not self._closed:
            reason: BaseException | None = None
            try:
                for frame in self._frames_of_connection():
                    self._tries = 0
                    pts = self._clock.stamp(frame.pts, frame.time_base)
                    yield _to_frame(frame, index, pts, self._clock.time_base)
                    index += 1
                    if self._closed:
                        return
            except (av.error.FFmpegError, OSError) as exc:
                reason = exc
            if self._closed:
                return
            self._reconnect(reason)

    def _reconnect(self, reason: BaseException | None) -> None:
        why = error_reason(reason) if reason else "end of stream"
        log.warning("%s: stream dropped (%s); reconnecting", self._connector.name, why)
        self._container.close()
        self._container = self._connect(initial=False)
        self._frames = self._decode_frames(_video_stream(self._container, self._connector.name, live=True))
        self._clock.new_connection()
        self.reconnects += 1

    def close(self) -> None:
        """Stop reading. Call it from the reading thread or after that thread has finished."""
        if not self._closed:
            self._closed = True
            self._container.close()
