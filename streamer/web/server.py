"""The ``fawn serve`` web server: a page, WebRTC signaling, live stats and run-time controls.

Routes (JSON unless noted):

- ``GET /`` the page (HTML); ``GET /static/...`` its script and style.
- ``POST /offer`` ``{"sdp", "type": "offer"[, "token"]}`` -> ``{"sdp", "type": "answer", "peer"}``
  (aiortc's signaling convention: one offer, one answer, no trickle ICE).
  With a SOURCE the answer sends the shared anonymized stream; without one the
  offer must send a camera track, which comes back anonymized.
- ``GET /stats[?peer=ID]`` fps, latency, faces, tracks, registered people shown, controls.
- ``POST /control`` ``{"method"?, "mode"?, "labels"?}`` switches at run time, for every stream.
- ``GET /healthz`` ``{"ok", "loading", "streams": {name: state}, "errors": {name: why}}``:
  200 when every source runs, else 503.

Availability: the server listens at once; models load in an executor while the
page and ``/healthz`` answer (``/offer`` and ``/control`` say 503 until then). A
camera (``rtsp://``, ``cam:N``) that cannot be reached does not stop the
server: its stream is reported ``retrying`` and reopened in the background
while the other streams run.

Security: a token (``Authorization: Bearer``, ``X-Fawn-Token``, ``?token=`` or the
JSON ``token`` field) is required on every route but ``/healthz`` and the static
files whenever one is configured (``fawn serve`` makes one unless ``--no-token``
on loopback), and always when the server binds a non-loopback address. A
loopback-bound server also rejects requests whose ``Host`` is not a loopback
name (DNS rebinding). POST bodies must be JSON (no cross-site simple requests).
No STUN/TURN server is contacted unless configured. Source URLs are reported
without their passwords.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hmac
import importlib
import ipaddress
import json
import logging
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from streamer.core.config import METHODS, MODES, PipelineConfig
from streamer.core.errors import ConfigError, FawnError, MissingExtraError
from streamer.core.redact import redact_text, redact_url
from streamer.core.stats import RunStats
from streamer.io.sources import is_live_spec
from streamer.runtime.metrics import prometheus_text
from streamer.runtime.processor import FrameProcessor, SharedModels, build_processor

try:
    from aiohttp import web
    from aiortc import (
        MediaStreamTrack,
        RTCConfiguration,
        RTCIceServer,
        RTCPeerConnection,
        RTCSessionDescription,
    )
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise MissingExtraError(exc.name or "aiortc", "webrtc") from None

from streamer.web.tracks import (
    BroadcastHub,
    CameraTrack,
    FrameFeed,
    FrameSummary,
    SourceFeed,
)

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static"
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1", "[::1]")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ServeError(FawnError):
    """The server cannot start (address in use, bad options)."""


HEALTHY_STATES = ("running", "ended")


@dataclass(frozen=True)
class ServeOptions:
    """How ``fawn serve`` listens. No source: browsers send their camera in.

    ``sources``: several sources served at once (``source`` is the one-source
    form), named by ``names`` (default: ``source`` for one, ``stream-<i>`` for more).
    """

    source: str | None = None
    sources: tuple[str, ...] = ()
    names: tuple[str, ...] = ()
    host: str = "127.0.0.1"
    port: int = 8080
    token: str | None = None
    max_peers: int = 4
    ice_servers: tuple[str, ...] = ()
    ice_username: str | None = None
    ice_credential: str | None = None
    labels: bool = False
    connect_timeout: float = 20.0

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"--port: {self.port} is not a port (0-65535)")
        if self.max_peers < 1:
            raise ConfigError("--max-peers: must be >= 1")
        if not is_loopback(self.host) and not self.token:
            raise ConfigError(f"binding {self.host} needs a token (--token, or let fawn serve generate one)")
        if self.source is not None and self.sources:
            raise ConfigError("give source or sources, not both")
        if self.names and len(self.names) != len(self.all_sources()):
            raise ConfigError(f"{len(self.names)} stream names for {len(self.all_sources())} sources")
        if len(set(self.stream_names())) != len(self.stream_names()):
            raise ConfigError("stream names must be unique")

    def all_sources(self) -> tuple[str, ...]:
        return self.sources or ((self.source,) if self.source is not None else ())

    def stream_names(self) -> list[str]:
        sources = self.all_sources()
        if self.names:
            return list(self.names)
        return ["source"] if len(sources) == 1 else [f"stream-{i}" for i in range(len(sources))]


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def new_token() -> str:
    return secrets.token_urlsafe(18)


def include_loopback_candidates() -> None:
    """Let aioice offer 127.0.0.1 too (it never does), for a browser on this machine.

    Without it a loopback-bound server on a machine whose only interface is
    ``lo`` has no ICE candidate at all. Process-wide and idempotent.
    """
    import aioice.ice

    original = aioice.ice.get_host_addresses
    if getattr(original, "fawn_loopback", False):
        return

    def with_loopback(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        addresses = list(original(use_ipv4, use_ipv6))
        if use_ipv4 and "127.0.0.1" not in addresses:
            addresses.append("127.0.0.1")
        return addresses

    with_loopback.fawn_loopback = True  # type: ignore[attr-defined]
    aioice.ice.get_host_addresses = with_loopback


@dataclass
class Controls:
    """Run-time settings shared by every stream; the pipeline threads read them as they go."""

    method: str
    mode: str
    labels: bool


@dataclass
class Peer:
    id: str
    pc: RTCPeerConnection
    kind: str  # "viewer" or "camera"
    stream: str | None = None  # the source a viewer watches
    track: MediaStreamTrack | None = None
    processor: FrameProcessor | None = None
    created: float = field(default_factory=time.monotonic)


class RequestError(Exception):
    """A request the server answers with an HTTP error and a JSON ``{"error": ...}`` body."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class FawnServer:
    """State of one ``fawn serve``: a broadcast pipeline per source, or per-peer camera pipelines.

    Every pipeline shares one set of model sessions (:class:`SharedModels`): the
    detector batches the frames that several sources or cameras submit together.
    """

    def __init__(
        self, cfg: PipelineConfig, options: ServeOptions, feed: FrameFeed | dict[str, FrameFeed] | None = None
    ) -> None:
        self.cfg = cfg
        self.options = options
        self.controls = Controls(cfg.anonymizer.method, cfg.identity.mode, options.labels)
        self.peers: dict[str, Peer] = {}
        self.hubs: dict[str, BroadcastHub] = {}
        self.shared: SharedModels | None = None
        if isinstance(feed, dict):
            self._feeds = dict(feed)
        else:  # one feed (tests, benchmarks) stands for the one source
            self._feeds = {} if feed is None else {(options.stream_names() or ["source"])[0]: feed}
        self._tasks: set[asyncio.Task[Any]] = set()
        self.loading: asyncio.Task[None] | None = None  # the model load, in the background
        self._closing = False
        self._control_lock = asyncio.Lock()

    @property
    def hub(self) -> BroadcastHub | None:
        """The first (with one source: the) broadcast hub; None in camera mode or while loading."""
        return next(iter(self.hubs.values()), None)

    @property
    def token_required(self) -> bool:
        return bool(self.options.token)

    @property
    def camera_mode(self) -> bool:
        return not self._feeds and not self.options.all_sources()

    @property
    def loaded(self) -> bool:
        """The models are loaded and every broadcast thread started."""
        done = self.loading is not None and self.loading.done() and not self.loading.cancelled()
        return done and self.loading is not None and self.loading.exception() is None

    def stream_names(self) -> list[str]:
        return list(self._feeds) or self.options.stream_names()

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the sources, load the models, start a broadcast thread per source. Errors stop the server."""
        await self.open_sources()
        self.begin_loading()
        await self.wait_loaded()

    async def open_sources(self) -> None:
        """Open file sources now (a bad path fails before the server listens); cameras open on their
        broadcast thread, which keeps retrying an unreachable one."""
        loop = asyncio.get_running_loop()
        if is_loopback(self.options.host):
            include_loopback_candidates()
        if self._feeds:
            return
        for name, spec in zip(self.options.stream_names(), self.options.all_sources()):
            if is_live_spec(spec):
                self._feeds[name] = SourceFeed(spec, self.cfg.io, open_now=False)
            else:
                self._feeds[name] = await loop.run_in_executor(None, SourceFeed, spec, self.cfg.io)

    def begin_loading(self) -> None:
        """Load the models in an executor (the event loop keeps answering), then start the broadcasts."""
        if self.loading is None:
            self.loading = asyncio.ensure_future(self._load())

    async def wait_loaded(self) -> None:
        """Until the models are loaded; raises what made loading fail."""
        assert self.loading is not None, "begin_loading() first"
        await asyncio.shield(self.loading)

    async def _load(self) -> None:
        loop = asyncio.get_running_loop()
        self.shared = await loop.run_in_executor(None, SharedModels, self.cfg, len(self._feeds))
        for name, feed in self._feeds.items():
            if self._closing:
                return
            # k-Same gallery embedding and diffusion loads happen here: off the event loop
            processor = await loop.run_in_executor(None, build_processor, self.cfg, RunStats(), self.shared)
            retry = self._retry_every() if isinstance(feed, SourceFeed) and feed.live else None
            hub = BroadcastHub(feed, processor, labels=lambda: self.controls.labels, retry_every=retry, name=name)
            self.hubs[name] = hub
            hub.start(loop)
        log.info("serving %s", ", ".join(self.hubs) if self.hubs else "browser cameras")

    def _retry_every(self) -> float:
        """Seconds between background reopen attempts of an unreachable camera."""
        return max(self.cfg.io.reconnect_max_backoff, 0.05)

    async def close(self) -> None:
        """Stop everything and release it: peers, broadcast threads, every processor, the shared models."""
        self._closing = True
        if self.loading is not None:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.shield(self.loading)  # a load in an executor cannot be cancelled: let it end
        await asyncio.gather(*(self._close_peer(pid) for pid in list(self.peers)))
        for task in list(self._tasks):
            task.cancel()
        loop = asyncio.get_running_loop()
        await asyncio.gather(*(loop.run_in_executor(None, hub.stop) for hub in self.hubs.values()))
        await asyncio.gather(*(loop.run_in_executor(None, _close_quietly, hub.processor) for hub in self.hubs.values()))
        for name, feed in self._feeds.items():
            if name not in self.hubs:  # opened, but loading failed before its broadcast started
                feed.close()
        if self.shared is not None:
            await loop.run_in_executor(None, self.shared.close)

    def processors(self) -> list[FrameProcessor]:
        found = [hub.processor for hub in self.hubs.values()]
        return found + [p.processor for p in self.peers.values() if p.processor is not None]

    # -- security ----------------------------------------------------------------------------

    def check_token(self, request: web.Request, body: dict[str, Any] | None = None) -> None:
        expected = self.options.token
        if not expected:
            return
        given = (
            _bearer(request.headers.get("Authorization", ""))
            or request.headers.get("X-Fawn-Token")
            or request.query.get("token")
            or (body or {}).get("token")
        )
        if not isinstance(given, str) or not hmac.compare_digest(given.encode(), expected.encode()):
            raise RequestError(401, "a valid token is required (open the URL fawn serve printed)")

    def host_allowed(self, request: web.Request) -> bool:
        if not is_loopback(self.options.host):
            return True
        host = request.host.rsplit(":", 1)[0] if not request.host.endswith("]") else request.host
        return host in LOOPBACK_NAMES

    # -- signaling ---------------------------------------------------------------------------

    async def offer(self, body: dict[str, Any]) -> dict[str, Any]:
        sdp, kind = body.get("sdp"), body.get("type")
        if not isinstance(sdp, str) or kind != "offer":
            raise RequestError(400, 'expected JSON {"sdp": "...", "type": "offer"}')
        self.require_loaded()
        if len(self.peers) >= self.options.max_peers:
            raise RequestError(503, f"too many peers (limit {self.options.max_peers}): try again later")
        stream = self._stream_of(body)
        peer = Peer(uuid.uuid4().hex[:12], RTCPeerConnection(self._rtc_config()), "camera" if self.camera_mode else "viewer",
                    stream)
        self.peers[peer.id] = peer  # reserve the slot before any await
        try:
            return await self._answer(peer, sdp)
        except RequestError:
            await self._close_peer(peer.id)
            raise
        except (ValueError, AssertionError) as exc:  # aiortc rejects malformed SDP with these
            await self._close_peer(peer.id)
            raise RequestError(400, f"bad offer: {exc}") from None
        except BaseException:
            await self._close_peer(peer.id)
            raise

    def require_loaded(self) -> None:
        if not self.loaded:
            raise RequestError(503, "fawn is still loading its models: try again in a moment")

    def _stream_of(self, body: dict[str, Any]) -> str | None:
        """The source a viewer asked for (``"stream"``; default: the first one)."""
        if self.camera_mode:
            return None
        name = body.get("stream", next(iter(self.hubs)))
        self._hub(name)
        return str(name)

    def _hub(self, name: Any) -> BroadcastHub:
        """The hub of source ``name``; a 404 naming the valid streams otherwise."""
        if name not in self.hubs:
            raise RequestError(404, f"no stream {name!r} (streams: {', '.join(self.hubs)})")
        return self.hubs[name]

    async def _answer(self, peer: Peer, sdp: str) -> dict[str, Any]:
        pc = peer.pc
        await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
        if peer.kind == "camera":
            await self._attach_camera(peer)
        else:
            self._attach_viewer(peer)
        pc.on("connectionstatechange", lambda: self._on_state(peer.id))
        await pc.setLocalDescription(await pc.createAnswer())
        self._spawn(self._connect_deadline(peer.id))
        log.info("peer %s (%s) joined: %d/%d", peer.id, peer.kind, len(self.peers), self.options.max_peers)
        desc = pc.localDescription
        return {"sdp": desc.sdp, "type": desc.type, "peer": peer.id}

    def _attach_viewer(self, peer: Peer) -> None:
        assert peer.stream is not None
        hub = self.hubs[peer.stream]
        video = [t for t in peer.pc.getTransceivers() if t.kind == "video"]
        if not video:
            raise RequestError(400, "the offer has no video: add a recvonly video transceiver")
        for transceiver in peer.pc.getTransceivers():
            transceiver.direction = "inactive"  # nothing is received from viewers
        peer.track = hub.subscribe()
        video[0].sender.replaceTrack(peer.track)
        video[0].direction = "sendonly"

    async def _attach_camera(self, peer: Peer) -> None:
        incoming = [t for t in peer.pc.getTransceivers() if t.kind == "video" and t.receiver.track is not None]
        if not incoming:
            raise RequestError(400, "this server has no SOURCE: the offer must send a camera (video) track")
        # aiortc keeps the offered direction privately; a send-only camera would never be read back
        if getattr(incoming[0], "_offerDirection", "sendrecv") != "sendrecv":
            raise RequestError(400, "the camera transceiver must be sendrecv: the anonymized video comes back on it")
        for transceiver in peer.pc.getTransceivers():
            transceiver.direction = "inactive"  # audio and extra tracks are ignored
        peer.processor = await asyncio.get_running_loop().run_in_executor(None, self._camera_processor)
        transceiver = incoming[0]
        peer.track = CameraTrack(transceiver.receiver.track, peer.processor, labels=lambda: self.controls.labels)
        transceiver.sender.replaceTrack(peer.track)
        transceiver.direction = "sendrecv"

    def _camera_processor(self) -> FrameProcessor:
        """A processor for one camera peer, with the method and mode in force now (shared models)."""
        assert self.shared is not None
        cfg = dataclasses.replace(
            self.cfg,
            anonymizer=dataclasses.replace(self.cfg.anonymizer, method=self.controls.method),
            identity=dataclasses.replace(self.cfg.identity, mode=self.controls.mode),
        )
        self._shared_embedder(cfg.identity)
        self.shared.detector.join()
        try:
            return build_processor(cfg, RunStats(), self.shared)
        except BaseException:
            self.shared.detector.leave()
            raise

    def _shared_embedder(self, identity: Any) -> Any:
        """The one identity embedder every processor shares (loaded on first need), or None without a gallery."""
        assert self.shared is not None
        if identity.gallery is None or identity.mode == "all":
            return None
        if self.shared.embedder is None:
            from streamer.stages.identity.embed import create_embedder

            self.shared.embedder = create_embedder(identity)
        return self.shared.embedder

    def _rtc_config(self) -> RTCConfiguration:
        opts = self.options
        servers = [
            RTCIceServer(urls=url, username=opts.ice_username, credential=opts.ice_credential)
            if url.startswith(("turn:", "turns:"))
            else RTCIceServer(urls=url)
            for url in opts.ice_servers
        ]
        return RTCConfiguration(iceServers=servers)

    def _browser_ice_servers(self) -> list[dict[str, str]]:
        """The configured STUN/TURN servers, for the page's RTCPeerConnection (none by default)."""
        servers = []
        for server in self._rtc_config().iceServers or []:
            entry = {"urls": str(server.urls)}
            if server.username and server.credential:
                entry |= {"username": server.username, "credential": server.credential}
            servers.append(entry)
        return servers

    def _on_state(self, peer_id: str) -> None:
        peer = self.peers.get(peer_id)
        if peer is not None and peer.pc.connectionState in ("failed", "closed"):
            self._spawn(self._close_peer(peer_id))

    async def _connect_deadline(self, peer_id: str) -> None:
        await asyncio.sleep(self.options.connect_timeout)
        peer = self.peers.get(peer_id)
        if peer is not None and peer.pc.connectionState != "connected":
            log.info("peer %s did not connect within %.0fs", peer_id, self.options.connect_timeout)
            await self._close_peer(peer_id)

    async def _close_peer(self, peer_id: str) -> None:
        peer = self.peers.pop(peer_id, None)
        if peer is None:
            return
        if peer.track is not None:
            peer.track.stop()
        if peer.processor is not None and self.shared is not None:
            self.shared.detector.leave()
        # shielded: cancelling a waiter of aiortc's close() would cancel its internal future
        await asyncio.shield(peer.pc.close())
        if peer.processor is not None:  # its identity audit log, diffusion worker, ...
            await asyncio.shield(asyncio.get_running_loop().run_in_executor(None, _close_quietly, peer.processor))
        log.info("peer %s left: %d/%d", peer_id, len(self.peers), self.options.max_peers)

    def _spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- controls ----------------------------------------------------------------------------

    async def control(self, body: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(body) - {"method", "mode", "labels", "token"})
        if unknown:
            raise RequestError(400, f"unknown control {unknown[0]!r} (valid: method, mode, labels)")
        self.require_loaded()
        async with self._control_lock:  # one switch at a time: each replaces (and closes) stages
            return await self._control(body)

    async def _control(self, body: dict[str, Any]) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        if "method" in body:
            method = _choice(body["method"], "method", available_methods(self.cfg))
            await loop.run_in_executor(None, self._set_method, self.processors(), method)
            self.controls.method = method
            log.info("method -> %s", method)
        if "mode" in body:
            mode = _choice(body["mode"], "mode", MODES)
            await loop.run_in_executor(None, self._set_identity, self.processors(), mode)
            self.controls.mode = mode
            log.info("mode -> %s", mode)
        if "labels" in body:
            if not isinstance(body["labels"], bool):
                raise RequestError(400, "labels: expected true or false")
            self.controls.labels = body["labels"]
        return dataclasses.asdict(self.controls)

    def _set_method(self, processors: list[FrameProcessor], method: str) -> None:
        """Give each processor a new anonymizer (one each: they may keep state); the old ones are closed."""
        cfg = dataclasses.replace(self.cfg, anonymizer=dataclasses.replace(self.cfg.anonymizer, method=method))
        anonymizers = _make_each(processors, lambda _p: make_anonymizer(cfg), f"method {method!r}")
        for processor, anonymizer in zip(processors, anonymizers):
            old, processor.anonymizer = processor.anonymizer, anonymizer
            _close_quietly(old)

    def _set_identity(self, processors: list[FrameProcessor], mode: str) -> None:
        """Replace each processor's identity resolver (tracks start pending again: fail closed).

        The resolvers share the server's one embedder; the old resolvers are closed (their audit logs).
        """
        factory = identity_factory()
        if factory is None:
            raise RequestError(501, "switching mode needs streamer.stages.identity.resolver.create_identity (not in this build)")
        identity_cfg = dataclasses.replace(self.cfg.identity, mode=mode)
        try:
            embedder = self._shared_embedder(identity_cfg)
        except FawnError as exc:
            raise RequestError(400, f"mode {mode!r}: {exc}") from None
        resolvers = _make_each(processors, lambda p: factory(identity_cfg, p.stats, embedder), f"mode {mode!r}")
        for processor, resolver in zip(processors, resolvers):
            old, processor.identity = processor.identity, resolver
            _close_quietly(old)

    # -- stats -------------------------------------------------------------------------------

    def stats(self, peer_id: str | None, stream: str | None = None) -> dict[str, Any]:
        peer = self.peers.get(peer_id or "")
        stream = stream or (peer.stream if peer is not None else None)
        return {
            "server": {
                "input": "camera" if self.camera_mode else "source",
                "source": ", ".join(redact_url(s) for s in self.options.all_sources()) or None,
                "streams": self.stream_names() if not self.camera_mode else [],
                "loading": not self.loaded,
                "methods": list(available_methods(self.cfg)),
                "modes": list(MODES),
                "gallery": self.cfg.identity.gallery is not None,
                "mode_switching": identity_factory() is not None,
                "token_required": self.token_required,
                "max_peers": self.options.max_peers,
                "ice_servers": self._browser_ice_servers(),
            },
            "controls": dataclasses.asdict(self.controls),
            "peers": len(self.peers),
            "stream": self._stream_stats(peer_id, stream),
            "streams": {name: self._hub_stats(hub) for name, hub in self.hubs.items()} or {
                name: {"state": "starting", "error": None, "source": self._source_name(name)}
                for name in (self.stream_names() if not self.camera_mode else [])
            },
        }

    def health(self) -> tuple[bool, dict[str, str]]:
        """(loaded and every source running or ended, each source's state).

        States: ``starting`` (loading, or a camera's first connection), ``running``,
        ``retrying`` (unreachable or lost: reopened in the background), ``failed``, ``ended``.
        """
        if not self.loaded:
            return False, {name: "starting" for name in (self.stream_names() if not self.camera_mode else [])}
        states = {name: hub.state for name, hub in self.hubs.items()}
        return all(state in HEALTHY_STATES for state in states.values()), states

    def health_report(self) -> dict[str, Any]:
        """The ``/healthz`` body: ok, loading, each stream's state and why it is not running (redacted)."""
        ok, states = self.health()
        errors = {name: redact_text(hub.error) for name, hub in self.hubs.items() if hub.error}
        return {"ok": ok, "loading": not self.loaded, "streams": states, "errors": errors}

    def _source_name(self, name: str) -> str | None:
        feed = self._feeds.get(name)
        if isinstance(feed, SourceFeed):
            return feed.name
        sources = dict(zip(self.options.stream_names(), self.options.all_sources()))
        return redact_url(sources[name]) if name in sources else None

    def metrics(self) -> str:
        """Prometheus text: every source's stream and every camera peer's stream."""
        streams: dict[str, RunStats] = {name: hub.processor.stats for name, hub in self.hubs.items()}
        for peer_id, peer in self.peers.items():
            if peer.processor is not None:
                streams[f"camera-{peer_id}"] = peer.processor.stats
        return prometheus_text(streams, [("fawn_peers", "Connected WebRTC peers.", len(self.peers))])

    def _stream_stats(self, peer_id: str | None, stream: str | None = None) -> dict[str, Any] | None:
        if self.hubs:
            return self._hub_stats(self._hub(stream) if stream is not None else next(iter(self.hubs.values())))
        if not self.camera_mode:
            return None  # still loading
        peer = self.peers.get(peer_id or "")
        if peer is None or peer.processor is None or not isinstance(peer.track, CameraTrack):
            return None
        return stream_stats(peer.processor.stats, peer.track.summary)


    def _hub_stats(self, hub: BroadcastHub) -> dict[str, Any]:
        extra = {
            "viewers": hub.viewers, "ended": hub.ended, "state": hub.state, "retries": hub.retries,
            "error": redact_text(hub.error) if hub.error else None, "source": self._source_name(hub.name),
        }
        return stream_stats(hub.processor.stats, hub.summary) | extra


