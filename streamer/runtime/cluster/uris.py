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

from streamer.core.errors import ConfigError, MissingExtraError, SourceError
from streamer.core.media import IMAGE_SUFFIXES, VIDEO_SUFFIXES
from streamer.io.imageseq import natural_key

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


def partial_name(path: str, folder: bool = False) -> str:
    """``dir/clip.partial.mp4`` for ``dir/clip.mp4``: the name a file has until it is complete;
    ``dir/seq.partial.d`` for a sequence's output folder ``dir/seq``."""
    head, name = posixpath.split(path)
    if folder:
        return posixpath.join(head, f"{name}{PARTIAL}.d")
    stem, suffix = posixpath.splitext(name)
    return posixpath.join(head, f"{stem}{PARTIAL}{suffix}")


def is_partial(name: str) -> bool:
    return f"{PARTIAL}." in posixpath.basename(name)


@dataclass(frozen=True)
class Collection:
    """A folder of work units: relative paths (forward slashes), sorted. A unit is a video file,
    or a folder that directly holds images (one image sequence)."""

    uri: str
    files: tuple[str, ...]


def list_units(uri: str, exclude: str | None = None) -> Collection:
    """Every video under ``uri`` (recursively) and every folder that directly holds images (one
    sequence each); ``exclude`` is a folder URI inside it to leave out (the output)."""
    fs, root = resolve(uri)
    if not fs.isdir(root):
        raise SourceError(f"input folder not found: {uri}")
    skip = resolve(exclude)[1].rstrip("/") + "/" if exclude is not None else None
    base = root.rstrip("/") or "/"
    videos, sequences = [], set()
    for path in fs.find(root):
        path = str(path)
        if (skip is not None and (path + "/").startswith(skip)) or is_partial(path):
            continue
        suffix = posixpath.splitext(path)[1].lower()
        if suffix in VIDEO_SUFFIXES:
            videos.append(posixpath.relpath(path, base))
        elif suffix in IMAGE_SUFFIXES and not any(is_partial(p) for p in posixpath.relpath(path, base).split("/")):
            sequences.add(posixpath.relpath(posixpath.dirname(path), base))
    if "." in sequences:
        raise SourceError(f"{uri} itself holds images (one sequence): run it with fawn run {uri} -o OUT_DIR, "
                          "or give fawn batch the folder above it")
    if not videos and not sequences:
        looked = ", ".join(sorted(VIDEO_SUFFIXES | IMAGE_SUFFIXES))
        raise SourceError(f"no video files or image folders under {uri} (looked for {looked})")
    return Collection(uri, tuple(sorted(videos + sorted(sequences))))


list_videos = list_units  # the name before image sequences were units


def sequence_files(fs: Any, path: str) -> list[str]:
    """The images directly in folder ``path``, in natural order (full paths)."""
    names = [str(p) for p in fs.ls(path, detail=False)]
    images = [p for p in names if posixpath.splitext(p)[1].lower() in IMAGE_SUFFIXES and not is_partial(p)]
    return sorted(images, key=lambda p: natural_key(posixpath.basename(p)))


def unit_sha256(fs: Any, path: str) -> str:
    """SHA-256 of a video file, or of a sequence folder: over each image's name and SHA-256, in order."""
    if not fs.isdir(path):
        return sha256_file(fs, path)
    digest = hashlib.sha256()
    for image in sequence_files(fs, path):
        digest.update(f"{posixpath.basename(image)}\0{sha256_file(fs, image)}\n".encode())
    return digest.hexdigest()


def unit_stat(fs: Any, path: str) -> tuple[int | None, float | None]:
    """(size, modification time) of a file; of a sequence: total size and the newest image's time."""
    if not fs.isdir(path):
        return stat(fs, path)
    sizes, times = [], []
    for image in sequence_files(fs, path):
        size, mtime = stat(fs, image)
        sizes.append(size)
        times.append(mtime)
    if not sizes or None in sizes or None in times:
        return None, None
    return sum(s for s in sizes if s is not None), max(t for t in times if t is not None)


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
