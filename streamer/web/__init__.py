"""``fawn serve``: a live anonymized preview over WebRTC (aiohttp + aiortc, the ``webrtc`` extra).

Only anonymized frames ever reach a WebRTC track: :mod:`streamer.web.tracks`
accepts nothing but :class:`~streamer.web.tracks.AnonymizedFrame` values,
which only :func:`~streamer.web.tracks.anonymize` makes.
"""

from __future__ import annotations

from typing import Any

from streamer.core.errors import MissingExtraError


def require_webrtc() -> None:
    """Raise :class:`MissingExtraError` when aiortc or aiohttp is not installed."""
    for module in ("aiortc", "aiohttp"):
        try:
            __import__(module)
        except ImportError:
            raise MissingExtraError(module, "webrtc") from None


def __getattr__(name: str) -> Any:
    # keep ``import streamer.web`` free of the heavy optional imports
    if name in ("FawnServer", "ServeOptions", "create_app", "serve"):
        from streamer.web import server

        return getattr(server, name)
    raise AttributeError(name)