def stream_stats(stats: RunStats, summary: FrameSummary) -> dict[str, Any]:
    return {
        "fps": round(stats.recent_fps(), 2),
        "latency_ms": round(stats.latency.recent_ms(), 1),
        "frames": stats.frames_out,
        "dropped": stats.dropped,
        "faces": summary.faces,
        "tracks": summary.tracks,
        "visible": list(summary.visible_names),
        "faces_anonymized": stats.faces_anonymized,
    }


def available_methods(cfg: PipelineConfig) -> tuple[str, ...]:
    """The methods the page offers: the filters always; k-Same and diffusion when configured.

    (``ksame.faces`` names its face photos; ``diffusion.model`` its model folder.)
    """
    configured = {
        "ksame": getattr(getattr(cfg, "ksame", None), "faces", None) is not None,
        "diffusion": getattr(getattr(cfg, "diffusion", None), "model", None) is not None,
    }
    return tuple(m for m in METHODS if configured.get(m, True) or m == cfg.anonymizer.method)


def make_anonymizer(cfg: PipelineConfig) -> Any:
    """``create_anonymizer`` for ``cfg.anonymizer.method`` with the sections the heavier methods read."""
    from streamer.stages.anonymize import create_anonymizer

    return create_anonymizer(cfg.anonymizer, ksame=cfg.ksame, identity=cfg.identity, diffusion=cfg.diffusion)


