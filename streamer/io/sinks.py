"""Video sinks: files, RTSP publishing and ``null``.

:func:`open_sink` opens the output at once (file created, RTSP server
connected, encoder opened), so a bad output fails with a one-line
:class:`~streamer.core.errors.SinkError` before any frame is processed.

Files keep the source's timestamps (variable frame rate survives) and copy its
audio packets untouched. ``.mp4``/``.mov`` files are written as fragmented MP4,
so a run that is killed still leaves a playable file up to the last fragment
(one second at most). RTSP outputs use the live preset with
``tune=zerolatency`` and a one-second keyframe interval, and are paced to real
time when the source is a file.
"""

from __future__ import annotations

import logging
import math
import os
import time
from fractions import Fraction
from pathlib import Path
from typing import Any, Protocol

import av
import av.error
import cv2
import numpy as np

from streamer.core.config import IOConfig
from streamer.core.errors import SinkError
from streamer.core.media import RTSP_SCHEMES
from streamer.core.types import Frame, Image, StreamInfo
from streamer.io.sources import error_reason, redact_url

log = logging.getLogger(__name__)

Item = Frame | av.Packet

FRAGMENTED = {".mp4", ".m4v", ".mov"}
MP4_OPTIONS = {"movflags": "frag_keyframe+empty_moov+delay_moov+default_base_moof", "frag_duration": "1000000", "flush_packets": "1"}
VIDEO_OUTPUTS = FRAGMENTED | {".mkv", ".avi", ".webm", ".ts"}  # an image sequence may also be encoded to a video
_AV_ERRORS = (av.error.FFmpegError, OSError, ValueError)


class Sink(Protocol):
    """Where processed frames go. ``close`` flushes and finalizes; it is idempotent."""

    frames_written: int

    def write(self, item: Item) -> None: ...

    def close(self) -> None: ...


def open_sink(spec: str, info: StreamInfo, io: IOConfig) -> Sink:
    """Open ``spec``: a file path, ``rtsp://…``/``rtsps://…`` (publish to a server) or ``null``;
    an image-sequence source writes a folder of images at ``spec``."""
    if spec == "null":
        return NullSink()
    if spec.lower().startswith(RTSP_SCHEMES):
        return RtspSink(spec, info, io)
    from streamer.io.imageseq import ImageSequenceSink, SequenceInfo

    if isinstance(info, SequenceInfo) and Path(spec).suffix.lower() not in VIDEO_OUTPUTS:  # a folder of images out
        return ImageSequenceSink(spec, info, io)
    return FileSink(spec, info, io)


class NullSink:
    """Discards everything, counting frames (for benchmarks and dry runs)."""

    def __init__(self) -> None:
        self.frames_written = 0

    def write(self, item: Item) -> None:
        if isinstance(item, Frame):
            self.frames_written += 1

    def close(self) -> None:
        return None


class _Timestamps:
    """Output pts in the stream's time base: the source's pts, forced strictly increasing."""

    def __init__(self, time_base: Fraction, fps: float) -> None:
        self.time_base = time_base
        self.step = max(1, round(1 / (max(fps, 1e-3) * time_base)))
        self.min_step = 1  # the muxer's clock may be coarser (Matroska: 1 ms): never collapse two frames
        self.last: int | None = None

    def next(self, frame: Frame) -> int:
        value: int | None = None
        if frame.pts is not None:
            tb = frame.time_base or self.time_base
            value = round(Fraction(frame.pts) * tb / self.time_base)
        if self.last is None:
            out = value if value is not None else 0
        elif value is None:
            out = self.last + max(self.step, self.min_step)
        else:
            out = max(value, self.last + self.min_step)
        self.last = out
        return out


