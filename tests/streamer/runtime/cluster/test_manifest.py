"""The manifest: config hash, rows, torn lines, and which files a re-run skips."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from streamer.core.config import load_config
from streamer.core.errors import ConfigError
from streamer.runtime.cluster import manifest as mf
from streamer.runtime.cluster.uris import list_videos


def _row(path: str, out: Path, sha: str, cfg_hash: str, status: str = mf.DONE) -> mf.ManifestRow:
    return mf.ManifestRow(path=path, status=status, input_sha256=sha, config_hash=cfg_hash, output=str(out),
                          frames=15, errors=("boom",) if status == mf.FAILED else ())


def test_config_hash_is_stable_and_follows_what_changes_the_video() -> None:
    base = mf.config_hash(load_config(), None)
    assert base == mf.config_hash(load_config(), None)
    assert base != mf.config_hash(load_config(None, {"anonymizer.method": "pixelate"}), None)
    assert base == mf.config_hash(load_config(None, {"io.progress": False, "identity.audit": "a.jsonl"}), None)
    # the gallery counts by content, not by path
    a = mf.config_hash(load_config(None, {"identity.gallery": "/x/team.fawn"}), b"people")
    assert a == mf.config_hash(load_config(None, {"identity.gallery": "/y/copy.fawn"}), b"people")
    assert a != mf.config_hash(load_config(None, {"identity.gallery": "/x/team.fawn"}), b"other people")


def test_rows_round_trip_latest_wins_and_a_torn_last_line_is_ignored(tmp_path: Path) -> None:
    uri = str(tmp_path / "out" / mf.MANIFEST_NAME)
    writer = mf.ManifestWriter(uri)
    writer.append(_row("a.mp4", tmp_path / "o", "1" * 64, "h", mf.FAILED))
    writer.append(_row("a.mp4", tmp_path / "o", "1" * 64, "h"))
    writer.close()
    with open(uri, "a") as handle:
        handle.write('{"path": "b.mp4", "sta')  # the driver was killed mid-line
    rows = mf.read_rows(uri)
    assert list(rows) == ["a.mp4"] and rows["a.mp4"].status == mf.DONE and rows["a.mp4"].frames == 15
    Path(uri).write_text('not json\n' + rows["a.mp4"].to_json() + "\n")
    with pytest.raises(ConfigError, match="line 1"):
        mf.read_rows(uri)


def test_remote_manifest_is_written_on_close(tmp_path: Path) -> None:
    import fsspec

    writer = mf.ManifestWriter("memory://fawn-manifest-test/m.jsonl")
    writer.append(_row("a.mp4", tmp_path, "1" * 64, "h"))
    writer.close()
    assert list(mf.read_rows("memory://fawn-manifest-test/m.jsonl")) == ["a.mp4"]
    fsspec.filesystem("memory").rm("/fawn-manifest-test", recursive=True)


def test_plan_skips_only_finished_unchanged_files_with_this_config(tmp_path: Path) -> None:
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    out.mkdir()
    for name in ("done.mp4", "changed.mp4", "failed.mp4", "gone.mp4", "new.mp4"):
        (src / name).write_bytes(name.encode())
        if name != "gone.mp4":
            (out / name).write_bytes(b"anonymized")
    sha = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in src.iterdir()}
    rows = {
        "done.mp4": _row("done.mp4", out / "done.mp4", sha["done.mp4"], "h"),
        "changed.mp4": _row("changed.mp4", out / "changed.mp4", sha["done.mp4"], "h"),  # input changed since
        "failed.mp4": _row("failed.mp4", out / "failed.mp4", sha["failed.mp4"], "h", mf.FAILED),
        "gone.mp4": _row("gone.mp4", out / "gone.mp4", sha["gone.mp4"], "h"),  # output deleted
    }
    collection = list_videos(str(src))
    planned = mf.plan(collection, rows, "h")
    assert planned.skipped == ("done.mp4",)
    assert planned.todo == ("changed.mp4", "failed.mp4", "gone.mp4", "new.mp4")
    assert mf.plan(collection, rows, "another config").skipped == ()  # a config change redoes everything