def identity_factory() -> Callable[..., Any] | None:
    """``streamer.stages.identity.resolver.create_identity(cfg.identity, stats)`` when this build has it."""
    factory = getattr(importlib.import_module("streamer.stages.identity.resolver"), "create_identity", None)
    return factory if callable(factory) else None


def _make_each(processors: list[FrameProcessor], make: Callable[[FrameProcessor], Any], what: str) -> list[Any]:
    """One new stage per processor; if one cannot be made, close those already made (a 400 names why)."""
    made: list[Any] = []
    try:
        for processor in processors:
            made.append(make(processor))
    except FawnError as exc:
        for stage in made:
            _close_quietly(stage)
        raise RequestError(400, f"{what}: {exc}") from None
    return made


def _close_quietly(stage: Any) -> None:
    """``stage.close()`` when it has one; an error is logged (closing must not stop the others)."""
    close = getattr(stage, "close", None)
    if close is None:
        return
    try:
        close()
    except Exception:  # noqa: BLE001 - logged; the next stage still gets closed
        log.exception("closing %s failed", type(stage).__name__)


def _choice(value: Any, name: str, choices: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise RequestError(400, f"{name}: {value!r} is not valid (choices: {', '.join(choices)})")
    return value


def _bearer(header: str) -> str | None:
    scheme, _, value = header.partition(" ")
    return value.strip() or None if scheme.lower() == "bearer" else None


# -------------------------------------------------------------------------------------------
# aiohttp wiring


async def _json_body(request: web.Request) -> dict[str, Any]:
    if request.content_type != "application/json":
        raise RequestError(415, "send the body as application/json")
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise RequestError(400, "the body is not valid JSON") from None
    if not isinstance(body, dict):
        raise RequestError(400, "the body must be a JSON object")
    return body


def create_app(server: FawnServer) -> web.Application:
    """The aiohttp application for ``server``; starting it starts the pipeline, cleanup closes peers."""
    app = web.Application(middlewares=[_guard(server)], client_max_size=256 * 1024)
    routes = Routes(server)
    app.router.add_get("/", routes.page)
    app.router.add_get("/healthz", routes.healthz)
    app.router.add_get("/stats", routes.stats)
    app.router.add_get("/metrics", routes.metrics)
    app.router.add_post("/offer", routes.offer)
    app.router.add_post("/control", routes.control)
    app.router.add_static("/static/", STATIC_DIR, show_index=False)

    async def on_startup(_app: web.Application) -> None:
        await server.open_sources()  # a bad file fails here, before the server listens
        server.begin_loading()  # the models load while the page and /healthz already answer

    async def on_cleanup(_app: web.Application) -> None:
        await server.close()

    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
    return app


def _guard(server: FawnServer) -> Any:
    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not server.host_allowed(request):
            return web.json_response({"error": "unexpected Host header"}, status=403)
        try:
            response = await handler(request)
        except RequestError as exc:
            response = web.json_response({"error": str(exc)}, status=exc.status)
        except web.HTTPException:
            raise
        except Exception:  # noqa: BLE001 - a JSON 500, logged, and the server keeps serving
            log.exception("%s %s failed", request.method, request.path)
            response = web.json_response({"error": "internal error (see the server log)"}, status=500)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        response.headers.setdefault("Cache-Control", "no-store")
        return response

    return guard


PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "media-src 'self' blob: mediastream:; connect-src 'self'; frame-ancestors 'none'"
)


