"""The gallery of registered people: names and face embeddings, never photos.

A ``.fawn`` file is JSON::

    {"format": "fawn-gallery", "version": 1, "model": "dlib-resnet:0e07355c92fa1a16",
     "dim": 128, "people": [{"name": "alice", "embeddings": "<base64 float32 [k, dim]>"}]}

``model`` is the id of the identity model that made the embeddings; a run with
another model refuses the gallery. Each embedding is one enrolled photo
(unit length); a face matches a person by its best cosine similarity to any of
that person's photos. Files are written atomically with mode 0600.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import stat
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from streamer.core.errors import GalleryError
from streamer.core.types import FloatArray

log = logging.getLogger(__name__)

FORMAT = "fawn-gallery"
VERSION = 1
DUPLICATE_SIMILARITY = 0.9999  # an embedding this close to a stored one is the same photo again


@dataclass
class Gallery:
    """Registered people of one identity model: ``people`` maps a name to its embeddings [k, dim]."""

    model_id: str
    dim: int
    people: dict[str, FloatArray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.people)

    @property
    def photo_count(self) -> int:
        return sum(len(v) for v in self.people.values())

    def add(self, name: str, embeddings: FloatArray) -> int:
        """Add photos' embeddings to ``name`` (a new or an existing person); returns how many were new."""
        name = check_name(name)
        vectors = _unit_rows(embeddings, self.dim)
        current = self.people.get(name, np.zeros((0, self.dim), np.float32))
        fresh = [v for v in vectors if not len(current) or float((current @ v).max()) < DUPLICATE_SIMILARITY]
        if fresh:
            current = np.concatenate([current, np.stack(fresh)]).astype(np.float32)
        self.people[name] = current
        return len(fresh)

    def match(self, embeddings: FloatArray) -> tuple[list[str | None], FloatArray]:
        """Best person and best cosine similarity for each embedding row ([N,dim] -> N names, N scores)."""
        vectors = _unit_rows(embeddings, self.dim)
        if not self.people or not len(vectors):
            return [None] * len(vectors), np.full(len(vectors), -1.0, np.float32)
        names = list(self.people)
        best = np.stack([(vectors @ self.people[n].T).max(axis=1) for n in names], axis=1)
        idx = best.argmax(axis=1)
        return [names[i] for i in idx], best[np.arange(len(vectors)), idx].astype(np.float32)

    def check_model(self, model_id: str, source: str = "the gallery") -> None:
        """Refuse a gallery made with another identity model."""
        if model_id != self.model_id:
            raise GalleryError(
                f"{source} was made with identity model {self.model_id}, this run uses {model_id}: "
                f"set identity.model to match it (dlib-resnet or arcface, same file) or re-enroll the photos"
            )

    def to_json(self) -> dict[str, Any]:
        people = [
            {"name": name, "embeddings": base64.b64encode(v.astype("<f4").tobytes()).decode("ascii")}
            for name, v in sorted(self.people.items())
        ]
        return {"format": FORMAT, "version": VERSION, "model": self.model_id, "dim": self.dim, "people": people}

    def save(self, path: str | Path) -> None:
        """Write atomically, readable by the owner only (0600)."""
        target = Path(path)
        data = json.dumps(self.to_json(), indent=1).encode("utf-8")
        folder = target.parent if str(target.parent) else Path(".")
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=folder)  # created 0600
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.chmod(tmp, 0o600)
            os.replace(tmp, target)
        except OSError as exc:
            raise GalleryError(f"cannot write gallery {target}: {exc.strerror or exc}") from exc
        log.info("gallery %s: %d people, %d photos (%s)", target, len(self), self.photo_count, self.model_id)

    @classmethod
    def load(cls, path: str | Path) -> Gallery:
        p = Path(path)
        try:
            mode = p.stat().st_mode
            check_private(p, mode)
            raw = p.read_bytes()
        except FileNotFoundError:
            raise GalleryError(f"gallery not found: {p} (make one with: fawn enroll PHOTOS -o {p})") from None
        except OSError as exc:
            raise GalleryError(f"cannot read gallery {p}: {exc.strerror or exc}") from exc
        return cls.from_json(_parse(raw, p), p)

    @classmethod
    def from_json(cls, data: Any, where: Path | str = "gallery") -> Gallery:
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise GalleryError(f"{where} is not a fawn gallery")
        if data.get("version") != VERSION:
            raise GalleryError(f"{where}: gallery version {data.get('version')!r} not supported (this fawn reads {VERSION})")
        model, dim, people = data.get("model"), data.get("dim"), data.get("people")
        if not isinstance(model, str) or not isinstance(dim, int) or dim <= 0 or not isinstance(people, list):
            raise GalleryError(f"{where}: gallery header is corrupt")
        gallery = cls(model, dim)
        for entry in people:
            name, vectors = _decode_person(entry, dim, where)
            gallery.people[name] = vectors
        return gallery


def check_private(path: Path, mode: int) -> None:
    """Refuse a gallery that group or others may read or write: it identifies people (fix: chmod 600)."""
    if os.name == "posix" and mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise GalleryError(
            f"gallery {path} is accessible by other users (mode {stat.S_IMODE(mode):o}): "
            f"refusing to use it; run: chmod 600 {path}"
        )


def check_name(name: str) -> str:
    """A person's name: non-empty, printable, at most 200 characters."""
    cleaned = name.strip() if isinstance(name, str) else ""
    if not cleaned or len(cleaned) > 200 or not cleaned.isprintable():
        raise GalleryError(f"invalid person name {name!r} (printable text, 1-200 characters)")
    return cleaned


def _unit_rows(embeddings: FloatArray, dim: int) -> FloatArray:
    v = np.asarray(embeddings, np.float32)
    v = v.reshape(1, -1) if v.ndim == 1 else v
    if v.ndim != 2 or v.shape[1] != dim:
        raise GalleryError(f"embeddings of shape {v.shape} do not fit a {dim}-d gallery")
    if not np.all(np.isfinite(v)):
        raise GalleryError("embeddings contain NaN or infinity")
    return (v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)).astype(np.float32)


def _parse(raw: bytes, where: Path) -> Any:
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise GalleryError(f"{where} is not a fawn gallery (not JSON: {exc})") from None


def _decode_person(entry: Any, dim: int, where: Path | str) -> tuple[str, FloatArray]:
    if not isinstance(entry, dict) or not isinstance(entry.get("embeddings"), str):
        raise GalleryError(f"{where}: a person entry is corrupt")
    name = check_name(entry.get("name", ""))
    try:
        blob = base64.b64decode(entry["embeddings"], validate=True)
    except ValueError:
        raise GalleryError(f"{where}: embeddings of {name!r} are corrupt") from None
    if not blob or len(blob) % (4 * dim):
        raise GalleryError(f"{where}: embeddings of {name!r} are not a multiple of {dim} float32")
    return name, _unit_rows(np.frombuffer(blob, "<f4").reshape(-1, dim), dim)
