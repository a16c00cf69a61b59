"""Several streams in one process (``streams:`` in a config): shared models, per-stream results."""

from __future__ import annotations

import json
import logging
import threading
import urllib.error
import urllib.request
from pathlib import Path

import av
import pytest
import yaml

from streamer.cli.main import main
from streamer.core.config import load_config
from streamer.core.errors import ConfigError
from streamer.io import demo
from streamer.runtime.multistream import MultiStreamOptions, MultiStreamRun
from streamer.tools import verify

SPEC = demo.demo_spec(width=320, height=240, seconds=1.0)


def _decode(path: Path) -> list:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="bgr24") for f in container.decode(video=0)]


def _write_config(tmp_path: Path, streams: list[dict[str, str]]) -> Path:
    path = tmp_path / "cams.yaml"
    path.write_text(yaml.safe_dump({"detector": {"every_n": 2}, "streams": streams}))
    return path


def test_streams_run_together_and_a_broken_one_fails_alone(tmp_path: Path) -> None:
    clip = tmp_path / "clip.mp4"
    demo.write_clip(SPEC, clip)
    truth = list(demo.render(SPEC))
    config = _write_config(tmp_path, [
        {"name": "lobby", "source": str(clip), "output": str(tmp_path / "lobby.mp4")},
        {"name": "door", "source": str(clip), "output": str(tmp_path / "door.mkv")},
        {"name": "gone", "source": str(tmp_path / "missing.mp4"), "output": str(tmp_path / "gone.mp4")},
    ])
    stats_path = tmp_path / "stats.json"
    code = main(["run", "-c", str(config), "--no-progress", "--stats-json", str(stats_path)])
    assert code == 1  # one stream failed: the exit code says so, the others finished
    for name in ("lobby.mp4", "door.mkv"):
        frames = _decode(tmp_path / name)
        assert len(frames) == len(truth)
        report = verify.face_recall((orig, got, boxes) for (orig, boxes), got in zip(truth, frames))
        assert report.recall == 1.0, f"{name}: faces leaked in frames {report.leaked_frames}"
    stats = json.loads(stats_path.read_text())
    assert stats["streams"]["lobby"]["state"] == "done" and stats["streams"]["lobby"]["frames"] == len(truth)
    assert stats["streams"]["door"]["faces_anonymized"] > 0
    assert stats["streams"]["gone"]["state"] == "failed"
    assert "not found" in stats["streams"]["gone"]["error"]
    assert stats["total"]["failed"] == 1 and stats["total"]["frames"] == 2 * len(truth)
    assert stats["total"]["detector_batches"] > 0


def test_metrics_and_health_per_stream_while_running(tmp_path: Path) -> None:
    cfg = load_config(None, {"streams": [{"name": "a", "source": "demo"}, {"name": "b", "source": "demo"}]})
    stop = threading.Event()
    multi = MultiStreamRun(cfg, MultiStreamOptions(stop=stop, progress=False))
    from streamer.runtime.metrics import MetricsServer

    server = MetricsServer(lambda: {r.name: r.stats for r in multi.results}, multi.health, port=0)
    worker = threading.Thread(target=multi.run)
    worker.start()
    try:
        assert _wait(lambda: all(r.stats.frames_out > 5 for r in multi.results))
        text = urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=5).read().decode()
        health = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{server.port}/healthz", timeout=5).read())
    finally:
        stop.set()
        worker.join(30)
        server.close()
    assert 'fawn_frames_total{stream="a"}' in text and 'fawn_frames_total{stream="b"}' in text
    assert 'fawn_reconnects_total{stream="a"} 0' in text
    assert 'fawn_identity_decisions_total{stream="b",decision="registered"} 0' in text
    assert health == {"ok": True, "streams": {"a": "running", "b": "running"}}
    assert all(r.state == "done" for r in multi.results)


def test_health_is_503_when_a_stream_failed(tmp_path: Path) -> None:
    cfg = load_config(None, {"streams": [{"source": str(tmp_path / "nope.mp4")}]})
    multi = MultiStreamRun(cfg, MultiStreamOptions(progress=False))
    multi.run()
    from streamer.runtime.metrics import MetricsServer

    server = MetricsServer(lambda: {r.name: r.stats for r in multi.results}, multi.health, port=0)
    try:
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(f"http://127.0.0.1:{server.port}/healthz", timeout=5)
    finally:
        server.close()
    assert err.value.code == 503
    assert json.loads(err.value.read())["streams"] == {"stream-0": "failed"}


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["run", "demo", "-o", "null", "-c", "{config}"], "not both"),
        (["run", "--no-progress"], "lists no streams"),
        (["run", "demo"], "-o/--output is required"),
        (["run", "-c", "{config}", "-o", "x.mp4"], "each stream names its output"),
    ],
)
def test_cli_rejects_ambiguous_stream_options(
    tmp_path: Path, argv: list[str], needle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _write_config(tmp_path, [{"source": "demo"}])
    code = main([a.replace("{config}", str(config)) for a in argv])
    err = capsys.readouterr().err
    assert code != 0 and needle in err and len(err.strip().splitlines()) == 1


def test_bad_stream_entries_name_the_key() -> None:
    with pytest.raises(ConfigError, match=r"unknown key 'streams\[0\].url'.*valid keys.*source"):
        load_config(None, {"streams": [{"url": "rtsp://x"}]})
    with pytest.raises(ConfigError, match="must be unique"):
        load_config(None, {"streams": [{"source": "demo", "name": "a"}, {"source": "demo", "name": "a"}]})


def _wait(predicate: object, timeout: float = 60.0) -> bool:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.05)
    return False


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGINT"])
def test_signal_stops_every_live_stream_with_playable_outputs(tmp_path: Path, sig: str) -> None:
    import signal
    import subprocess
    import sys
    import time

    config = _write_config(tmp_path, [
        {"name": "a", "source": "demo-live:320x240@15", "output": str(tmp_path / "a.mp4")},
        {"name": "b", "source": "demo-live:320x240@15", "output": str(tmp_path / "b.mkv")},
    ])
    stats = tmp_path / "stats.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamer.cli", "run", "-c", str(config), "--no-progress", "--stats-json", str(stats)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not all(
            (tmp_path / n).exists() and (tmp_path / n).stat().st_size > 20_000 for n in ("a.mp4", "b.mkv")
        ):
            time.sleep(0.2)
        proc.send_signal(getattr(signal, sig))
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    summary = json.loads(stats.read_text())
    for name, path in (("a", "a.mp4"), ("b", "b.mkv")):
        assert summary["streams"][name]["state"] == "done"
        assert len(_decode(tmp_path / path)) >= 10


