"""Engine cache: content fingerprints, cache keys and the manifest of an engine folder.

Key (DESIGN.md section 1): model hash + shapes + precision (+ for TensorRT: its
version and the GPU's compute capability). A step whose key is already in the
manifest, with its file present at the recorded size, is skipped.

Fingerprints of multi-GB weight files would take seconds to hash in full at
every start, so a file's fingerprint covers its size, its whole safetensors
header (every tensor's name, dtype, shape and offsets) and three 1 MiB samples
(start, middle, end); files under 8 MiB are hashed whole.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streamer.core.errors import ModelError

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
SAMPLE = 1 << 20
SMALL = 8 << 20


def fingerprint_file(path: Path) -> str:
    h = hashlib.sha256()
    size = path.stat().st_size
    h.update(f"{path.name}:{size}".encode())
    with path.open("rb") as f:
        if size <= SMALL:
            h.update(f.read())
            return h.hexdigest()
        if path.suffix == ".safetensors":
            header_len = int.from_bytes(f.read(8), "little")
            h.update(f.read(min(header_len, 100 << 20)))
        for offset in (0, size // 2, size - SAMPLE):
            f.seek(offset)
            h.update(f.read(SAMPLE))
    return h.hexdigest()


def fingerprint_folder(folder: Path) -> str:
    """Fingerprint of every regular file in ``folder`` (recursively, sorted by relative path)."""
    if not folder.is_dir():
        raise ModelError(f"cannot fingerprint {folder}: not a folder")
    h = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        h.update(str(path.relative_to(folder)).encode())
        h.update(fingerprint_file(path).encode())
    return h.hexdigest()


def cache_key(**parts: Any) -> str:
    """A short stable key over ``parts`` (JSON-serializable values)."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


@dataclass(frozen=True)
class Entry:
    key: str
    component: str
    backend: str
    precision: str
    path: str  # relative to the engine folder
    size: int
    spec: dict[str, Any]
    parts: dict[str, Any]


class Manifest:
    """``manifest.json`` of an engine folder: key -> entry."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.path = folder / MANIFEST
        self.entries: dict[str, Entry] = {}
        if self.path.is_file():
            self._read()

    def _read(self) -> None:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            self.entries = {k: Entry(**v) for k, v in data.get("entries", {}).items()}
        except (ValueError, TypeError) as exc:
            log.warning("ignoring unreadable engine manifest %s: %s", self.path, exc)
            self.entries = {}

    def lookup(self, key: str) -> Path | None:
        """The cached artifact for ``key`` if it is recorded and its file is intact."""
        entry = self.entries.get(key)
        if entry is None:
            return None
        path = self.folder / entry.path
        if not path.is_file() or path.stat().st_size != entry.size:
            return None
        return path

    def record(self, entry: Entry) -> None:
        self.entries[entry.key] = entry
        self.folder.mkdir(parents=True, exist_ok=True)
        data = {"version": 1, "updated": time.strftime("%Y-%m-%dT%H:%M:%S"), "entries": {k: vars(v) for k, v in self.entries.items()}}
        tmp = self.path.with_name(f".{MANIFEST}.{os.getpid()}")
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True), encoding="utf-8")
        tmp.replace(self.path)
