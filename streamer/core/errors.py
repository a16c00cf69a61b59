"""Typed exceptions for fawn. Every error a user can cause derives from FawnError.

The CLI turns a FawnError into a one-line message and a non-zero exit code.
"""

from __future__ import annotations


class FawnError(Exception):
    """Base class of every error fawn reports to a user."""

    exit_code = 2


class ConfigError(FawnError):
    """A configuration file or option is invalid (unknown key, bad value)."""


class SourceError(FawnError):
    """An input cannot be opened or read (missing file, not a video, unreachable URL)."""

    exit_code = 3


class SourceLostError(SourceError):
    """A live source dropped and did not come back within the reconnect budget."""


class SinkError(FawnError):
    """An output cannot be opened or written."""

    exit_code = 4


class ModelError(FawnError):
    """A model file is missing, unreadable or has unexpected inputs/outputs."""

    exit_code = 5


class EngineError(FawnError):
    """An inference backend failed to load or to run."""

    exit_code = 5


class GalleryError(FawnError):
    """A gallery of registered people is missing, corrupt or made by another model."""


class MissingExtraError(FawnError):
    """An optional dependency is not installed."""

    def __init__(self, module: str, extra: str) -> None:
        super().__init__(f"{module} is not installed: install fawn[{extra}] (pip install 'fawn[{extra}]')")
        self.module = module
        self.extra = extra


class DetectorTimeoutError(EngineError):
    """Face detection for a frame took longer than ``detector.timeout_ms`` (the frame fails closed)."""


class DetectorClosedError(EngineError):
    """The shared detector was closed while a frame waited for it (the frame fails closed)."""


class ClusterError(FawnError):
    """A Ray cluster cannot be reached, or its workers cannot run fawn."""

    exit_code = 6


class RunInterrupted(FawnError):
    """A stop request (SIGINT/SIGTERM) ended a unit of a batch before it was complete: it is redone next time."""