class Routes:
    def __init__(self, server: FawnServer) -> None:
        self.server = server

    async def page(self, request: web.Request) -> web.StreamResponse:
        try:
            self.server.check_token(request)
        except RequestError:
            return web.Response(status=401, text="fawn: a token is required: open the URL fawn serve printed.\n")
        html = (STATIC_DIR / "index.html").read_text(encoding="utf-8")
        return web.Response(text=html, content_type="text/html", headers={"Content-Security-Policy": PAGE_CSP})

    async def healthz(self, _request: web.Request) -> web.StreamResponse:
        report = self.server.health_report()
        return web.json_response(report, status=200 if report["ok"] else 503)

    async def stats(self, request: web.Request) -> web.StreamResponse:
        self.server.check_token(request)
        return web.json_response(self.server.stats(request.query.get("peer"), request.query.get("stream")))

    async def metrics(self, request: web.Request) -> web.StreamResponse:
        self.server.check_token(request)
        return web.Response(text=self.server.metrics(), content_type="text/plain", charset="utf-8")

    async def offer(self, request: web.Request) -> web.StreamResponse:
        body = await _json_body(request)
        self.server.check_token(request, body)
        return web.json_response(await self.server.offer(body))

    async def control(self, request: web.Request) -> web.StreamResponse:
        body = await _json_body(request)
        self.server.check_token(request, body)
        return web.json_response(await self.server.control(body))