class _EncodingSink:
    """An output container with one H.264 (``io.codec``) video stream; base of file and RTSP sinks."""

    def __init__(self, name: str, container: Any, info: StreamInfo, io: IOConfig, live: bool) -> None:
        self.name = name
        self.frames_written = 0
        self._container = container
        self._closed = False
        self._failed = False
        self._noted_size: tuple[int, int] | None = None
        self._width, self._height = info.width - info.width % 2, info.height - info.height % 2
        if (self._width, self._height) != (info.width, info.height):
            log.info("%s: cropping %dx%d to even %dx%d for yuv420p", name, info.width, info.height,
                     self._width, self._height)
        try:
            self._stream = self._add_video(info, io, live)
        except SinkError:
            self._failed = True
            self._close_container()
            raise
        self._clock = _Timestamps(self._stream.codec_context.time_base, info.fps)

    def _add_video(self, info: StreamInfo, io: IOConfig, live: bool) -> Any:
        rate = Fraction(info.fps).limit_denominator(1001) if info.fps > 0 else Fraction(30)
        try:
            stream = self._container.add_stream(io.codec, rate=rate)
        except _AV_ERRORS as exc:
            raise SinkError(f"cannot encode with codec '{io.codec}': {error_reason(exc)}") from None
        stream.width, stream.height, stream.pix_fmt = self._width, self._height, "yuv420p"
        stream.time_base = info.time_base
        stream.codec_context.time_base = info.time_base
        options = {"crf": str(io.crf), "preset": io.live_preset if live else io.preset}
        stream.options = options
        return stream

    def _start(self) -> None:
        """Open the encoder and write the header now (creates the file / connects to the server)."""
        try:
            self._container.start_encoding()
        except _AV_ERRORS as exc:
            self._failed = True
            self._close_container()
            raise SinkError(self._start_error(exc)) from None
        muxer_tb = self._stream.time_base  # chosen by the muxer when it wrote the header
        if muxer_tb:
            self._clock.min_step = max(1, math.ceil(Fraction(muxer_tb) / self._clock.time_base))

    def _start_error(self, exc: BaseException) -> str:
        return f"cannot write {self.name}: {error_reason(exc)}"

    def write(self, item: Item) -> None:
        if self._closed:
            raise SinkError(f"{self.name}: write after close")
        try:
            if isinstance(item, Frame):
                self._write_frame(item)
            else:
                self._write_packet(item)
        except _AV_ERRORS as exc:
            self._failed = True
            raise SinkError(f"writing {self.name} failed: {error_reason(exc)}") from None

    def _write_frame(self, frame: Frame) -> None:
        video = av.VideoFrame.from_ndarray(self._even(frame.image), format="bgr24")
        video.pts = self._clock.next(frame)
        video.time_base = self._clock.time_base
        self._before_encode(video.pts)
        for packet in self._stream.encode(video):
            self._container.mux(packet)
        self.frames_written += 1

    def _before_encode(self, pts: int) -> None:
        """Hook: the RTSP sink paces file sources to real time here."""

    def _write_packet(self, packet: av.Packet) -> None:
        """Audio packets are dropped by default (only file sinks carry audio)."""

    def _even(self, image: Image) -> Image:
        """The frame at the output size: odd sides cropped by one pixel; another resolution
        (a camera that switched mid-stream) letterboxed into the output, aspect kept."""
        h, w = image.shape[:2]
        if h == self._height and w == self._width:
            return image
        if 0 <= h - self._height <= 1 and 0 <= w - self._width <= 1:
            return np.ascontiguousarray(image[: self._height, : self._width])
        if (h, w) != self._noted_size:
            self._noted_size = (h, w)
            log.warning("%s: input is now %dx%d; letterboxing into the output's %dx%d", self.name, w, h,
                        self._width, self._height)
        return letterbox(image, self._width, self._height)

    def close(self) -> None:
        """Flush the encoder and finalize the container. Idempotent; after an error it only releases."""
        if self._closed:
            return
        self._closed = True
        try:
            if not self._failed:
                for packet in self._stream.encode(None):
                    self._container.mux(packet)
        except _AV_ERRORS as exc:
            self._failed = True
            self._close_container()
            raise SinkError(f"finalizing {self.name} failed: {error_reason(exc)}") from None
        self._close_container()

    def _close_container(self) -> None:
        self._closed = True
        try:
            self._container.close()
        except _AV_ERRORS as exc:
            if not self._failed:
                raise SinkError(f"finalizing {self.name} failed: {error_reason(exc)}") from None
            log.debug("%s: error while closing after a failure: %s", self.name, error_reason(exc))


