"""``fawn run`` (blur) imports nothing a blur run never uses; the SciPy-free assignment matches SciPy."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import scipy.optimize

from streamer.stages.assign import linear_sum_assignment

HEAVY = ("matplotlib", "skimage", "scipy", "torch", "diffusers", "transformers", "ray", "aiortc", "sklearn",
         "asyncio", "openvino.tools.ovc")  # the last two: ~20 and ~50 ms of start-up, unused by a run

PROBE = """
import sys
from streamer.cli.main import main
rc = main(["run", sys.argv[1], "-o", sys.argv[2], "--no-progress", "--stats-json", sys.argv[3]])
print("LOADED", ",".join(m for m in {heavy!r} if m in sys.modules))
sys.exit(rc)
"""


def test_fawn_run_imports_no_plotting_scipy_or_torch(demo_clip: Path, tmp_path: Path) -> None:
    out, stats = tmp_path / "out.mp4", tmp_path / "stats.json"
    proc = subprocess.run([sys.executable, "-c", PROBE.format(heavy=HEAVY), str(demo_clip), str(out), str(stats)],
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert '"frames"' in stats.read_text() and out.stat().st_size > 0  # a real run happened
    loaded = next(line for line in proc.stdout.splitlines() if line.startswith("LOADED"))
    assert loaded == "LOADED ", loaded


def test_assignment_equals_scipy_on_random_matrices() -> None:
    rng = np.random.default_rng(3)
    for trial in range(200):
        n, m = (int(v) for v in rng.integers(0, 8, 2))
        cost = rng.random((n, m)) * 10
        if trial % 3 == 0:
            cost = np.round(cost)  # ties
        r1, c1 = scipy.optimize.linear_sum_assignment(cost)
        r2, c2 = linear_sum_assignment(cost)
        assert len(r2) == len(r1) == min(n, m)
        assert np.isclose(cost[r2, c2].sum(), cost[r1, c1].sum())
        assert len(set(r2.tolist())) == len(r2) and len(set(c2.tolist())) == len(c2)


def test_a_one_frame_run_with_nothing_compiled_exits_cleanly(tmp_path: Path) -> None:
    """The detector's compiles (the frame's shape, then the region crops') start on a background
    thread when the source opens; a run that ends before they do (one face-free frame: no crop is
    ever needed; an empty OpenVINO cache) waits for them: a process that exited while OpenVINO
    compiled aborted (``terminate called without an active exception``, exit -6)."""
    import os

    import av

    clip = tmp_path / "empty.mp4"
    with av.open(str(clip), "w") as container:
        stream = container.add_stream("libx264", rate=15)
        stream.width, stream.height, stream.pix_fmt = 352, 288, "yuv420p"  # type: ignore[union-attr]
        frame = np.full((288, 352, 3), 90, np.uint8)
        container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="bgr24")))  # type: ignore[union-attr]
        container.mux(stream.encode(None))  # type: ignore[union-attr]
    for attempt in range(4):
        out = tmp_path / f"one{attempt}.mp4"
        env = {**os.environ, "FAWN_CACHE": str(tmp_path / f"cache{attempt}")}
        proc = subprocess.run([sys.executable, "-m", "streamer.cli", "run", str(clip), "-o", str(out), "--no-progress"],
                              capture_output=True, text=True, env=env, timeout=300, check=False)
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert out.stat().st_size > 0
