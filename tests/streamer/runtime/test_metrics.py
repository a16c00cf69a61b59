from streamer.core.stats import RunStats
from streamer.runtime.metrics import prometheus_text


def test_counters_per_stream_with_escaped_labels() -> None:
    a, b = RunStats(), RunStats()
    a.frames_out, a.faces_anonymized, a.dropped = 12, 30, 2
    a.identity_calls[1] += 3
    with a.timed("detect"):
        pass
    text = prometheus_text({'cam "1"': a, "cam2": b}, [("fawn_peers", "Peers.", 1)])
    assert 'fawn_frames_total{stream="cam \\"1\\""} 12' in text
    assert 'fawn_frames_total{stream="cam2"} 0' in text
    assert 'fawn_frames_dropped_total{stream="cam \\"1\\""} 2' in text
    assert 'fawn_identity_calls_total{stream="cam \\"1\\""} 3' in text
    assert 'fawn_stage_ms{stream="cam \\"1\\"",stage="detect"}' in text
    assert "# TYPE fawn_fps gauge" in text and "fawn_peers 1" in text


def test_stream_labels_never_carry_a_password() -> None:
    """A stream named by its camera URL is labelled without the password."""
    from streamer.core.stats import RunStats
    from streamer.runtime.metrics import prometheus_text

    stats = RunStats()
    stats.stages["detect"].add(0.01)
    text = prometheus_text({"rtsp://admin:s3cret@cam.local/1": stats})
    assert "s3cret" not in text
    assert 'fawn_frames_total{stream="rtsp://admin:***@cam.local/1"} 0' in text
    assert 'fawn_stage_ms{stream="rtsp://admin:***@cam.local/1",stage="detect"}' in text
