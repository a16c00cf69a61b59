"""A real RTSP server on loopback for tests, and a publisher that streams a clip to it.

The server is GStreamer's gst-rtsp-server (Debian ``gir1.2-gst-rtsp-server-1.0``),
driven by the system Python (``/usr/bin/python3`` + ``python3-gi``) because
PyGObject is not in the project's venv: this file is both the helper module
(imported by the tests) and the server program (``/usr/bin/python3
tests/rtsp_server.py --port N /in /out``). ``scripts/setup_system.sh`` installs it.

Each mount path is a relay, like mediamtx: a client that ANNOUNCEs/RECORDs to
``rtsp://127.0.0.1:N/path`` publishes H.264 there (RTP over TCP or UDP), and
clients that DESCRIBE/PLAY the same URL receive it. SPS/PPS are repeated
before every keyframe so a reader can join at any time.
"""

from __future__ import annotations

import contextlib
import functools
import os
import random
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

SYSTEM_PYTHON = "/usr/bin/python3"
DEFAULT_PATHS = ("/in", "/out", "/live")
ELEMENTS = ("rtph264depay", "rtph264pay", "h264parse", "appsrc", "appsink")
_PROBE = f"""
import gi
gi.require_version("Gst", "1.0"); gi.require_version("GstRtspServer", "1.0")
from gi.repository import Gst, GstRtspServer
Gst.init(None)
missing = [e for e in {ELEMENTS!r} if Gst.ElementFactory.find(e) is None]
assert not missing, "missing GStreamer elements: " + ", ".join(missing)
"""


