"""A real browser on the ``fawn serve`` page: Debian's Chromium, headless, driven by playwright.

Each scenario runs this file as a script (``python test_browser.py SCENARIO OUT_DIR``)
inside a private network namespace (``unshare --net``, only ``lo`` up), so the
server and the browser talk over loopback and nothing else can be reached. The
script starts the server in-process, drives the page, saves a screenshot and
frames grabbed from the ``<video>``; the tests check them against the source
frames: the video plays and every face in it is anonymized.

Screenshots land in ``artifacts/`` (gitignored). Without Chromium or playwright
the tests skip, naming ``scripts/setup_browser.sh``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[3]
ARTIFACTS = REPO / "artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--allow-loopback-in-peer-connection",
    "--disable-features=WebRtcHideLocalIpsWithMdns", "--autoplay-policy=no-user-gesture-required",
]  # fmt: skip
CAMERA_SIZE = (640, 480)
CAMERA_SECONDS = 1.5
GRABS = 6


# ------------------------------------------------------------------------------------------
# pytest side


def _browser_missing() -> str | None:
    if not Path(CHROMIUM).exists() and shutil.which("chromium") is None:
        return "Debian chromium is not installed (run scripts/setup_browser.sh)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright Python driver is not installed (run scripts/setup_browser.sh)"
    return None


def _netns() -> list[str]:
    """A command prefix that runs in a fresh network namespace with only ``lo`` up, or [] if none can be made."""
    for prefix in (["unshare", "--net"], ["unshare", "--net", "--map-root-user"]):
        try:
            ok = subprocess.run([*prefix, "true"], capture_output=True, timeout=10).returncode == 0
        except (OSError, subprocess.TimeoutExpired):
            ok = False
        if ok and shutil.which("ip"):
            return [*prefix, "sh", "-c", 'ip link set lo up && exec "$0" "$@"']
    return []


pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(_browser_missing() is not None, reason=str(_browser_missing())),
]


def run_scenario(scenario: str, out: Path, *extra: str, timeout: float = 120) -> dict[str, Any]:
    prefix = _netns()
    cmd = [*prefix, sys.executable, str(Path(__file__).resolve()), scenario, str(out), *extra]
    env = dict(os.environ, PYTHONPATH=str(REPO), FAWN_TEST_NETNS="1" if prefix else "0")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                            cwd=REPO, start_new_session=True)  # fmt: skip
    try:
        log_text, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        log_text, _ = proc.communicate(timeout=10)
        pytest.fail(f"browser scenario {scenario} timed out:\n{log_text[-4000:]}")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    result_path = out / "result.json"
    assert proc.returncode == 0 and result_path.exists(), f"scenario {scenario} failed:\n{log_text[-6000:]}"
    result: dict[str, Any] = json.loads(result_path.read_text())
    result["log"] = log_text
    return result


def grabbed(out: Path) -> list[np.ndarray]:
    images = [cv2.imread(str(p)) for p in sorted(out.glob("grab-*.png"))]
    return [i for i in images if i is not None]


def _check_plays(result: dict[str, Any]) -> None:
    assert result["videoWidth"] > 0 and result["videoHeight"] > 0, result
    assert result["times"][-1] > result["times"][0], f"currentTime did not rise: {result['times']}"
    assert result["state"] == "playing", result


def test_page_plays_the_anonymized_source(tmp_path: Path) -> None:
    from streamer.io import demo
    from streamer.tools import verify

    result = run_scenario("source", tmp_path)
    _check_plays(result)
    assert "token=" in result["url"] and result["stats"]["server"]["token_required"]
    shutil.copy(tmp_path / "page.png", _artifact("serve-source.png"))
    assert result["method_after_switch"] == "pixelate"
    truth = list(demo.render(demo.demo_spec()))
    checked = 0
    for image in grabbed(tmp_path):
        index = _best_match(image, truth)
        original, boxes = truth[index]
        if verify.background_psnr(original, image, boxes) < 22:
            continue  # not a clean match (a grab between frames)
        for box in boxes:
            assert verify.face_hidden(original, image, box), f"face {box} of demo frame {index} is recognizable"
        checked += 1
    assert checked >= GRABS // 2, f"only {checked} grabs matched a source frame"


def test_camera_path_comes_back_anonymized(tmp_path: Path) -> None:
    from streamer.tools import verify
    from streamer.web.tracks import read_stamp

    frames, boxes = _write_camera_clip(tmp_path / "camera.y4m")
    result = run_scenario("camera", tmp_path, str(tmp_path / "camera.y4m"))
    _check_plays(result)
    shutil.copy(tmp_path / "page.png", _artifact("serve-camera.png"))
    assert result["stats"]["server"]["input"] == "camera"
    checked = 0
    for image in grabbed(tmp_path):
        scale = image.shape[1] / CAMERA_SIZE[0]  # Chromium may lower the camera's resolution under load
        index = read_stamp(image, block=max(2, round(8 * scale)))
        if index is None or index >= len(frames):
            continue
        original = cv2.resize(frames[index], (image.shape[1], image.shape[0]), interpolation=cv2.INTER_AREA)
        for box in boxes[index] * scale:
            assert verify.face_hidden(original, image, box), f"face {box} of camera frame {index} is recognizable"
        checked += 1
    assert checked >= GRABS // 2, f"only {checked} grabs carried a readable stamp"


def test_picker_switches_between_sources(tmp_path: Path) -> None:
    from streamer.io import demo
    from streamer.tools import verify

    spec = demo.demo_spec(320, 240, seconds=4.0)
    demo.write_clip(spec, tmp_path / "small.mp4")
    result = run_scenario("streams", tmp_path, str(tmp_path / "small.mp4"))
    _check_plays(result)
    assert result["first_width"] == 640 and result["picker_visible"]
    assert result["videoWidth"] == 320 and result["stats"]["server"]["streams"] == ["wide", "small", "door"]
    # the unreachable camera is listed as retrying, its URL without the password, and the others play
    assert "door: retrying (rtsp://user:***@127.0.0.1:1/cam)" in result["states_text"], result["states_text"]
    assert "wide: running" in result["states_text"] and "small: running" in result["states_text"]
    assert "s3cret" not in result["page_html"] and "s3cret" not in json.dumps(result["stats"])
    shutil.copy(tmp_path / "page.png", _artifact("serve-streams.png"))
    truth = list(demo.render(spec))
    checked = 0
    for image in grabbed(tmp_path):
        index = _best_match(image, truth)
        original, boxes = truth[index]
        if verify.background_psnr(original, image, boxes) < 22:
            continue
        for box in boxes:
            assert verify.face_hidden(original, image, box), f"face {box} of small-clip frame {index} is recognizable"
        checked += 1
    assert checked >= GRABS // 2, f"only {checked} grabs matched a source frame"


def _artifact(name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS / name


def _best_match(image: np.ndarray, truth: list[tuple[np.ndarray, np.ndarray]]) -> int:
    small = cv2.resize(image, (80, 60), interpolation=cv2.INTER_AREA).astype(np.float32)
    errors = [
        float(np.abs(cv2.resize(frame, (80, 60), interpolation=cv2.INTER_AREA).astype(np.float32) - small).mean())
        for frame, _boxes in truth
    ]
    return int(np.argmin(errors))


def _write_camera_clip(path: Path) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """A Y4M clip of the demo's real faces, each frame stamped with its index (Chromium's fake camera)."""
    from streamer.io import demo
    from streamer.web.tracks import draw_stamp

    width, height = CAMERA_SIZE
    frames, boxes = [], []
    with path.open("wb") as f:
        f.write(f"YUV4MPEG2 W{width} H{height} F30:1 Ip A1:1 C420jpeg\n".encode())
        for index, (image, gt) in enumerate(demo.render(demo.demo_spec(width, height, seconds=CAMERA_SECONDS))):
            draw_stamp(image, index)
            frames.append(image)
            boxes.append(gt)
            f.write(b"FRAME\n")
            f.write(cv2.cvtColor(image, cv2.COLOR_BGR2YUV_I420).tobytes())
    return frames, boxes


# ------------------------------------------------------------------------------------------
# script side: runs inside the network namespace


def _start_server(
    source: str | None, token: str | None, sources: tuple[str, ...] = (), names: tuple[str, ...] = (),
    overrides: dict[str, Any] | None = None,
) -> tuple[str, Any]:
    """``fawn serve`` in a background thread (event loop of its own); returns (URL, stop function)."""
    import asyncio
    import queue
    import threading

    from streamer.core.config import load_config
    from streamer.web.server import ServeOptions, run_server

    urls: queue.Queue[str | BaseException] = queue.Queue()
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()

    def serve() -> None:
        asyncio.set_event_loop(loop)
        try:
            options = ServeOptions(source=source, sources=sources, names=names, port=0, token=token)
            loop.run_until_complete(run_server(load_config("webrtc", overrides), options, stop, urls.put))
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread
            urls.put(exc)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    url = urls.get(timeout=60)
    if isinstance(url, BaseException):
        raise url

    def shutdown() -> None:
        loop.call_soon_threadsafe(stop.set)
        thread.join(20)

    return url, shutdown


GRAB_JS = """() => {
  const v = document.getElementById('video');
  const c = document.createElement('canvas');
  c.width = v.videoWidth; c.height = v.videoHeight;
  c.getContext('2d').drawImage(v, 0, 0);
  return c.toDataURL('image/png');
}"""


def _grab(page: Any, out: Path, index: int) -> None:
    import base64

    data_url: str = page.evaluate(GRAB_JS)
    (out / f"grab-{index:02d}.png").write_bytes(base64.b64decode(data_url.split(",", 1)[1]))


def _drive(scenario: str, out: Path, camera_file: str | None) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    flags = list(CHROMIUM_FLAGS)
    if scenario == "streams":
        return _drive_streams(flags, out, str(camera_file))
    if camera_file:
        flags += ["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
                  f"--use-file-for-fake-video-capture={camera_file}"]  # fmt: skip
    # the source scenario also runs with a token: the page must pass it on every request
    url, shutdown = _start_server(*(("demo", "browser-test-token") if scenario == "source" else (None, None)))
    result: dict[str, Any] = {"url": url, "console": []}
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=flags, timeout=30_000)
            try:
                page = browser.new_page(viewport={"width": 1100, "height": 760})
                page.on("console", lambda msg: result["console"].append(msg.text))
                page.goto(url, timeout=20_000)
                if scenario == "camera":
                    page.wait_for_selector("#start:not([disabled])", timeout=10_000)
                    page.click("#start")
                _play(page, result)
                if scenario == "source":
                    page.select_option("#method", "pixelate")
                    page.wait_for_function("() => window.fawn.stats && window.fawn.stats.controls.method === 'pixelate'",
                                           timeout=10_000)  # fmt: skip
                    result["method_after_switch"] = "pixelate"
                    page.wait_for_timeout(500)
                _grab_and_record(page, out, result)
            finally:
                browser.close()
    finally:
        shutdown()
    return result


def _drive_streams(flags: list[str], out: Path, small_clip: str) -> dict[str, Any]:
    """Two sources on one server (and a camera that cannot be reached): the page starts on the first,
    the picker switches to the second, the camera is listed as retrying."""
    from playwright.sync_api import sync_playwright

    fast_retry = {"io.reconnect_attempts": 0, "io.reconnect_max_backoff": 0.2}
    url, shutdown = _start_server(None, None, sources=("demo", small_clip, "rtsp://user:s3cret@127.0.0.1:1/cam"),
                                  names=("wide", "small", "door"), overrides=fast_retry)
    result: dict[str, Any] = {"url": url}
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=flags, timeout=30_000)
            try:
                page = browser.new_page(viewport={"width": 1100, "height": 760})
                page.goto(url, timeout=20_000)
                _play(page, result)
                result["first_width"] = result["videoWidth"]
                result["picker_visible"] = page.is_visible("#stream")
                page.select_option("#stream", "small")
                page.wait_for_function("() => document.getElementById('video').videoWidth === 320", timeout=30_000)
                _play(page, result)
                _grab_and_record(page, out, result)
                page.wait_for_function("() => document.getElementById('stream-states').textContent.includes('door: retrying')",
                                       timeout=20_000)  # fmt: skip
                result["states_text"] = page.inner_text("#stream-states")
                result["page_html"] = page.content()
            finally:
                browser.close()
    finally:
        shutdown()
    return result


def _grab_and_record(page: Any, out: Path, result: dict[str, Any]) -> None:
    """Grab GRABS frames of the video, then the page's stats and state and a screenshot."""
    for i in range(GRABS):
        _grab(page, out, i)
        page.wait_for_timeout(150)
    page.wait_for_timeout(1100)  # one more stats refresh
    result["stats"] = page.evaluate("window.fawn.stats")
    result["state"] = page.evaluate("window.fawn.state")
    page.screenshot(path=str(out / "page.png"))


