"""Credentials out of anything a user, a viewer or a log can read.

Camera URLs carry passwords (``rtsp://user:pass@cam/…``, ``?password=…``): the
key to the *un-anonymized* feed. Every URL fawn reports (stats, ``/healthz``,
the page, ``--stats-json``, manifests, error lines) goes through
:func:`redact_url` or :func:`redact_text`, and the CLI's log handlers carry a
:class:`RedactFilter` as a last line of defence.
"""

from __future__ import annotations

import logging
import re

MASK = "***"
# scheme:// (or scheme:/ once a path library folded the slashes) user:password@
_USERINFO = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.\-]*:/{1,2}[^\s/@:]*):(?P<secret>[^\s/]*)@")
_QUERY = re.compile(
    r"(?P<head>[?&;](?:password|passwd|pass|pwd|secret|token|api_?key|key|auth|sig|signature)=)(?P<secret>[^&;#\s]*)",
    re.IGNORECASE,
)


def redact_text(text: str) -> str:
    """``text`` with every URL password (user-info or a password-like query value) replaced by ``***``."""
    if "@" in text:
        text = _USERINFO.sub(lambda m: f"{m['head']}:{MASK}@", text)
    if "=" in text:
        text = _QUERY.sub(lambda m: f"{m['head']}{MASK}", text)
    return text


def redact_url(url: str) -> str:
    """The URL without its password, for messages, logs and reports."""
    scheme, sep, rest = url.partition("://")
    creds, at, host = rest.rpartition("@")
    if sep and at and ":" in creds and "/" not in creds.split(":", 1)[0]:
        url = f"{scheme}{sep}{creds.split(':', 1)[0]}:{MASK}@{host}"  # the last '@': passwords may hold one
    return redact_text(url)


class RedactFilter(logging.Filter):
    """Rewrites each record's message (and traceback text) with :func:`redact_text`."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact_text(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact_text(record.exc_text)
        return True


def redact_log_handlers(logger: logging.Logger | None = None) -> None:
    """Add a :class:`RedactFilter` to each handler of ``logger`` (default: the root logger), once."""
    for handler in (logger or logging.getLogger()).handlers:
        if not any(isinstance(f, RedactFilter) for f in handler.filters):
            handler.addFilter(RedactFilter())
