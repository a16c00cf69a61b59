"""``fawn serve`` hardening: no password on any surface, tokens on loopback, an unreachable camera
does not take the server down, the page answers while models load, no leak per peer or toggle.

Loopback only: the unreachable camera is ``rtsp://…@127.0.0.1:1`` (nothing listens on port 1).
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
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

from streamer.cli.serve import _token
from streamer.core.errors import ConfigError
from streamer.web.server import FawnServer, ServeOptions
from tests.streamer.web import (
    Clip,
    ClipTrack,
    clip_feed,
    get,
    loopback_only,
    make_clip,
    offer,
    post_json,
    receive,
    running,
    serve_config,
)
from tests.streamer.web.test_server import _enroll_grace, readline

T = TypeVar("T")
SECRET = "s3cret"
CAMERA = f"rtsp://user:{SECRET}@127.0.0.1:1/cam"
FAST_RETRY = {"io.reconnect_attempts": 0, "io.reconnect_backoff": 0.0, "io.reconnect_max_backoff": 0.05,
              "io.open_timeout": 2.0}


@pytest.fixture(autouse=True)
def _loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    loopback_only(monkeypatch)


@pytest.fixture(scope="module")
def clip() -> Clip:
    return make_clip(seconds=2.0)


def run(coro: Awaitable[T], timeout: float = 120.0) -> T:
    async def bounded() -> T:
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(bounded())


async def until(condition: Callable[[], bool], what: str, polls: int = 2000) -> None:
    """Poll ``condition`` (bounded by a count, not asserted on time)."""
    for _ in range(polls):
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"never happened: {what}")


# -- an unreachable camera next to a healthy stream ------------------------------------------


def test_an_unreachable_camera_is_retried_while_the_other_stream_is_served(
    clip: Clip, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    options = ServeOptions(sources=("demo", CAMERA), names=("lobby", "door"))

    async def main() -> dict[str, Any]:
        async with running(serve_config(**FAST_RETRY), options) as (server, base):
            door = server.hubs["door"]
            await until(lambda: door.retries >= 2, "the camera is retried")
            page = await get(base, "/")
            health = await get(base, "/healthz")
            stats = await get(base, "/stats")
            stats_door = await get(base, "/stats?stream=door")
            metrics = await get(base, "/metrics")
            before = door.retries
            frames = await receive(base, 5, stream="lobby")  # the healthy stream plays
            await until(lambda: door.retries > before, "retries go on in the background")
            return {"page": page, "health": health, "stats": stats, "stats_door": stats_door, "metrics": metrics,
                    "frames": frames, "lobby": server.hubs["lobby"].state, "door": door.state}

    got = run(main())
    assert got["page"][0] == 200 and "<html" in got["page"][1].lower()
    assert len(got["frames"]) == 5 and got["lobby"] == "running" and got["door"] == "retrying"
    status, body = got["health"]
    health = json.loads(body)
    assert status == 503 and health["streams"] == {"lobby": "running", "door": "retrying"}
    assert "127.0.0.1:1" in health["errors"]["door"] and "lobby" not in health["errors"]
    stats = json.loads(got["stats"][1])
    door = stats["streams"]["door"]
    assert door["state"] == "retrying" and door["source"] == "rtsp://user:***@127.0.0.1:1/cam"
    assert door["retries"] >= 2 and door["error"]
    assert stats["server"]["source"] == "demo, rtsp://user:***@127.0.0.1:1/cam"
    assert json.loads(got["stats_door"][1])["stream"]["state"] == "retrying"
    for name in ("page", "health", "stats", "stats_door", "metrics"):
        assert SECRET not in got[name][1], f"the camera password is in {name}"
    assert "door" in caplog.text and SECRET not in caplog.text


def test_cli_serves_demo_while_a_camera_is_unreachable(tmp_path: Path) -> None:
    """``fawn serve demo rtsp://user:…@127.0.0.1:1/cam``: page, /healthz and the demo stream; no password
    on stdout or stderr; SIGINT still stops it cleanly."""
    config = tmp_path / "fast.yaml"
    config.write_text("io:\n  reconnect_attempts: 0\n  reconnect_backoff: 0.0\n  reconnect_max_backoff: 0.05\n")
    code = (
        "import argparse, sys; from streamer.cli.serve import add_serve_parser;"
        "from streamer.core.redact import redact_log_handlers; import logging;"
        "logging.basicConfig(level=logging.INFO); redact_log_handlers();"
        "p = argparse.ArgumentParser(); add_serve_parser(p.add_subparsers());"
        "a = p.parse_args(sys.argv[1:]); sys.exit(a.func(a))"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, "serve", "demo", CAMERA, "--port", "0", "-c", str(config)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )
    try:
        assert proc.stdout is not None
        line = readline(proc.stdout, timeout=90)
        assert line.startswith("fawn serve: open http://127.0.0.1:"), line
        base, _, token = line.split("open ", 1)[1].strip().partition("/?token=")
        auth = {"Authorization": f"Bearer {token}"}

        async def check() -> None:
            health: dict[str, Any] = {}
            for _ in range(500):
                status, body = await get(base, "/healthz")
                health = json.loads(body)
                if health["streams"].get("stream-1") == "retrying":
                    break
                await asyncio.sleep(0.05)
            assert status == 503 and health["streams"] == {"stream-0": "running", "stream-1": "retrying"}
            assert (await get(base, f"/?token={token}"))[0] == 200
            status, body = await get(base, "/stats", auth)
            assert status == 200 and SECRET not in body and "user:***@127.0.0.1:1" in body
            assert len(await receive(base, 3, token=token, stream="stream-0")) == 3

        run(check(), 90)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err[-2000:]
        assert "retrying" in err and SECRET not in err and SECRET not in out + line
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


# -- tokens ------------------------------------------------------------------------------------


def _args(**given: Any) -> argparse.Namespace:
    return argparse.Namespace(**({"token": None, "no_token": False, "host": "127.0.0.1"} | given))


def test_a_token_is_made_on_loopback_too_unless_no_token() -> None:
    assert _token(_args(), True, lambda: "generated") == "generated"
    assert _token(_args(token="mine"), True, lambda: "generated") == "mine"
    assert _token(_args(no_token=True), True, lambda: "generated") is None
    with pytest.raises(ConfigError, match="not loopback"):
        _token(_args(no_token=True, host="0.0.0.0"), False, lambda: "generated")
    with pytest.raises(ConfigError, match="not both"):
        _token(_args(no_token=True, token="mine"), True, lambda: "generated")


def test_every_state_changing_route_needs_the_token_on_loopback(clip: Clip) -> None:
    token = "loopback-token"

    async def main() -> None:
        async with running(serve_config(), ServeOptions(token=token), clip_feed(clip)) as (server, base):
            for body in ({"mode": "all"}, {"method": "solid"}, {"labels": True}):
                assert (await post_json(base, "/control", body))[0] == 401
                assert (await post_json(base, "/control", body | {"token": "nope"}))[0] == 401
            assert server.controls.method == "blur" and server.controls.labels is False  # nothing changed
            pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
            try:
                assert (await offer(pc, base))[0] == 401
            finally:
                await pc.close()
            assert not server.peers
            status, body = await post_json(base, "/control", {"method": "solid"}, {"X-Fawn-Token": token})
            assert status == 200 and body["method"] == "solid"
            assert (await get(base, "/healthz"))[0] == 200  # health carries no secret: open

    run(main())


# -- the page answers while the models load ------------------------------------------------------


def test_page_and_healthz_answer_while_the_models_load(clip: Clip, monkeypatch: pytest.MonkeyPatch) -> None:
    import streamer.web.server as server_module

    entered, release = threading.Event(), threading.Event()
    real = server_module.SharedModels

    def slow_models(*args: Any, **kwargs: Any) -> Any:
        entered.set()
        release.wait(60)  # blocked until the test has its answers
        return real(*args, **kwargs)

    monkeypatch.setattr(server_module, "SharedModels", slow_models)

    async def main() -> None:
        async with running(serve_config(), ServeOptions(), clip_feed(clip), wait_loaded=False) as (server, base):
            await until(entered.is_set, "the model load started")
            status, html = await get(base, "/")
            assert status == 200 and "fawn" in html
            status, body = await get(base, "/healthz")
            assert status == 503 and json.loads(body)["loading"] is True
            assert json.loads(body)["streams"] == {"source": "starting"}
            status, body = await post_json(base, "/control", {"method": "solid"})
            assert status == 503 and "loading" in body["error"]
            stats = json.loads((await get(base, "/stats"))[1])
            assert stats["server"]["loading"] is True and stats["server"]["input"] == "source"
            assert not release.is_set() and not server.loaded  # all answered while the load was blocked
            release.set()
            await asyncio.wait_for(server.wait_loaded(), 60)
            assert (await get(base, "/healthz"))[0] == 200
            assert len(await receive(base, 3)) == 3

    try:
        run(main())
    finally:
        release.set()


# -- no leak per peer or per toggle ----------------------------------------------------------------


def _rss_mb() -> float:
    """Resident memory after a collection, with freed heap handed back (glibc caches freed codec buffers)."""
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: the bound is generous anyway
        pass
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


async def _camera_peer(base: str, clip: Clip) -> tuple[RTCPeerConnection, str]:
    """A camera peer that has got one anonymized frame back: (its connection, its peer id)."""
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    got = asyncio.get_running_loop().create_future()

    async def first(track: Any) -> None:
        await track.recv()
        if not got.done():
            got.set_result(None)

    pc.on("track", lambda track: asyncio.ensure_future(first(track)))
    try:
        status, answer = await offer(pc, base, send=ClipTrack(clip))
        assert status == 200, answer
        await pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type=answer["type"]))
        await asyncio.wait_for(got, 30)
    except BaseException:
        await pc.close()
        raise
    return pc, str(answer["peer"])


def test_peers_and_toggles_release_what_they_hold(
    clip: Clip, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """20 camera peers come and go, 20 /control toggles: every processor and replaced stage is closed,
    /control reuses the shared embedder, threads and RSS stay flat."""
    import streamer.stages.identity.embed
    import streamer.stages.identity.resolver
    import streamer.web.server as server_module

    gallery = _enroll_grace(tmp_path)
    gallery.chmod(0o600)
    cfg = serve_config(**{"identity.gallery": str(gallery), "identity.audit": str(tmp_path / "audit.jsonl")})
    built: list[Any] = []
    closed: list[Any] = []
    real_build = server_module.build_processor

    def build(*args: Any, **kwargs: Any) -> Any:
        processor = real_build(*args, **kwargs)
        real_close = processor.close

        def close() -> None:
            closed.append(processor)
            real_close()

        processor.close = close
        built.append(processor)
        return processor

    audits: list[Any] = []
    real_audit = streamer.stages.identity.resolver.AuditLog

    def audit(path: Any) -> Any:
        log = real_audit(path)
        audits.append(log)
        return log

    embedders = {"loaded": 0}
    real_embedder = streamer.stages.identity.embed.create_embedder

    def count_embedder(*args: Any, **kwargs: Any) -> Any:
        embedders["loaded"] += 1
        return real_embedder(*args, **kwargs)

    monkeypatch.setattr(server_module, "build_processor", build)
    monkeypatch.setattr(streamer.stages.identity.resolver, "AuditLog", audit)
    monkeypatch.setattr(streamer.stages.identity.resolver, "create_embedder", count_embedder)
    monkeypatch.setattr(streamer.stages.identity.embed, "create_embedder", count_embedder)

    async def cycles(server: FawnServer, base: str, count: int) -> None:
        for _ in range(count):
            pc, peer = await _camera_peer(base, clip)
            await pc.close()
            await until(lambda p=peer: p not in server.peers, "the peer is gone")  # type: ignore[misc]

    async def toggles(server: FawnServer, base: str, count: int) -> None:
        """``count`` mode (and every 4th a method) switches while a camera peer is connected."""
        pc, peer = await _camera_peer(base, clip)
        try:
            for i in range(count):
                body: dict[str, Any] = {"mode": "all"} if i % 2 else {"mode": "exempt"}
                if i % 4 == 1:
                    body |= {"method": "pixelate" if i % 8 == 1 else "blur"}
                status, answer = await post_json(base, "/control", body)
                assert status == 200, answer
        finally:
            await pc.close()
        await until(lambda: peer not in server.peers, "the peer is gone")

    async def main() -> tuple[list[int], list[float], int]:
        async with running(cfg) as (server, base):
            await cycles(server, base, 3)  # warm-up: first-use allocations, aiortc and executor threads
            await toggles(server, base, 4)
            threads, rss = [threading.active_count()], [_rss_mb()]
            loaded = embedders["loaded"]
            await cycles(server, base, 20)
            threads.append(threading.active_count())
            rss.append(_rss_mb())
            await toggles(server, base, 20)
            threads.append(threading.active_count())
            rss.append(_rss_mb())
            assert not server.peers
            return threads, rss, embedders["loaded"] - loaded

    threads, rss, loaded = run(main(), 600)
    assert len(built) == 3 + 1 + 20 + 1
    assert all(p in closed for p in built), f"{sum(p not in closed for p in built)} processors never closed"
    assert len(audits) > 10 and all(a._file is None for a in audits), "an audit log left open"
    assert loaded == 0, "a /control toggle loaded another embedder instead of the shared one"
    assert max(threads) - threads[0] <= 4, f"threads grew: {threads}"
    assert max(rss) - rss[0] < 60, f"RSS grew: {rss}"


def test_shutdown_closes_every_broadcast_processor_and_the_shared_detector(
    clip: Clip, monkeypatch: pytest.MonkeyPatch
) -> None:
    import streamer.web.server as server_module

    closed: list[Any] = []
    real_build = server_module.build_processor

    def build(*args: Any, **kwargs: Any) -> Any:
        processor = real_build(*args, **kwargs)
        real_close = processor.close

        def close() -> None:
            closed.append(processor)
            real_close()

        processor.close = close
        return processor

    monkeypatch.setattr(server_module, "build_processor", build)
    feeds = {"a": clip_feed(clip), "b": clip_feed(clip)}

    async def main() -> FawnServer:
        options = ServeOptions(sources=("a.mp4", "b.mp4"), names=("a", "b"))
        async with running(serve_config(), options, feeds) as (server, base):  # type: ignore[arg-type]
            assert len(await receive(base, 3, stream="b")) == 3
            return server

    server = run(main())
    assert {id(p) for p in closed} == {id(hub.processor) for hub in server.hubs.values()} and len(closed) == 2
    assert server.shared is not None and server.shared.detector._closed
