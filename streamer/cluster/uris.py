"""Where a collection lives: a local (or shared) folder, or an fsspec URI (``s3://``, ``gs://``, ``file://``...).

Everything here goes through ``fsspec`` so the driver and the workers agree on
one path syntax. Object stores need their filesystem package (``s3fs``,
``gcsfs``...) installed on the driver and on every worker.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
from dataclasses import dataclass
from typing import Any

from streamer.batch import VIDEO_SUFFIXES
from streamer.errors import ConfigError, MissingExtraError, SourceError

CHUNK = 1 << 20
PARTIAL = ".partial"
# filesystems whose files exist in one process only: Ray workers cannot see them
PROCESS_LOCAL = frozenset({"memory"})


def _fsspec() -> Any:
    try:
        import fsspec
    except ImportError:
        raise MissingExtraError("fsspec", "ray") from None
    return fsspec


def resolve(uri: str) -> tuple[Any, str]:
    """(filesystem, path inside it) for a local path or an fsspec URI; one-line errors."""
    fsspec = _fsspec()
    target = uri if "://" in uri else os.path.abspath(uri)
    try:
        fs, path = fsspec.core.url_to_fs(target)
    except ImportError as exc:  # e.g. s3:// without s3fs
        raise ConfigError(f"{uri}: {str(exc).splitlines()[0]}") from None
    except ValueError as exc:  # an unknown protocol
        raise ConfigError(f"{uri}: {exc}") from None
    return fs, str(path)


def is_local(fs: Any) -> bool:
    """A filesystem mounted here (a local or shared folder): files can be renamed atomically in place."""
    from fsspec.implementations.local import LocalFileSystem

    return isinstance(fs, LocalFileSystem)


def protocols(fs: Any) -> tuple[str, ...]:
    proto = fs.protocol
    return (proto,) if isinstance(proto, str) else tuple(proto)


def join(uri: str, rel: str) -> str:
    """``uri``/``rel`` for a path or a URI (``rel`` uses forward slashes)."""
    if "://" in uri:
        return uri.rstrip("/") + "/" + rel
    return os.path.join(uri, *rel.split("/"))


def partial_name(path: str) -> str:
    """``dir/clip.partial.mp4`` for ``dir/clip.mp4``: the name a file has until it is complete."""
    head, name = posixpath.split(path)
    stem, suffix = posixpath.splitext(name)
    return posixpath.join(head, f"{stem}{PARTIAL}{suffix}")


def is_partial(name: str) -> bool:
    return f"{PARTIAL}." in posixpath.basename(name)


@dataclass(frozen=True)
class Collection:
    """A folder of videos: relative paths (forward slashes), sorted."""

    uri: str
    files: tuple[str, ...]


def list_videos(uri: str, exclude: str | None = None) -> Collection:
    """Every video under ``uri`` (recursively); ``exclude`` is a folder URI inside it to leave out."""
    fs, root = resolve(uri)
    if not fs.isdir(root):
        raise SourceError(f"input folder not found: {uri}")
    skip = resolve(exclude)[1].rstrip("/") + "/" if exclude is not None else None
    found = []
    for path in fs.find(root):
        path = str(path)
        if skip is not None and (path + "/").startswith(skip):
            continue
        if posixpath.splitext(path)[1].lower() in VIDEO_SUFFIXES and not is_partial(path):
            found.append(posixpath.relpath(path, root.rstrip("/") or "/"))
    if not found:
        raise SourceError(f"no video files under {uri} (looked for {', '.join(sorted(VIDEO_SUFFIXES))})")
    return Collection(uri, tuple(sorted(found)))


def sha256_file(fs: Any, path: str) -> str:
    """SHA-256 of a file, streamed in 1 MiB chunks (never the whole file in memory)."""
    digest = hashlib.sha256()
    with fs.open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def read_bytes(uri: str) -> bytes:
    fs, path = resolve(uri)
    data: bytes = fs.cat_file(path)
    return data


def stat(fs: Any, path: str) -> tuple[int | None, float | None]:
    """(size, modification time) when the filesystem knows them."""
    try:
        info = fs.info(path)
    except FileNotFoundError:
        return None, None
    try:
        mtime = fs.modified(path).timestamp()
    except (NotImplementedError, AttributeError, OSError):
        mtime = None
    size = info.get("size")
    return (int(size) if size is not None else None), mtime