def _play(page: Any, result: dict[str, Any]) -> None:
    page.wait_for_function(
        "() => { const v = document.getElementById('video'); return v.videoWidth > 0 && v.currentTime > 0.3; }",
        timeout=30_000,
    )
    times = []
    for _ in range(3):
        times.append(page.evaluate("document.getElementById('video').currentTime"))
        page.wait_for_timeout(400)
    result["times"] = times
    result["videoWidth"] = page.evaluate("document.getElementById('video').videoWidth")
    result["videoHeight"] = page.evaluate("document.getElementById('video').videoHeight")


def main(argv: list[str]) -> int:
    import logging

    logging.basicConfig(level=logging.INFO, format="%(name)s: %(levelname)s: %(message)s")
    logging.getLogger("aioice").setLevel(logging.WARNING)
    scenario, out = argv[0], Path(argv[1])
    if os.environ.get("FAWN_TEST_NETNS") != "1":  # shared network: keep ICE on loopback
        import aioice.ice

        def loopback(use_ipv4: bool = True, use_ipv6: bool = True) -> list[str]:
            return ["127.0.0.1"]

        aioice.ice.get_host_addresses = loopback
    result = _drive(scenario, out, argv[2] if len(argv) > 2 else None)
    (out / "result.json").write_text(json.dumps(result, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
