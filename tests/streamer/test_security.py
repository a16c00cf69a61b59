"""Files that identify people stay private, and camera passwords never surface.

A source URL holding ``user:s3cret@`` is run through every place a URL can show
up outside ``fawn serve`` (its own surfaces are tested in tests/streamer/web):
log records, ``--stats-json``, the one-line CLI error and manifests.
"""

from __future__ import annotations

import json
import logging
import stat
from pathlib import Path

import pytest

from streamer.core.redact import redact_text, redact_url
from streamer.stages.identity.resolver import AuditLog

SECRET = "s3cret"


def test_an_existing_audit_log_is_made_private(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    path.write_text('{"event": "old"}\n')
    path.chmod(0o644)
    log = AuditLog(path)
    log.write({"event": "decision", "track": 1})
    log.close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [json.loads(line)["event"] for line in path.read_text().splitlines()] == ["old", "decision"]


def test_a_new_audit_log_is_private(tmp_path: Path) -> None:
    path = tmp_path / "new.jsonl"
    AuditLog(path).close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


@pytest.mark.parametrize(
    "text, expected",
    [
        ("rtsp://admin:s3cret@cam.local/stream", "rtsp://admin:***@cam.local/stream"),
        ("cannot open rtsp://admin:s3cret@10.0.0.2:554/a: refused", "cannot open rtsp://admin:***@10.0.0.2:554/a: refused"),
        ("input file not found: http:/u:s3cret@host/x.mp4", "input file not found: http:/u:***@host/x.mp4"),
        ("a rtsp://u:s3cret@h/1 and rtsps://v:s3cret@h/2", "a rtsp://u:***@h/1 and rtsps://v:***@h/2"),
        ("rtsp://cam/live?user=admin&password=s3cret", "rtsp://cam/live?user=admin&password=***"),
        ("rtsp://cam.local/stream", "rtsp://cam.local/stream"),
        ("demo", "demo"),
    ],
)
def test_redact_text_hides_passwords_anywhere_in_a_message(text: str, expected: str) -> None:
    assert redact_text(text) == expected
    assert SECRET not in redact_url(text)


def test_the_cli_error_line_and_logs_are_redacted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    """A file-like source with credentials (not RTSP): its 'not found' error is redacted."""
    from streamer.cli.main import main

    caplog.set_level(logging.DEBUG)
    stats = tmp_path / "stats.json"
    code = main(["run", f"http://user:{SECRET}@127.0.0.1:1/x.mp4", "-o", "null", "--no-progress",
                 "--stats-json", str(stats)])
    err = capsys.readouterr().err
    assert code != 0 and "fawn: error:" in err and "user:***@" in err
    assert SECRET not in err and SECRET not in caplog.text


def test_manifest_lines_carry_no_password(tmp_path: Path) -> None:
    from streamer.runtime.cluster.manifest import ManifestRow, ManifestWriter, read_rows

    path = tmp_path / "fawn-manifest.jsonl"
    row = ManifestRow(
        path="day1/a.mp4", status="failed", input_sha256=None, config_hash="h",
        output=f"rtsp://user:{SECRET}@127.0.0.1:1/out",
        errors=(f"cannot publish to rtsp://user:{SECRET}@127.0.0.1:1/out: refused",),
    )
    writer = ManifestWriter(str(path))
    writer.append(row)
    writer.close()
    text = path.read_text()
    assert SECRET not in text and "user:***@127.0.0.1:1" in text
    back = read_rows(str(path))["day1/a.mp4"]
    assert back.error is not None and "user:***@" in back.error and back.status == "failed"


def test_fawn_batch_refuses_a_gallery_others_can_read_too(tmp_path: Path) -> None:
    from streamer.core.config import load_config
    from streamer.core.errors import GalleryError
    from streamer.runtime.cluster.job import gallery_bytes

    path = tmp_path / "people.fawn"
    path.write_text('{"format": "fawn-gallery"}')
    path.chmod(0o644)
    cfg = load_config(None, {"identity.gallery": str(path)})
    with pytest.raises(GalleryError, match=f"chmod 600 {path}"):
        gallery_bytes(cfg)
    path.chmod(0o600)
    assert gallery_bytes(cfg) == path.read_bytes()
