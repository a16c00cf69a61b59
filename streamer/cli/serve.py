"""``fawn serve``: the command-line piece (registered by :mod:`streamer.cli.main`)."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

from streamer.cli.signals import async_stop_on_signals
from streamer.core.config import METHODS, MODES, load_config
from streamer.core.errors import ConfigError

log = logging.getLogger("fawn")


def add_serve_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "serve",
        help="live anonymized preview in a browser over WebRTC (a source, or the browser's camera)",
        description="Serve a page that shows SOURCE anonymized over WebRTC to several viewers at once. "
        "Without SOURCE the page offers 'use my camera': the browser's webcam is anonymized on the "
        "server and sent back.",
    )
    p.add_argument("source", nargs="*",
                   help="video path, rtsp://..., cam:N, or 'demo'; several are served side by side "
                   "(default: the config's streams:, else the browser's camera)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1; others need a token)")
    p.add_argument("--port", type=int, default=8080, help="port (default 8080; 0 picks a free one)")
    p.add_argument("-c", "--config", default=None, help="YAML config path or preset (default: the webrtc preset)")
    p.add_argument("--token", help="access token for the page, /offer, /control, /stats and /metrics "
                   "(default: a new random one, printed in the URL)")
    p.add_argument("--no-token", action="store_true",
                   help="no token (loopback only): any local user can then watch and change the controls")
    p.add_argument("--max-peers", type=int, default=4, help="concurrent WebRTC peers (default 4)")
    p.add_argument("--method", choices=METHODS, help="initial anonymization method")
    p.add_argument("--gallery", help="gallery of registered people (fawn enroll)")
    p.add_argument("--mode", choices=MODES, help="initial mode: exempt, target or all")
    p.add_argument("--labels", action="store_true", help="label registered people shown with their names")
    p.add_argument(
        "--ice-server", action="append", default=[], metavar="URL",
        help="STUN/TURN server URL (repeatable; none is contacted unless given)",
    )
    p.add_argument("--ice-username", help="TURN username")
    p.add_argument("--ice-credential", help="TURN password")
    p.set_defaults(func=cmd_serve)


def serve_overrides(args: argparse.Namespace) -> dict[str, Any]:
    mapping = {"method": "anonymizer.method", "gallery": "identity.gallery", "mode": "identity.mode"}
    return {key: getattr(args, name) for name, key in mapping.items() if getattr(args, name, None) is not None}


def _sources(given: list[str], cfg: Any) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """SOURCE arguments, else the config's ``streams:`` (their outputs are not used here)."""
    if given and cfg.streams:
        raise ConfigError("give SOURCE arguments or a config with streams:, not both")
    if given:
        return tuple(given), ()
    return tuple(s.source for s in cfg.streams), tuple(cfg.stream_names())


def _token(args: argparse.Namespace, loopback: bool, new_token: Any) -> str | None:
    """--token, else a generated one; none only with --no-token on a loopback address."""
    if args.no_token:
        if args.token is not None:
            raise ConfigError("give --token or --no-token, not both")
        if not loopback:
            raise ConfigError(f"--no-token: binding {args.host} (not loopback) needs a token")
        log.warning("--no-token: any local user can watch the stream and change its controls")
        return None
    if args.token is not None:
        if not args.token.strip():
            raise ConfigError("--token: must not be empty")
        return str(args.token)
    log.info("generated an access token (it is in the URL below; --token chooses one)")
    return str(new_token())


def cmd_serve(args: argparse.Namespace) -> int:
    from streamer.web import require_webrtc

    require_webrtc()
    from streamer.web.server import ServeOptions, is_loopback, new_token

    cfg = load_config(args.config or "webrtc", serve_overrides(args))
    token = _token(args, is_loopback(args.host), new_token)
    sources, names = _sources(args.source, cfg)
    options = ServeOptions(
        sources=sources, names=names, host=args.host, port=args.port, token=token, max_peers=args.max_peers,
        ice_servers=tuple(args.ice_server), ice_username=args.ice_username,
        ice_credential=args.ice_credential, labels=args.labels,
    )

    def ready(url: str) -> None:
        sys.stdout.write(f"fawn serve: open {url}\n")
        sys.stdout.flush()

    import asyncio  # here, not at the top: every command's start-up would pay ~20 ms for it

    asyncio.run(_serve_until_signal(cfg, options, ready))
    return 0


async def _serve_until_signal(cfg: Any, options: Any, ready: Any) -> None:
    from streamer.web.server import run_server

    async with async_stop_on_signals() as stop:
        await run_server(cfg, options, stop, ready)
    log.info("stopped")