class FileSink(_EncodingSink):
    """A video file; the container comes from the extension. Audio is copied from the source."""

    def __init__(self, path: str, info: StreamInfo, io: IOConfig) -> None:
        self.path = Path(path)
        _check_output_path(self.path)
        options = MP4_OPTIONS if self.path.suffix.lower() in FRAGMENTED else {}
        try:
            container = av.open(str(self.path), "w", container_options=dict(options))
        except _AV_ERRORS as exc:
            raise SinkError(f"cannot write {self.path}: {_format_error(self.path, exc)}") from None
        super().__init__(str(self.path), container, info, io, live=info.live)
        self._audio = self._add_audio(info.audio)
        self._start()

    def _add_audio(self, template: Any) -> Any:
        if template is None:
            return None
        try:
            return self._container.add_stream_from_template(template)
        except _AV_ERRORS as exc:
            self._failed = True
            self._close_container()
            raise SinkError(f"cannot copy the audio into {self.path}: {error_reason(exc)}") from None

    def _write_packet(self, packet: av.Packet) -> None:
        if self._audio is None or packet.dts is None:
            return
        packet.stream = self._audio
        self._container.mux(packet)


def _check_output_path(path: Path) -> None:
    folder = path.parent
    if path.is_dir():
        raise SinkError(f"output is a directory, not a file: {path}")
    if not folder.is_dir():  # fawn run demo -o out/demo.mp4 on a fresh checkout: create out/
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SinkError(f"cannot create the output folder {folder}: {exc.strerror or exc}") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise SinkError(f"output folder is not writable: {folder}")
    if not path.suffix:
        raise SinkError(f"output {path} has no extension: name a container, e.g. {path}.mp4 or {path}.mkv")


def _format_error(path: Path, exc: BaseException) -> str:
    if isinstance(exc, ValueError) and "format" in str(exc):
        return f"unknown container '{path.suffix}' (use .mp4, .mkv, .mov or .avi)"
    return error_reason(exc)


def letterbox(image: Image, width: int, height: int) -> Image:
    """``image`` scaled to fit ``width`` x ``height`` (aspect kept), centred on black."""
    h, w = image.shape[:2]
    scale = min(width / w, height / h)
    rw, rh = max(1, min(width, round(w * scale))), max(1, min(height, round(h * scale)))
    canvas = np.zeros((height, width, 3), np.uint8)
    x, y = (width - rw) // 2, (height - rh) // 2
    canvas[y : y + rh, x : x + rw] = cv2.resize(image, (rw, rh), interpolation=cv2.INTER_AREA)
    return canvas


class RtspSink(_EncodingSink):
    """Publishes to an RTSP server (ANNOUNCE/RECORD over TCP), e.g. mediamtx or gst-rtsp-server."""

    def __init__(self, url: str, info: StreamInfo, io: IOConfig) -> None:
        self.url = url
        self._pace = not info.live
        self._audio_noted = False
        self._t0: tuple[float, int] | None = None
        try:
            container = av.open(
                url, "w", format="rtsp", container_options={"rtsp_transport": "tcp"}, timeout=io.open_timeout
            )
        except _AV_ERRORS as exc:
            raise SinkError(f"cannot publish to {redact_url(url)}: {error_reason(exc)}") from None
        super().__init__(redact_url(url), container, info, io, live=True)
        self._stream.options = dict(self._stream.options, tune="zerolatency")
        self._stream.codec_context.gop_size = max(1, round(info.fps))
        self._start()

    def _start_error(self, exc: BaseException) -> str:
        return f"cannot publish to {self.name}: {error_reason(exc)} (is the RTSP server running?)"

    def _write_packet(self, packet: av.Packet) -> None:
        if not self._audio_noted:
            self._audio_noted = True
            log.info("%s: the source's audio is not published over RTSP (video only)", self.name)

    def _before_encode(self, pts: int) -> None:
        if not self._pace:
            return
        now = time.monotonic()
        if self._t0 is None:
            self._t0 = (now, pts)
            return
        due = self._t0[0] + float((pts - self._t0[1]) * self._clock.time_base)
        if due > now:
            time.sleep(min(due - now, 1.0))