@functools.cache
def unavailable_reason() -> str | None:
    """None when gst-rtsp-server can run here, else why not (for pytest.skip)."""
    if not os.path.exists(SYSTEM_PYTHON):
        return f"{SYSTEM_PYTHON} is absent: run scripts/setup_system.sh to install gst-rtsp-server"
    try:
        probe = subprocess.run([SYSTEM_PYTHON, "-c", _PROBE], capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        return "probing gst-rtsp-server timed out"
    if probe.returncode != 0:
        last = (probe.stderr.strip().splitlines() or ["unknown error"])[-1]
        return f"gst-rtsp-server is not installed ({last}): run scripts/setup_system.sh"
    return None


def free_port() -> int:
    """A TCP port nobody listens on right now (loopback)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RtspServer:
    """Starts/stops the relay as a subprocess; ``stop`` then ``start`` keeps the port."""

    def __init__(self, port: int | None = None, paths: Sequence[str] = DEFAULT_PATHS) -> None:
        self.port = port or free_port()
        self.paths = tuple(paths)
        self._proc: subprocess.Popen[bytes] | None = None
        self._log = tempfile.NamedTemporaryFile(prefix="rtsp-server-", suffix=".log", delete=False)

    def url(self, path: str = "/in") -> str:
        return f"rtsp://127.0.0.1:{self.port}{path}"

    def start(self, timeout: float = 15.0) -> None:
        if self._proc is not None:
            raise RuntimeError("RTSP server already running")
        cmd = [SYSTEM_PYTHON, str(Path(__file__).resolve()), "--port", str(self.port), *self.paths]
        self._proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self._log)
        try:
            self._wait_ready(self._proc, timeout)
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self, proc: subprocess.Popen[bytes], timeout: float) -> None:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], timeout)
        line = proc.stdout.readline() if ready else b""
        if line.strip() != b"ready":
            raise RuntimeError(f"RTSP server did not start on port {self.port}: {self.log_tail()}")

    def pause(self) -> None:
        """SIGSTOP the server: connections stay open but nothing flows (a stalled camera or relay)."""
        assert self._proc is not None
        os.kill(self._proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self._proc is not None
        os.kill(self._proc.pid, signal.SIGCONT)

    def stop(self, kill: bool = False) -> None:
        """Terminate (or SIGKILL, like a crash) the server and wait for it."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if kill:
            proc.kill()
        else:
            proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        if proc.stdout is not None:
            proc.stdout.close()

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def log_tail(self, lines: int = 20) -> str:
        self._log.flush()
        text = Path(self._log.name).read_text(errors="replace")
        return "\n".join(text.strip().splitlines()[-lines:]) or "(no output)"

    def close(self) -> None:
        self.stop()
        self._log.close()
        with contextlib.suppress(OSError):
            os.unlink(self._log.name)

    def __enter__(self) -> RtspServer:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


class Publisher:
    """Streams a clip's H.264 packets (copied, no re-encode) to an RTSP URL in real time, in a loop.

    Like a camera that keeps trying: when the server goes away it reconnects
    every ``retry`` seconds until :meth:`stop`.
    """

    def __init__(self, url: str, clip: str | Path, retry: float = 0.2, corrupt: float = 0.0, seed: int = 0) -> None:
        self.url = url
        self.clip = str(clip)
        self.retry = retry
        self.corrupt = corrupt  # fraction of packets whose payload gets random bytes (a flaky link)
        self.corrupted = 0
        self._rng = random.Random(seed)
        self.packets_sent = 0
        self.connections = 0
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rtsp-publisher", daemon=True)

    def start(self) -> Publisher:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def wait_sent(self, packets: int, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while self.packets_sent < packets and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.packets_sent >= packets

    def _run(self) -> None:
        import av

        with av.open(self.clip) as clip:
            stream = clip.streams.video[0]
            packets = [(p.pts, p.dts, bytes(p), p.is_keyframe) for p in clip.demux(stream) if p.dts is not None]
            while not self._stop.is_set():
                try:
                    self._publish_once(av, stream, packets)
                except Exception as exc:  # server down: retry like a camera would
                    self.errors.append(f"{type(exc).__name__}: {exc}")
                self._stop.wait(self.retry)

    def _publish_once(self, av: Any, template: Any, packets: list[tuple[Any, Any, bytes, bool]]) -> None:
        out = av.open(self.url, "w", format="rtsp", container_options={"rtsp_transport": "tcp"}, timeout=5)
        try:
            stream = out.add_stream_from_template(template)
            out.start_encoding()
            self.connections += 1
            self._send_loop(av, out, stream, template.time_base, packets)
        finally:
            with contextlib.suppress(Exception):
                out.close()

    def _send_loop(self, av: Any, out: Any, stream: Any, tb: Any, packets: list[tuple[Any, Any, bytes, bool]]) -> None:
        step = packets[1][1] - packets[0][1] if len(packets) > 1 else 1
        span = packets[-1][1] - packets[0][1] + step
        start, offset = time.monotonic(), 0
        while not self._stop.is_set():
            for pts, dts, data, key in packets:
                due = start + float((dts + offset - packets[0][1]) * tb)
                if self._stop.wait(max(0.0, due - time.monotonic())):
                    return
                packet = av.Packet(self._damage(data))
                packet.pts, packet.dts, packet.time_base = pts + offset, dts + offset, tb
                packet.is_keyframe = key
                packet.stream = stream
                out.mux(packet)
                self.packets_sent += 1
            offset += span

    def _damage(self, data: bytes) -> bytes:
        """With probability ``corrupt``, overwrite a run of bytes past the NAL headers with noise."""
        if self.corrupt <= 0 or len(data) < 64 or self._rng.random() >= self.corrupt:
            return data
        self.corrupted += 1
        buf = bytearray(data)
        start = self._rng.randrange(32, len(buf) - 16)
        length = min(len(buf) - start, self._rng.randrange(8, 256))
        buf[start : start + length] = bytes(self._rng.randrange(256) for _ in range(length))
        return bytes(buf)

    def __enter__(self) -> Publisher:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def wait_for(predicate: Any, timeout: float, interval: float = 0.02) -> bool:
    """Poll ``predicate()`` until true or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


# ---------------------------------------------------------------- the server program (system Python)

RECORD_LAUNCH = (
    "( rtph264depay name=depay0 ! h264parse config-interval=-1 "
    "! video/x-h264,stream-format=byte-stream,alignment=au "
    "! appsink name=sink emit-signals=true sync=false async=false )"
)
PLAY_LAUNCH = (
    "( appsrc name=src is-live=true format=time do-timestamp=true "
    "! h264parse config-interval=-1 ! rtph264pay name=pay0 pt=96 config-interval=-1 )"
)


def _serve(port: int, paths: Sequence[str]) -> None:  # pragma: no cover - runs under /usr/bin/python3
    import ctypes

    import gi

    gi.require_version("Gst", "1.0")
    gi.require_version("GstRtsp", "1.0")
    gi.require_version("GstRtspServer", "1.0")
    from gi.repository import GLib, Gst, GstRtsp, GstRtspServer

    Gst.init(None)
    rtsp_lib = ctypes.CDLL("libgstrtspserver-1.0.so.0")
    rtsp_lib.gst_rtsp_context_get_current.restype = ctypes.c_void_p

    class ContextHead(ctypes.Structure):
        # the first fields of struct GstRTSPContext (gst-rtsp-server 1.x, stable ABI)
        _fields_ = [("server", ctypes.c_void_p), ("conn", ctypes.c_void_p), ("client", ctypes.c_void_p),
                    ("request", ctypes.c_void_p), ("uri", ctypes.c_void_p), ("method", ctypes.c_int)]

    def handling_announce() -> bool:
        """Whether the request being handled is an ANNOUNCE (a publisher) rather than a DESCRIBE."""
        ptr = rtsp_lib.gst_rtsp_context_get_current()
        return bool(ptr) and ContextHead.from_address(ptr).method == int(GstRtsp.RTSPMethod.ANNOUNCE)

    class Relay:
        """Copies the publisher's access units into every reader's appsrc."""

        def __init__(self) -> None:
            self.lock = threading.Lock()
            self.caps: Any = None
            self.sources: list[Any] = []

        def on_sample(self, sink: Any) -> Any:
            sample = sink.emit("pull-sample")
            with self.lock:
                self.caps = sample.get_caps()
                sources = list(self.sources)
            for src in sources:
                if src.get_property("caps") is None:
                    src.set_property("caps", self.caps)
                buffer = sample.get_buffer().copy()
                buffer.pts = buffer.dts = Gst.CLOCK_TIME_NONE
                src.emit("push-buffer", buffer)
            return Gst.FlowReturn.OK

        def add_reader(self, src: Any, media: Any) -> None:
            with self.lock:
                if self.caps is not None:
                    src.set_property("caps", self.caps)
                self.sources.append(src)
            media.connect("unprepared", lambda _media: self.remove_reader(src))

        def remove_reader(self, src: Any) -> None:
            with self.lock:
                if src in self.sources:
                    self.sources.remove(src)

    class RelayFactory(GstRtspServer.RTSPMediaFactory):
        def __init__(self, relay: Relay) -> None:
            super().__init__()
            self.relay = relay
            modes = GstRtspServer.RTSPTransportMode
            self.set_transport_mode(modes.PLAY | modes.RECORD)
            self.set_shared(False)
            self.set_latency(20)  # ms of jitter buffer on the publishing side (default 200): keep the relay live
            self.connect("media-configure", self.on_configure)

        def do_create_element(self, url: Any) -> Any:
            return Gst.parse_launch(RECORD_LAUNCH if handling_announce() else PLAY_LAUNCH)

        def on_configure(self, _factory: Any, media: Any) -> None:
            pipeline = media.get_element()
            sink = pipeline.get_by_name("sink")
            modes = GstRtspServer.RTSPTransportMode
            if sink is not None:
                media.set_transport_mode(modes.RECORD)
                sink.connect("new-sample", self.relay.on_sample)
            else:
                media.set_transport_mode(modes.PLAY)
                self.relay.add_reader(pipeline.get_by_name("src"), media)

    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(port))
    server.get_thread_pool().set_max_threads(16)
    mounts = server.get_mount_points()
    for path in paths:
        mounts.add_factory(path, RelayFactory(Relay()))
    if server.attach(None) == 0:
        raise SystemExit(f"cannot listen on 127.0.0.1:{port}")
    print("ready", flush=True)
    GLib.MainLoop().run()


def main(argv: Sequence[str]) -> None:  # pragma: no cover - runs under /usr/bin/python3
    import argparse

    parser = argparse.ArgumentParser(description="RTSP relay on loopback for fawn's tests")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("paths", nargs="*", default=list(DEFAULT_PATHS))
    args = parser.parse_args(argv)
    _serve(args.port, args.paths or DEFAULT_PATHS)


if __name__ == "__main__":  # pragma: no cover
    main(sys.argv[1:])

