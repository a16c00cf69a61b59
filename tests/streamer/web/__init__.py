"""Helpers for the ``fawn serve`` tests: a server on a free loopback port and an aiortc client.

Everything runs on 127.0.0.1 with bounded timeouts; no STUN/TURN server is configured.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace
from fractions import Fraction
from typing import Any

import numpy as np
import pytest

pytest.importorskip("aiortc", reason="needs the webrtc extra (pip install 'fawn[webrtc]')")

import aiohttp  # noqa: E402
import av  # noqa: E402
from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection, RTCSessionDescription  # noqa: E402
from aiortc.mediastreams import MediaStreamError  # noqa: E402

from streamer.core.config import PipelineConfig, load_config  # noqa: E402
from streamer.core.types import Frame, Image  # noqa: E402
from streamer.io import demo  # noqa: E402
from streamer.web.server import FawnServer, ServeOptions, create_app  # noqa: E402
from streamer.web.tracks import FrameFeed, IterFeed, draw_stamp  # noqa: E402

SIZE = (640, 480)


@dataclass
class Clip:
    """Demo frames (stamped with their index) and ground-truth face boxes."""

    frames: list[Image]
    boxes: list[np.ndarray]
    fps: int = 30


def make_clip(width: int = SIZE[0], height: int = SIZE[1], seconds: float = 2.0) -> Clip:
    frames, boxes = [], []
    for index, (image, gt) in enumerate(demo.render(demo.demo_spec(width, height, seconds=seconds))):
        draw_stamp(image, index)
        frames.append(image)
        boxes.append(gt)
    return Clip(frames, boxes)


def clip_feed(clip: Clip, live: bool = False) -> IterFeed:
    def frames() -> Iterator[Frame]:
        for index, image in enumerate(clip.frames):
            yield Frame(image.copy(), index, pts=index, time_base=Fraction(1, clip.fps), t_decoded=time.monotonic())

    return IterFeed(frames, live=live, fps=clip.fps)


def serve_config(**overrides: Any) -> PipelineConfig:
    return load_config("webrtc", overrides)


def loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """aioice offers only 127.0.0.1 (it never offers loopback itself; traffic stays on lo)."""
    import aioice.ice

    monkeypatch.setattr(aioice.ice, "get_host_addresses", lambda use_ipv4=True, use_ipv6=True: ["127.0.0.1"])


@contextlib.asynccontextmanager
async def running(
    cfg: PipelineConfig, options: ServeOptions | None = None, feed: FrameFeed | dict[str, FrameFeed] | None = None,
    wait_loaded: bool = True,
) -> AsyncIterator[tuple[FawnServer, str]]:
    """A started server on a free 127.0.0.1 port: (server, base URL); by default once its models are loaded."""
    from aiohttp import web

    options = replace(options or ServeOptions(), port=0)
    server = FawnServer(cfg, options, feed)
    runner = web.AppRunner(create_app(server), handle_signals=False, access_log=None)
    await asyncio.wait_for(runner.setup(), 60)
    try:
        site = web.TCPSite(runner, options.host, 0)
        await site.start()
        port = runner.addresses[0][1]
        if wait_loaded:
            await asyncio.wait_for(server.wait_loaded(), 120)
        yield server, f"http://127.0.0.1:{port}"
    finally:
        await asyncio.wait_for(runner.cleanup(), 20)


async def post_json(base: str, path: str, body: Any, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as session:
        async with session.post(base + path, json=body, headers=headers or {}) as response:
            return response.status, await response.json(content_type=None)


async def get(base: str, path: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session:
        async with session.get(base + path, headers=headers or {}) as response:
            return response.status, await response.text()


class ClipTrack(MediaStreamTrack):
    """A camera stand-in: the clip's frames at its frame rate, looping."""

    kind = "video"

    def __init__(self, clip: Clip) -> None:
        super().__init__()
        self.clip = clip
        self.sent = 0
        self._start: float | None = None

    async def recv(self) -> av.VideoFrame:
        if self._start is None:
            self._start = time.monotonic()
        due = self._start + self.sent / self.clip.fps
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        image = self.clip.frames[self.sent % len(self.clip.frames)]
        frame = av.VideoFrame.from_ndarray(image, format="bgr24")
        frame.pts, frame.time_base = self.sent * 3000, Fraction(1, 90000)
        self.sent += 1
        return frame


async def offer(
    pc: RTCPeerConnection, base: str, send: MediaStreamTrack | None = None, token: str | None = None,
    stream: str | None = None,
) -> tuple[int, Any]:
    if send is not None:
        pc.addTransceiver(send, direction="sendrecv")
    else:
        pc.addTransceiver("video", direction="recvonly")
    await pc.setLocalDescription(await pc.createOffer())  # aiortc gathers all candidates here
    body = {"sdp": pc.localDescription.sdp, "type": pc.localDescription.type}
    if token:
        body["token"] = token
    if stream:
        body["stream"] = stream
    return await post_json(base, "/offer", body)


async def receive(
    base: str, count: int, send: MediaStreamTrack | None = None, token: str | None = None, timeout: float = 30.0,
    stream: str | None = None,
) -> list[tuple[Image, float]]:
    """Connect, decode ``count`` frames of the answer's video: (BGR image, monotonic arrival time)."""
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    frames: list[tuple[Image, float]] = []
    done = asyncio.get_running_loop().create_future()

    async def consume(track: MediaStreamTrack) -> None:
        try:
            while len(frames) < count:
                frame = await track.recv()
                assert isinstance(frame, av.VideoFrame)
                frames.append((frame.to_ndarray(format="bgr24"), time.monotonic()))
        except MediaStreamError:
            pass
        if not done.done():
            done.set_result(None)

    tasks: list[asyncio.Task[None]] = []
    pc.on("track", lambda track: tasks.append(asyncio.ensure_future(consume(track))))
    try:
        status, answer = await offer(pc, base, send, token, stream)
        assert status == 200, answer
        await pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type=answer["type"]))
        await asyncio.wait_for(done, timeout)
    finally:
        for task in tasks:
            task.cancel()
        await pc.close()
    return frames
