"""The job manifest: one JSON line per finished file, the dataset's anonymization audit.

Append-only: the latest line for a path is its state, earlier lines are its
history. A line records the input's SHA-256, the config hash, the output, the
frame and face counts, the identity decisions, the attempts (with each failed
attempt's error) and the worker that did it. A re-run skips a file whose
latest line is ``done`` for the same input checksum and config hash and whose
output exists; anything else is (re)done.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from streamer.core.config import PipelineConfig, to_dict
from streamer.core.errors import ConfigError
from streamer.core.redact import redact_text, redact_url
from streamer.runtime.cluster import uris

log = logging.getLogger(__name__)

DONE = "done"
FAILED = "failed"
MANIFEST_NAME = "fawn-manifest.jsonl"
REMOTE_FLUSH_SECONDS = 10.0


def config_hash(cfg: PipelineConfig, gallery: bytes | None) -> str:
    """A stable hash of what decides the output: the config, with the gallery by content, not by path."""
    data = to_dict(cfg)
    data["identity"]["gallery"] = hashlib.sha256(gallery).hexdigest() if gallery is not None else None
    data["identity"]["audit"] = None  # where decisions are logged does not change the video
    data["io"]["progress"] = None
    data["annotations"]["path"] = data["annotations"]["path"] is not None  # on/off: each unit's record sits by its output
    blob = json.dumps(data, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


@dataclass(frozen=True)
class ManifestRow:
    """The outcome of one input file in one run."""

    path: str  # relative to the input folder (forward slashes)
    status: str  # done | failed
    input_sha256: str | None
    config_hash: str
    output: str
    frames: int = 0
    faces_anonymized: int = 0
    identity: dict[str, Any] = field(default_factory=dict)
    attempts: int = 1
    errors: tuple[str, ...] = ()
    worker: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    input_size: int | None = None
    input_mtime: float | None = None
    fawn_version: str = ""
    finished_at: float = 0.0  # Unix time

    @property
    def error(self) -> str | None:
        return self.errors[-1] if self.errors else None

    def to_json(self) -> str:
        """One manifest line. URL passwords are redacted (an output written with one is then redone
        on resume rather than recorded with its password)."""
        data = dataclasses.asdict(self)
        data["output"] = redact_url(self.output)
        data["errors"] = [redact_text(e) for e in self.errors]
        data["error"] = redact_text(self.error) if self.error else None
        return json.dumps(data, sort_keys=True)

    @classmethod
    def from_json(cls, line: str) -> ManifestRow:
        data = json.loads(line)
        names = {f.name for f in dataclasses.fields(cls)}
        data = {k: v for k, v in data.items() if k in names}
        data["errors"] = tuple(data.get("errors") or ())
        return cls(**data)


def read_rows(uri: str) -> dict[str, ManifestRow]:
    """The latest row per path. A torn last line (a killed driver) is ignored; anything else is an error."""
    fs, path = uris.resolve(uri)
    if not fs.exists(path):
        return {}
    lines = fs.cat_file(path).decode("utf-8", errors="replace").splitlines()
    rows: dict[str, ManifestRow] = {}
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = ManifestRow.from_json(line)
        except (json.JSONDecodeError, TypeError) as exc:
            if number == len(lines):
                log.warning("%s: ignoring a torn last line", uri)
                continue
            raise ConfigError(f"manifest {uri} line {number} is not a manifest row: {exc}") from None
        rows[row.path] = row
    return rows


class ManifestWriter:
    """Appends rows. Local files are appended and fsynced per row; object stores get the whole
    file rewritten at most every ``REMOTE_FLUSH_SECONDS`` and on close."""

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self._fs, self._path = uris.resolve(uri)
        self._local = uris.is_local(self._fs)
        self._lines: list[str] = []
        self._dirty = False
        self._flushed = time.monotonic()
        if self._local:
            os.makedirs(os.path.dirname(self._path) or ".", exist_ok=True)
        elif self._fs.exists(self._path):
            self._lines = self._fs.cat_file(self._path).decode().splitlines()

    def append(self, row: ManifestRow) -> None:
        line = row.to_json()
        if self._local:
            with open(self._path, "a", encoding="utf-8") as handle:
                handle.write(line + "\n")
                handle.flush()
                os.fsync(handle.fileno())
            return
        self._lines.append(line)
        self._dirty = True
        if time.monotonic() - self._flushed >= REMOTE_FLUSH_SECONDS:
            self.flush()

    def flush(self) -> None:
        if self._local or not self._dirty:
            return
        self._fs.pipe_file(self._path, ("\n".join(self._lines) + "\n").encode())
        self._dirty = False
        self._flushed = time.monotonic()

    def close(self) -> None:
        self.flush()


@dataclass(frozen=True)
class Planned:
    """What a run does with each file: skip it (finished) or do it."""

    todo: tuple[str, ...]
    skipped: tuple[str, ...]


def plan(
    collection: uris.Collection, rows: dict[str, ManifestRow], cfg_hash: str, rehash: bool = False
) -> Planned:
    """Skip a file when its latest row is done with this config, its output exists and its input is unchanged.

    The input is re-hashed unless its size and modification time match the row's
    (``rehash`` forces hashing every finished input).
    """
    fs, root = uris.resolve(collection.uri)
    todo: list[str] = []
    skipped: list[str] = []
    for rel in collection.files:
        row = rows.get(rel)
        finished = row is not None and _finished(row, fs, uris.join(root, rel), cfg_hash, rehash)
        (skipped if finished else todo).append(rel)
    return Planned(tuple(todo), tuple(skipped))


def _finished(row: ManifestRow, fs: Any, path: str, cfg_hash: str, rehash: bool) -> bool:
    if row.status != DONE or row.config_hash != cfg_hash or not _exists(row.output):
        return False
    size, mtime = uris.unit_stat(fs, path)
    if not rehash and size is not None and mtime is not None and (size, mtime) == (row.input_size, row.input_mtime):
        return True
    return uris.unit_sha256(fs, path) == row.input_sha256


def _exists(uri: str) -> bool:
    fs, path = uris.resolve(uri)
    return bool(fs.exists(path))


def failed_paths(rows: Iterable[ManifestRow]) -> list[str]:
    return sorted(row.path for row in rows if row.status == FAILED)
