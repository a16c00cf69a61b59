"""``fawn batch`` on real Ray: a local instance, and a two-node cluster on loopback."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import cv2
import pytest

from streamer.cli.main import main
from streamer.io import demo
from streamer.runtime.cluster.manifest import DONE, FAILED, MANIFEST_NAME, read_rows
from streamer.runtime.cluster.worker import KILL_ONCE_ENV
from tests.streamer.runtime.cluster.conftest import HOST, RayCluster, _free_port
from tests.streamer.runtime.cluster.helpers import face_recall, write_clip

pytestmark = pytest.mark.ray

CLIPS = ("a.mp4", "day1/b.mkv", "day2/cam/c.mp4")
BROKEN = "day2/broken.mp4"


@pytest.fixture(scope="module")
def collection(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("footage")
    for rel in CLIPS:
        write_clip(root / rel)
    (root / BROKEN).write_bytes(b"\x00" * 2000)
    (root / "day1" / "notes.txt").write_text("not a video")
    return root


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _summary(path: Path) -> dict:
    return json.loads(path.read_text())


def _stranger_gallery(tmp_path: Path) -> Path:
    """A gallery of someone who is not in the clips (a face of insightface's t1.jpg)."""
    photo = demo.t1_photos()[0]
    x1, y1, x2, y2 = (int(v) for v in photo.box)
    cv2.imwrite(str(tmp_path / "stranger.png"), photo.image[max(0, y1 - 60) : y2 + 60, max(0, x1 - 60) : x2 + 60])
    gallery = tmp_path / "team.fawn"
    assert main(["enroll", str(tmp_path / "stranger.png"), "--name", "stranger", "-o", str(gallery)]) == 0
    return gallery


def test_local_ray_with_file_uris_and_a_gallery(collection: Path, tmp_path: Path) -> None:
    """Without --ray: a local Ray instance; fsspec file:// URIs; the gallery shipped through Ray."""
    src = tmp_path / "in"
    for rel in CLIPS[:2]:
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_bytes((collection / rel).read_bytes())
    out = tmp_path / "out"
    rc = main(["batch", src.as_uri(), "-o", out.as_uri(), "--workers", "1", "--no-progress",
               "--gallery", str(_stranger_gallery(tmp_path)), "--summary-json", str(tmp_path / "s.json")])
    assert rc == 0
    assert sorted(_summary(tmp_path / "s.json")["done"]) == sorted(CLIPS[:2])
    for rel in CLIPS[:2]:
        assert face_recall(out / rel) == 1.0  # nobody in the clips is registered: every face hidden
    rows = read_rows(str(out / MANIFEST_NAME))
    assert {r.status for r in rows.values()} == {DONE}
    for row in rows.values():  # the workers really ran the identity model on the shipped gallery
        assert row.identity["calls"] > 0 and set(row.identity["decided"].values()) == {"unknown"}


def test_cluster_job_retries_a_killed_worker_fails_a_broken_file_and_reruns_nothing(
    ray_cluster: RayCluster, collection: Path, tmp_path: Path
) -> None:
    out, killed = tmp_path / "out", tmp_path / "killed"
    base = ["batch", str(collection), "-o", str(out), "--ray", ray_cluster.address, "--max-retries", "1", "--no-progress"]
    assert main([*base, "--summary-json", str(tmp_path / "1.json"), "--worker-env", f"{KILL_ONCE_ENV}={killed}"]) == 1
    assert killed.exists()  # a worker process really died (SIGKILL) during the job

    rows = read_rows(str(out / MANIFEST_NAME))
    assert sorted(rows) == sorted([*CLIPS, BROKEN])
    for rel in CLIPS:
        row = rows[rel]
        assert row.status == DONE and row.input_sha256 == _sha256(collection / rel)
        assert row.frames == 15 and row.faces_anonymized > 0 and row.output == str(out / rel)
        assert row.worker["pid"] > 0 and row.worker["node"] and row.seconds > 0
        assert row.identity["calls"] == 0 and row.identity["decided"] == {}  # no gallery: nobody shown
        assert face_recall(out / rel) == 1.0
    assert len({rows[rel].config_hash for rel in CLIPS}) == 1
    retried = [r for r in rows.values() if any(e.startswith("worker died") for e in r.errors)]
    assert len(retried) == 1 and retried[0].status == DONE and retried[0].attempts == 2
    assert rows[BROKEN].status == FAILED and rows[BROKEN].attempts == 2 and len(rows[BROKEN].errors) == 2
    assert len({r.worker["node"] for r in rows.values() if r.worker.get("node")}) == 2  # both nodes worked
    assert not list(out.rglob("*.partial*")) and not (out / BROKEN).exists()
    assert _summary(tmp_path / "1.json")["failed"].keys() == {BROKEN}

    # re-run: finished files are skipped untouched, the failed one is retried (and fails again)
    mtimes = {rel: (out / rel).stat().st_mtime_ns for rel in CLIPS}
    assert main([*base, "--summary-json", str(tmp_path / "2.json")]) == 1
    second = _summary(tmp_path / "2.json")
    assert sorted(second["skipped"]) == sorted(CLIPS) and second["done"] == [] and list(second["failed"]) == [BROKEN]
    assert {rel: (out / rel).stat().st_mtime_ns for rel in CLIPS} == mtimes

    # the broken file gone, a re-run does nothing at all (the manifest is not even touched)
    (collection / BROKEN).unlink()
    manifest = (out / MANIFEST_NAME).read_bytes()
    start = time.monotonic()
    assert main([*base, "--summary-json", str(tmp_path / "3.json")]) == 0
    assert time.monotonic() - start < 5.0
    assert sorted(_summary(tmp_path / "3.json")["skipped"]) == sorted(CLIPS)
    assert (out / MANIFEST_NAME).read_bytes() == manifest
    assert {rel: (out / rel).stat().st_mtime_ns for rel in CLIPS} == mtimes


def test_unreachable_cluster_is_a_one_line_error(collection: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    start = time.monotonic()
    rc = main(["batch", str(collection), "-o", str(tmp_path / "o"), "--ray", f"{HOST}:{_free_port()}",
               "--connect-timeout", "3", "--no-progress"])
    assert rc == 6 and time.monotonic() - start < 15.0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot reach the Ray cluster" in err[0]
