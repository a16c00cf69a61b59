"""``fawn serve`` over real WebRTC on loopback: an aiortc client receives and decodes anonymized frames.

Every server binds 127.0.0.1 on a free port; ICE offers only 127.0.0.1; no STUN/TURN.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Awaitable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from aiortc import RTCConfiguration, RTCPeerConnection

from streamer.core.errors import ConfigError
from streamer.core.types import Image
from streamer.tools import verify
from streamer.web.server import ServeOptions, is_loopback
from streamer.web.tracks import read_stamp
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

T = TypeVar("T")
FILTERS = ("blur", "pixelate", "solid")
N_FRAMES = 20


@pytest.fixture(scope="module")
def clip() -> Clip:
    return make_clip(seconds=3.0)


@pytest.fixture(autouse=True)
def _loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    loopback_only(monkeypatch)


def run(coro: Awaitable[T], timeout: float = 60.0) -> T:
    async def bounded() -> T:
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(bounded())


def assert_anonymized(clip: Clip, frames: list[tuple[Image, float]], at_least: int = 1) -> int:
    """Every received frame whose stamp is readable hides the faces of its source frame; at least
    ``at_least`` frames were checked (a run that checked nothing fails)."""
    checked = 0
    for image, _arrived in frames:
        index = read_stamp(image)
        if index is None:  # a face passing over the stamp corner blurs it
            continue
        original, boxes = clip.frames[index], clip.boxes[index]
        assert verify.background_psnr(original, image, boxes) > 25, "received frame does not match its source"
        for box in boxes:
            assert verify.face_hidden(original, image, box), f"face {box} of frame {index} is recognizable"
        checked += 1
    assert checked >= at_least, f"only {checked} of {len(frames)} received frames could be checked"
    return checked


def test_viewer_receives_the_anonymized_source(clip: Clip) -> None:
    async def main() -> list[tuple[Image, float]]:
        async with running(serve_config(), feed=clip_feed(clip)) as (server, base):
            frames = await receive(base, N_FRAMES)
            assert server.hub is not None and server.hub.processor.stats.frames_out >= N_FRAMES
            return frames

    frames = run(main())
    assert len(frames) == N_FRAMES
    assert assert_anonymized(clip, frames) >= N_FRAMES // 2


def test_several_viewers_share_one_pipeline(clip: Clip) -> None:
    feed = clip_feed(clip)
    frames_of = feed.frames
    yielded = [0]

    def counted(stop: Any) -> Any:
        for frame in frames_of(stop):
            yielded[0] += 1
            yield frame

    feed.frames = counted  # type: ignore[method-assign]

    async def main() -> tuple[list[list[tuple[Image, float]]], int, int]:
        async with running(serve_config(), feed=feed) as (server, base):
            assert server.hub is not None and len(server.hubs) == 1
            got = await asyncio.gather(receive(base, 10), receive(base, 10), receive(base, 10))
            stats = server.hub.processor.stats
            return list(got), stats.frames_in, yielded[0]

    received, processed, decoded = run(main())
    stamps = []
    for frames in received:
        assert len(frames) == 10
        assert_anonymized(clip, frames, at_least=5)
        stamps.append({read_stamp(image) for image, _ in frames} - {None})
    assert decoded - 1 <= processed <= decoded  # each source frame anonymized once, not once per viewer
    assert stamps[0] & stamps[1] & stamps[2], "the viewers did not watch the same anonymized frames"


def test_camera_in_comes_back_anonymized(clip: Clip) -> None:
    async def main() -> tuple[list[tuple[Image, float]], dict[str, Any]]:
        async with running(serve_config()) as (server, base):
            assert server.camera_mode
            camera = ClipTrack(clip)
            frames = await receive(base, N_FRAMES, send=camera)
            return frames, server.stats(None)

    frames, stats = run(main())
    assert stats["server"]["input"] == "camera"
    assert len(frames) == N_FRAMES
    assert assert_anonymized(clip, frames) >= N_FRAMES // 2


def test_token_is_checked_on_page_offer_stats_and_control(clip: Clip) -> None:
    token = "s3cret-token"

    async def main() -> None:
        async with running(serve_config(), ServeOptions(token=token), clip_feed(clip)) as (_server, base):
            assert (await get(base, "/"))[0] == 401
            assert (await get(base, "/?token=wrong"))[0] == 401
            status, html = await get(base, f"/?token={token}")
            assert status == 200 and "fawn" in html
            assert (await get(base, "/stats"))[0] == 401
            assert (await get(base, "/stats", {"Authorization": f"Bearer {token}"}))[0] == 200
            assert (await get(base, "/metrics"))[0] == 401
            assert (await get(base, "/metrics", {"Authorization": f"Bearer {token}"}))[0] == 200
            assert (await post_json(base, "/control", {"labels": True}))[0] == 401
            assert (await post_json(base, "/control", {"labels": True}, {"X-Fawn-Token": token}))[0] == 200
            pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
            try:
                status, body = await offer(pc, base)
                assert status == 401 and "token" in body["error"]
            finally:
                await pc.close()
            frames = await receive(base, 3, token=token)
            assert len(frames) == 3

    run(main())


def test_non_loopback_host_needs_a_token() -> None:
    with pytest.raises(ConfigError, match="token"):
        ServeOptions(host="0.0.0.0")
    assert ServeOptions(host="0.0.0.0", token="t").token == "t"
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.0.2.1")


def test_peer_limit(clip: Clip) -> None:
    async def main() -> None:
        async with running(serve_config(), ServeOptions(max_peers=1), clip_feed(clip)) as (server, base):
            first = RTCPeerConnection(RTCConfiguration(iceServers=[]))
            second = RTCPeerConnection(RTCConfiguration(iceServers=[]))
            try:
                assert (await offer(first, base))[0] == 200
                status, body = await offer(second, base)
                assert status == 503 and "too many peers" in body["error"]
                assert len(server.peers) == 1
            finally:
                await first.close()
                await second.close()

    run(main())


def test_bad_requests_get_json_errors(clip: Clip) -> None:
    async def main() -> None:
        async with running(serve_config(), feed=clip_feed(clip)) as (server, base):
            status, body = await post_json(base, "/offer", {"sdp": "not sdp", "type": "offer"})
            assert status == 400 and "error" in body
            status, body = await post_json(base, "/offer", {"sdp": "v=0", "type": "answer"})
            assert status == 400 and "offer" in body["error"]
            status, body = await post_json(base, "/offer", ["sdp"])
            assert status == 400
            status, body = await post_json(base, "/control", {"method": "nope"})
            assert status == 400 and "choices" in body["error"]
            status, body = await post_json(base, "/control", {"volume": 3})
            assert status == 400
            assert not server.peers  # nothing leaked from the failed offers
            status, text = await get(base, "/", {"Host": "attacker.example:8080"})
            assert status == 403  # DNS rebinding: a loopback server answers loopback names only
            import aiohttp

            async with aiohttp.ClientSession() as session:
                async with session.post(base + "/offer", data="sdp=x", headers={"Content-Type": "text/plain"}) as r:
                    assert r.status == 415  # no cross-site "simple" POSTs

    run(main())


def test_camera_server_rejects_an_offer_without_a_camera() -> None:
    async def main() -> None:
        async with running(serve_config()) as (server, base):
            pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
            try:
                status, body = await offer(pc, base)  # recvonly: nothing to anonymize
                assert status == 400 and "camera" in body["error"]
            finally:
                await pc.close()
            assert not server.peers

    run(main())


def test_control_switches_method_and_labels_at_run_time(clip: Clip) -> None:
    async def main() -> None:
        async with running(serve_config(), feed=clip_feed(clip)) as (server, base):
            assert server.hub is not None
            assert set(server.stats(None)["server"]["methods"]) == set(FILTERS)  # nothing heavy configured
            for method in FILTERS:
                status, body = await post_json(base, "/control", {"method": method})
                assert status == 200 and body["method"] == method
                assert type(server.hub.processor.anonymizer).__name__.lower().startswith(method[:4])
            status, body = await post_json(base, "/control", {"method": "diffusion"})
            assert status == 400 and "choices" in body["error"]  # not offered without diffusion.model
            status, body = await post_json(base, "/control", {"labels": True})
            assert status == 200 and body["labels"] is True
            controls = server.stats(None)["controls"]
            assert controls["labels"] is True and controls["method"] == FILTERS[-1]
            frames = await receive(base, 5)  # still streaming, still anonymized
            assert_anonymized(clip, frames, at_least=2)

    run(main())


def test_a_camera_peer_joins_with_the_method_in_force(clip: Clip) -> None:
    async def main() -> str:
        async with running(serve_config()) as (server, base):
            assert (await post_json(base, "/control", {"method": "solid"}))[0] == 200
            pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
            try:
                status, answer = await offer(pc, base, send=ClipTrack(clip))
                assert status == 200, answer
                processor = server.peers[answer["peer"]].processor
                assert processor is not None
                return type(processor.anonymizer).__name__
            finally:
                await pc.close()

    assert run(main()) == "SolidAnonymizer"


def test_control_switches_mode(clip: Clip) -> None:
    async def main() -> None:
        async with running(serve_config(), feed=clip_feed(clip)) as (server, base):
            assert server.hub is not None
            before = server.hub.processor.identity
            status, body = await post_json(base, "/control", {"mode": "all"})
            assert status == 200 and body["mode"] == "all"
            assert server.hub.processor.identity is not before
            frames = await receive(base, 5)
            assert_anonymized(clip, frames, at_least=2)

    run(main())


def _enroll_grace(folder: Path) -> Path:
    """Grace Hopper enrolled from another crop (rotated, scaled, JPEG) than the clip shows."""
    import cv2

    from streamer.core.config import load_config
    from streamer.io import demo
    from streamer.stages.identity.enroll import EnrollOptions, enroll

    image = demo.grace_hopper().image
    h, w = image.shape[:2]
    other = cv2.warpAffine(image, cv2.getRotationMatrix2D((w / 2, h / 2), 10, 0.6), (w, h), borderValue=(90, 90, 90))
    cv2.imwrite(str(folder / "grace.jpg"), other, [cv2.IMWRITE_JPEG_QUALITY, 60])
    enroll(EnrollOptions((str(folder / "grace.jpg"),), str(folder / "people.fawn")), load_config(None))
    return folder / "people.fawn"


def _overlap(a: Any, b: Any) -> bool:
    return bool(a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3])


def test_registered_people_are_shown_labelled_and_counted(clip: Clip, tmp_path: Path) -> None:
    """exempt mode with a gallery: Grace is shown (and named), the astronaut stays hidden."""
    cfg = serve_config(**{"identity.gallery": str(_enroll_grace(tmp_path))})

    async def main() -> tuple[list[tuple[Image, float]], set[str], dict[str, Any]]:
        async with running(cfg, ServeOptions(labels=True), clip_feed(clip)) as (server, base):
            assert (await post_json(base, "/control", {"mode": "exempt"}))[0] == 200
            seen: set[str] = set()

            async def watch() -> None:
                while True:
                    seen.update(server.stats(None)["stream"]["visible"])
                    await asyncio.sleep(0.05)

            watcher = asyncio.ensure_future(watch())
            try:
                frames = await receive(base, 50)
            finally:
                watcher.cancel()
            return frames, seen, server.stats(None)

    frames, seen, stats = run(main(), 90)
    assert seen == {"grace"} and stats["server"]["gallery"]
    shown = 0
    for image, _arrived in frames:
        index = read_stamp(image)
        if index is None or len(clip.boxes[index]) != 2 or _overlap(*clip.boxes[index]):
            continue
        astronaut, grace = clip.boxes[index]  # demo_spec's actors, in order
        assert verify.face_hidden(clip.frames[index], image, astronaut)
        shown += not verify.face_hidden(clip.frames[index], image, grace)
    assert shown >= 5, "the registered person was never shown"


def test_mode_target_without_a_gallery_is_refused(clip: Clip) -> None:
    async def main() -> None:
        async with running(serve_config(), feed=clip_feed(clip)) as (server, base):
            status, body = await post_json(base, "/control", {"mode": "target"})
            assert status == 400 and "gallery" in body["error"]
            assert server.controls.mode == "exempt"

    run(main())


def test_stats_report_the_stream(clip: Clip) -> None:
    async def main() -> dict[str, Any]:
        async with running(serve_config(), feed=clip_feed(clip)) as (server, base):
            await receive(base, 10)
            return server.stats(None)

    stats = run(main())
    stream = stats["stream"]
    assert stream["frames"] >= 10 and stream["fps"] > 0 and stream["faces"] >= 1
    assert stream["faces_anonymized"] > 0 and stream["visible"] == []
    assert stats["server"]["input"] == "source" and stats["server"]["ice_servers"] == []


def test_metrics_in_prometheus_text_format(clip: Clip) -> None:
    async def main() -> str:
        async with running(serve_config(), feed=clip_feed(clip)) as (_server, base):
            await receive(base, 10)
            status, body = await get(base, "/metrics")
            assert status == 200
            return body

    text = run(main())
    samples = {line.split(" ")[0]: float(line.split(" ")[1]) for line in text.splitlines() if not line.startswith("#")}
    assert samples['fawn_frames_total{stream="source"}'] >= 10
    assert samples['fawn_faces_anonymized_total{stream="source"}'] > 0
    assert samples['fawn_faces_visible_total{stream="source"}'] == 0
    assert samples["fawn_peers"] >= 0
    assert any(key.startswith('fawn_stage_ms{stream="source",stage="detect"}') for key in samples)
    assert "# TYPE fawn_frames_total counter" in text


def test_cli_serves_and_stops_on_sigint(tmp_path: Any) -> None:
    """``fawn serve demo --port 0`` prints its URL, answers, and exits 0 on SIGINT."""
    code = (
        "import argparse, sys; from streamer.cli.serve import add_serve_parser;"
        "p = argparse.ArgumentParser(); add_serve_parser(p.add_subparsers());"
        "a = p.parse_args(sys.argv[1:]); sys.exit(a.func(a))"
    )
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [sys.executable, "-c", code, "serve", "demo", "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    try:
        assert proc.stdout is not None
        line = readline(proc.stdout, timeout=60)
        assert line.startswith("fawn serve: open http://127.0.0.1:"), line
        url = line.split("open ", 1)[1].strip()
        base, _, token = url.partition("/?token=")
        assert len(token) >= 16  # a token on loopback too: no local user changes the controls without it

        async def check() -> None:
            status, body = await get(base, "/healthz")
            assert status == 200 and '"ok": true' in body
            assert (await post_json(base, "/control", {"mode": "all"}))[0] == 401
            assert (await post_json(base, "/control", {"mode": "all", "token": "wrong"}))[0] == 401
            assert (await get(base, "/"))[0] == 401
            status, body = await post_json(base, "/control", {"mode": "all"}, {"Authorization": f"Bearer {token}"})
            assert status == 200 and body["mode"] == "all"

        run(check(), 20)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


def readline(stream: Any, timeout: float) -> str:
    """One line from a pipe, or "" after ``timeout`` seconds."""
    import selectors

    with selectors.DefaultSelector() as selector:
        selector.register(stream, selectors.EVENT_READ)
        if not selector.select(timeout):
            return ""
    return str(stream.readline())


def test_cli_rejects_a_port_in_use() -> None:
    import socket

    from streamer.web.server import ServeError, run_server

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]

        async def main() -> None:
            await run_server(serve_config(), ServeOptions(port=port), asyncio.Event())

        with pytest.raises(ServeError, match="cannot listen"):
            run(main(), 30)  # bounded: fails at once instead of waiting for the port


def test_several_sources_served_side_by_side(clip: Clip) -> None:
    """Two sources, one process: each viewer picks one, both come anonymized, per-stream stats and metrics."""
    small = make_clip(320, 240, seconds=2.0)
    feeds = {"lobby": clip_feed(clip), "door": clip_feed(small)}
    options = ServeOptions(sources=("lobby.mp4", "door.mp4"), names=("lobby", "door"))

    async def main() -> tuple[Any, ...]:
        async with running(serve_config(), options, feeds) as (server, base):  # type: ignore[arg-type]
            lobby, door = await asyncio.gather(receive(base, 10, stream="lobby"), receive(base, 10, stream="door"))
            missing = await post_json(base, "/offer", {"sdp": "v=0", "type": "offer", "stream": "garage"})
            _, stats = await get(base, "/stats?stream=door")
            _, metrics = await get(base, "/metrics")
            health = await get(base, "/healthz")
            assert server.shared is not None
            return lobby, door, missing, stats, metrics, health, server.shared.detector.batches

    lobby, door, missing, stats, metrics, health, batches = run(main())
    assert {f[0].shape for f in lobby} == {(480, 640, 3)} and {f[0].shape for f in door} == {(240, 320, 3)}
    assert assert_anonymized(clip, lobby) >= 5
    checked = 0
    for image, _ in door:  # the small clip's stamps are at the same 8 px blocks
        index = read_stamp(image)
        if index is not None:
            checked += 1
            assert all(verify.face_hidden(small.frames[index], image, box) for box in small.boxes[index])
    assert checked >= 5
    assert missing[0] == 404 and "lobby, door" in missing[1]["error"]
    import json

    data = json.loads(stats)
    assert data["server"]["streams"] == ["lobby", "door"] and data["stream"]["frames"] > 0
    assert set(data["streams"]) == {"lobby", "door"}
    assert 'fawn_frames_total{stream="lobby"}' in metrics and 'fawn_frames_total{stream="door"}' in metrics
    assert health[0] == 200 and json.loads(health[1])["streams"] == {"lobby": "running", "door": "running"}
    assert batches > 0  # both hubs went through the one shared detector


def test_serve_rejects_sources_and_config_streams_together(tmp_path: Path) -> None:
    from streamer.cli.main import main

    config = tmp_path / "s.yaml"
    config.write_text("streams:\n  - source: demo\n")
    assert main(["serve", "demo", "-c", str(config)]) == 2


def test_page_is_served_whatever_the_process_locale(clip: Clip) -> None:
    """The page holds non-ASCII text (an em dash, an ellipsis): read as UTF-8, not in the process
    locale's encoding. In CI a library left the C locale set (ASCII) and GET / answered 500."""
    import locale

    previous = locale.setlocale(locale.LC_CTYPE)
    try:
        locale.setlocale(locale.LC_CTYPE, "C")
        if sys.flags.utf8_mode:
            pytest.fail("this test needs Python without UTF-8 mode (PYTHONUTF8 unset)")
        assert locale.getpreferredencoding(False).upper() not in ("UTF-8", "UTF8")

        async def main() -> tuple[int, str]:
            async with running(serve_config(), feed=clip_feed(clip)) as (_server, base):
                return await get(base, "/")

        status, body = run(main())
    finally:
        locale.setlocale(locale.LC_CTYPE, previous)
    assert status == 200 and "fawn — live anonymized preview" in body
