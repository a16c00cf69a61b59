#!/usr/bin/env python
"""Glass-to-glass latency of ``fawn serve`` on loopback, printed as a Markdown table.

A frame is stamped when it is made (the time in ms, drawn as black/white blocks
in its corner), goes through the real pipeline (detect, track, anonymize), is
VP8-encoded, sent over WebRTC on 127.0.0.1, decoded by an aiortc client, and
its stamp read back: latency = decode time - stamp time (one clock: both
processes read CLOCK_MONOTONIC).

Two paths, each at 640x480 and 1280x720, 30 fps, the demo clip's real faces:
- source -> viewer: the server anonymizes its own live source once and fans it out;
- camera -> server -> back: the client sends its camera, the server sends it back anonymized.

The server runs in its own process (``bench_webrtc.py serve ...``), as it would for a browser.

Usage: python scripts/bench_webrtc.py [--seconds 10] [--warmup 2] [--sizes 640x480,1280x720] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np

log = logging.getLogger("bench_webrtc")
FPS = 30


def now_ms() -> int:
    return int(time.monotonic() * 1000) & 0xFFFF


def age_ms(stamp: int) -> int:
    return (now_ms() - stamp) & 0xFFFF


def loopback_ice() -> None:
    """Keep ICE on 127.0.0.1 (aioice never offers it; other interfaces are not ours to use)."""
    import aioice.ice

    def loopback(use_ipv4: bool = True, use_ipv6: bool = True) -> list[str]:
        return ["127.0.0.1"]

    aioice.ice.get_host_addresses = loopback


def demo_frames(width: int, height: int, seconds: float = 2.0) -> list[np.ndarray]:
    from streamer.io import demo

    return [image for image, _gt in demo.render(demo.demo_spec(width, height, seconds=seconds))]


def stamped(frames: list[np.ndarray]) -> Iterator[np.ndarray]:
    """The clip looped at FPS in real time; each frame stamped with the time it was made."""
    from streamer.web.tracks import draw_stamp

    start, n = time.monotonic(), 0
    while True:
        delay = start + n / FPS - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        image = frames[n % len(frames)].copy()
        draw_stamp(image, now_ms())
        yield image
        n += 1


# ------------------------------------------------------------------------------------------ server


def serve(size: tuple[int, int], mode: str) -> None:
    from streamer.core.config import load_config
    from streamer.core.types import Frame
    from streamer.web.server import ServeOptions, run_server
    from streamer.web.tracks import IterFeed

    loopback_ice()
    feed = None
    if mode == "source":
        frames = demo_frames(*size)

        def live() -> Iterator[Frame]:
            for index, image in enumerate(stamped(frames)):
                yield Frame(image, index, pts=index, time_base=Fraction(1, FPS), t_decoded=time.monotonic())

        feed = IterFeed(live, live=True, fps=FPS)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        loop.add_signal_handler(signal.SIGINT, stop.set)

        def ready(url: str) -> None:
            sys.stdout.write(f"{url}\n")
            sys.stdout.flush()

        await run_server(load_config("webrtc"), ServeOptions(port=0), stop, ready, feed)

    asyncio.run(main())


# ------------------------------------------------------------------------------------------ client


@dataclass
class Result:
    path: str
    size: tuple[int, int]
    latencies: list[int]
    frames: int
    seconds: float
    server_fps: float
    pipeline_ms: float

    def row(self) -> str:
        p50, p95 = np.percentile(self.latencies, [50, 95]) if self.latencies else (float("nan"),) * 2
        fps = self.frames / self.seconds
        return (
            f"| {self.path} | {self.size[0]}x{self.size[1]} | {p50:.0f} | {p95:.0f} | "
            f"{min(self.latencies, default=0)} | {self.pipeline_ms:.0f} | {fps:.1f} | {self.server_fps:.1f} | "
            f"{len(self.latencies)} |"
        )


async def measure(url: str, path: str, size: tuple[int, int], warmup: float, seconds: float) -> Result:
    import aiohttp
    import av
    from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection, RTCSessionDescription

    from streamer.web.tracks import read_stamp

    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    latencies: list[int] = []
    counted = [0]
    window = {"start": time.monotonic() + warmup, "end": time.monotonic() + warmup + seconds}
    done = asyncio.get_running_loop().create_future()

    async def consume(track: MediaStreamTrack) -> None:
        while time.monotonic() < window["end"]:
            frame = await track.recv()
            assert isinstance(frame, av.VideoFrame)
            stamp = read_stamp(frame.to_ndarray(format="gray"))
            if time.monotonic() < window["start"]:
                continue
            counted[0] += 1
            if stamp is not None:
                latencies.append(age_ms(stamp))
        if not done.done():
            done.set_result(None)

    tasks: list[asyncio.Task[None]] = []
    pc.on("track", lambda track: tasks.append(asyncio.ensure_future(consume(track))))
    if path == "camera":
        pc.addTransceiver(CameraStandIn(size), direction="sendrecv")
    else:
        pc.addTransceiver("video", direction="recvonly")
    await pc.setLocalDescription(await pc.createOffer())
    async with aiohttp.ClientSession() as session:
        offer = {"sdp": pc.localDescription.sdp, "type": pc.localDescription.type}
        async with session.post(url + "offer", json=offer) as response:
            answer = await response.json()
        await pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type=answer["type"]))
        try:
            await asyncio.wait_for(done, warmup + seconds + 30)
            async with session.get(url + "stats" + (f"?peer={answer['peer']}" if path == "camera" else "")) as r:
                stats = await r.json()
        finally:
            for task in tasks:
                task.cancel()
            await pc.close()
    stream = stats.get("stream") or {}
    return Result(path, size, latencies, counted[0], seconds, float(stream.get("fps", 0.0)),
                  float(stream.get("latency_ms", 0.0)))  # fmt: skip


def _camera_track_class() -> Any:
    import av
    from aiortc import MediaStreamTrack

    class _CameraStandIn(MediaStreamTrack):
        """A webcam stand-in: the demo clip at FPS, each frame stamped when it is made."""

        kind = "video"

        def __init__(self, size: tuple[int, int]) -> None:
            super().__init__()
            self._frames = demo_frames(*size)
            self._n = 0
            self._start: float | None = None

        async def recv(self) -> av.VideoFrame:
            from streamer.web.tracks import draw_stamp

            self._start = self._start or time.monotonic()
            await asyncio.sleep(max(0.0, self._start + self._n / FPS - time.monotonic()))
            image = self._frames[self._n % len(self._frames)].copy()
            draw_stamp(image, now_ms())
            frame = av.VideoFrame.from_ndarray(image, format="bgr24")
            frame.pts, frame.time_base = self._n * (90000 // FPS), Fraction(1, 90000)
            self._n += 1
            return frame

    return _CameraStandIn


def CameraStandIn(size: tuple[int, int]) -> Any:  # noqa: N802 - a class made lazily (aiortc is optional)
    return _camera_track_class()(size)


def start_server(size: tuple[int, int], path: str) -> tuple[subprocess.Popen[str], str]:
    cmd = [sys.executable, os.path.abspath(__file__), "serve", "--size", f"{size[0]}x{size[1]}", "--path", path]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, start_new_session=True)
    assert proc.stdout is not None
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.append(proc.stdout.readline()), daemon=True)  # type: ignore[union-attr]
    reader.start()
    reader.join(60)
    if not lines or not lines[0].startswith("http"):
        stop_server(proc)
        raise RuntimeError(f"the bench server did not start: {lines}")
    return proc, lines[0].strip()


def stop_server(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def run_one(size: tuple[int, int], path: str, warmup: float, seconds: float) -> Result:
    proc, url = start_server(size, path)
    try:
        return asyncio.run(measure(url, path, size, warmup, seconds))
    finally:
        stop_server(proc)


HEADER = (
    "| path | size | p50 ms | p95 ms | min ms | server pipeline ms | fps received | fps server | frames measured |\n"
    "|---|---|---|---|---|---|---|---|---|"
)


def parse_size(text: str) -> tuple[int, int]:
    w, h = text.lower().split("x")
    return int(w), int(h)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", nargs="?", default="bench", choices=["bench", "serve"])
    parser.add_argument("--size", default="640x480", help="serve: frame size")
    parser.add_argument("--path", default="source", choices=["source", "camera"], help="serve: which path")
    parser.add_argument("--sizes", default="640x480,1280x720")
    parser.add_argument("--paths", default="source,camera")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--json", help="also write the raw latencies here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(levelname)s: %(message)s")
    if args.command == "serve":
        serve(parse_size(args.size), args.path)
        return 0
    loopback_ice()
    results = [
        run_one(parse_size(size), path, args.warmup, args.seconds)
        for path in args.paths.split(",")
        for size in args.sizes.split(",")
    ]
    sys.stdout.write(HEADER + "\n" + "\n".join(r.row() for r in results) + "\n")
    if args.json:
        data = [{"path": r.path, "size": list(r.size), "latencies_ms": r.latencies, "frames": r.frames,
                 "seconds": r.seconds, "server_fps": r.server_fps, "pipeline_ms": r.pipeline_ms} for r in results]  # fmt: skip
        with open(args.json, "w") as f:
            json.dump(data, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