# -------------------------------------------------------------------------------------------
# running


async def run_server(
    cfg: PipelineConfig,
    options: ServeOptions,
    stop: asyncio.Event,
    ready: Callable[[str], None] | None = None,
    feed: FrameFeed | None = None,
) -> None:
    """Serve until ``stop`` is set. ``ready`` gets the page URL (with the token) once the models are loaded.

    The server listens before the models load: the page and ``/healthz`` answer meanwhile.
    A model that fails to load stops the server with its error.
    """
    server = FawnServer(cfg, options, feed)
    runner = web.AppRunner(create_app(server), handle_signals=False, access_log=None)
    try:
        await runner.setup()  # runs on_startup: opens file sources, starts loading the models
        site = web.TCPSite(runner, options.host, options.port)
        try:
            await site.start()
        except OSError as exc:
            raise ServeError(f"cannot listen on {options.host}:{options.port}: {exc.strerror or exc}") from None
        port = _bound_port(runner, options.port)
        log.info("listening on %s (loading the models)", page_url(options, port, with_token=False))
        if not await _loaded_or_stopped(server, stop):
            return
        if ready is not None:
            ready(page_url(options, port))
        await stop.wait()
    finally:
        await runner.cleanup()


async def _loaded_or_stopped(server: FawnServer, stop: asyncio.Event) -> bool:
    """True once the models are loaded, False when ``stop`` came first; raises a load error."""
    assert server.loading is not None
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({server.loading, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
    if not server.loading.done():
        return False
    server.loading.result()  # a load error stops the server
    return True


def _bound_port(runner: web.AppRunner, default: int) -> int:
    for address in runner.addresses:
        if isinstance(address, tuple) and len(address) >= 2:
            return int(address[1])
    return default


def page_url(options: ServeOptions, port: int, with_token: bool = True) -> str:
    host = f"[{options.host}]" if ":" in options.host else options.host
    query = f"/?token={options.token}" if options.token and with_token else "/"
    return f"http://{host}:{port}{query}"