SECRET = "s3cret"
CAMERA = f"rtsp://user:{SECRET}@127.0.0.1:1/cam"  # loopback, nothing listens on port 1
FAST_RETRY = {"reconnect_attempts": 0, "reconnect_backoff": 0.0, "reconnect_max_backoff": 0.05, "open_timeout": 2.0}


def test_an_unreachable_camera_is_retried_while_the_other_streams_run(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The healthy stream starts and runs; the camera is reported retrying (redacted) on /healthz, and
    retried in the background until the run stops."""
    from streamer.runtime.metrics import MetricsServer

    caplog.set_level(logging.DEBUG)
    cfg = load_config(None, {"io": FAST_RETRY, "streams": [
        {"name": "lobby", "source": "demo-live:320x240@15", "output": "null"},
        {"name": "door", "source": CAMERA, "output": str(tmp_path / "door.mp4")},
    ]})
    stop = threading.Event()
    multi = MultiStreamRun(cfg, MultiStreamOptions(stop=stop, progress=False))
    server = MetricsServer(lambda: {r.name: r.stats for r in multi.results}, multi.health, port=0, errors=multi.errors)
    worker = threading.Thread(target=multi.run)
    worker.start()
    lobby, door = multi.results
    try:
        assert _wait(lambda: lobby.stats.frames_out > 5 and door.retries >= 2)
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(f"http://127.0.0.1:{server.port}/healthz", timeout=5)
        health_body = err.value.read().decode()
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=5).read().decode()
        retries = door.retries
        assert _wait(lambda: door.retries > retries)  # still retrying in the background
        assert lobby.state == "running" and door.state == "retrying"
    finally:
        stop.set()
        worker.join(30)
        server.close()
    assert not worker.is_alive()
    health = json.loads(health_body)
    assert err.value.code == 503 and health["streams"] == {"lobby": "running", "door": "retrying"}
    assert "127.0.0.1:1" in health["errors"]["door"] and "lobby" not in health["errors"]
    assert lobby.state == "done" and lobby.stats.frames_out > 5
    assert door.state == "failed" and door.retries >= 3  # stopped before it ever came back
    summary = json.dumps(multi.summary())
    assert json.loads(summary)["streams"]["door"]["source"] == "rtsp://user:***@127.0.0.1:1/cam"
    for text in (health_body, metrics, summary, caplog.text):
        assert SECRET not in text
    assert not (tmp_path / "door.mp4").exists()  # nothing was written for a camera never reached


def test_a_retried_stream_never_overwrites_what_it_wrote(tmp_path: Path) -> None:
    from streamer.runtime.multistream import _next_output

    first = tmp_path / "cam.mp4"
    assert _next_output(str(first)) == str(first)  # nothing written yet: same name
    first.write_bytes(b"segment 0")
    assert _next_output(str(first)) == str(tmp_path / "cam.1.mp4")
    (tmp_path / "cam.1.mp4").write_bytes(b"segment 1")
    assert _next_output(str(first)) == str(tmp_path / "cam.2.mp4")
    assert _next_output("null") == "null" and _next_output(CAMERA) == CAMERA


def test_stats_json_logs_and_error_lines_carry_no_password(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    """A stream whose (non-camera) URL holds a password fails: every report of it is redacted."""
    caplog.set_level(logging.DEBUG)
    config = _write_config(tmp_path, [
        {"name": "lobby", "source": "demo", "output": "null"},
        {"name": "web", "source": f"http://user:{SECRET}@127.0.0.1:1/x.mp4", "output": "null"},
    ])
    stats_path = tmp_path / "stats.json"
    code = main(["run", "-c", str(config), "--no-progress", "--stats-json", str(stats_path)])
    err = capsys.readouterr().err
    stats = json.loads(stats_path.read_text())
    assert code == 1 and stats["streams"]["web"]["state"] == "failed" and stats["streams"]["lobby"]["state"] == "done"
    assert "user:***@" in stats["streams"]["web"]["error"]
    for text in (stats_path.read_text(), err, caplog.text):
        assert SECRET not in text
