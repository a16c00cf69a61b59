"""Listing a collection (local folders and fsspec URIs), atomic names, one-line errors."""

from __future__ import annotations

from pathlib import Path

import fsspec
import pytest

from streamer.core.errors import ConfigError, SourceError
from streamer.runtime.cluster import uris


def test_list_videos_recursive_relative_sorted_without_partials_or_the_output(tmp_path: Path) -> None:
    for rel in ("b.mp4", "day1/a.MKV", "day1/notes.txt", "day1/x.partial.mp4", "anon/a.mp4"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    found = uris.list_videos(str(tmp_path), exclude=str(tmp_path / "anon"))
    assert found.files == ("b.mp4", "day1/a.MKV")
    assert uris.list_videos(tmp_path.as_uri()).files == ("anon/a.mp4", "b.mp4", "day1/a.MKV")


def test_object_store_listing_and_checksum() -> None:
    fs = fsspec.filesystem("memory")
    fs.pipe_file("/fawn-uris-test/clips/cam1/a.mp4", b"abc")
    found = uris.list_videos("memory://fawn-uris-test/clips")
    assert found.files == ("cam1/a.mp4",)
    mfs, path = uris.resolve(uris.join(found.uri, found.files[0]))
    assert uris.sha256_file(mfs, path) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    fs.rm("/fawn-uris-test", recursive=True)


def test_partial_names() -> None:
    assert uris.partial_name("out/day1/a.mp4") == "out/day1/a.partial.mp4"
    assert uris.is_partial("a.partial.mp4") and not uris.is_partial("partial.mp4")


def test_errors_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="input folder not found"):
        uris.list_videos(str(tmp_path / "nowhere"))
    with pytest.raises(SourceError, match="no video files"):
        uris.list_videos(str(tmp_path))
    with pytest.raises(ConfigError, match="nosuchproto"):
        uris.resolve("nosuchproto://bucket/clips")
