"""``fawn bench``: transcode-only vs fawn vs ``deface`` on the same clip.

One process, one clip, run after run on the same machine:

* **transcode**: PyAV decode + the encoder fawn uses (``io.codec``,
  ``io.preset``, ``io.crf``) on a decode thread and an encode thread, frames
  passed through untouched: the ceiling for any tool that re-encodes.
* **transcode + BGR**: the same with each frame converted to a BGR array and
  back, the pixel round trip every frame of fawn makes.
* **fawn**: :func:`streamer.runtime.pipeline.run` with the default config (blur), and
  with ``detector.every_n`` 2 and 3; wall clock of the whole call (models
  included) and fawn's own per-stage timings.
* **deface**: the peer tool (PyPI ``deface``, own venv, see
  ``scripts/setup_deface.sh``) as a subprocess with its defaults and
  ``--ep CPUExecutionProvider``; wall clock of the whole process. Its start-up
  (imports, model load) is measured with a 1-frame run and reported apart.

Face recall (:func:`streamer.tools.verify.face_recall`) of each output is measured
against the clip both tools read, frame by frame, using the clip's exact
ground-truth boxes. The generated clip has four segments: faces of ordinary
size, small faces (22-48 px at 640 px width), motion blur, and a dark scene.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import platform
import queue
import resource
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from functools import partial
from pathlib import Path
from typing import Any

import av
import numpy as np

from streamer.core.config import IOConfig, PipelineConfig, load_config
from streamer.core.errors import FawnError
from streamer.core.types import FloatArray, Image
from streamer.io import demo
from streamer.io.demo import Actor, ClipSpec
from streamer.tools.verify import RecallReport, face_recall

log = logging.getLogger(__name__)

LARGE_FACE = 48.0  # px: recall is also reported for faces at least this big
EXTRA_STRIDES = (2, 3)  # detector strides benchmarked besides the configured one
FPS = 30
DEFACE_ARGS = ("--ep", "CPUExecutionProvider")


class BenchError(FawnError):
    """The benchmark cannot run or its outputs cannot be compared (missing tool, misaligned frames)."""


@dataclass(frozen=True)
class BenchOptions:
    """What ``fawn bench`` runs. ``every_n=None`` runs the configured stride and 2 and 3;
    a value runs that stride only. ``deface=""`` looks in ``.venv-deface`` then PATH; None skips it."""

    clip: str | None = None
    seconds: float = 10.0
    every_n: int | None = None
    deface: str | None = ""
    json_path: str | None = None
    plot_path: str | None = None


@dataclass
class Result:
    """One benchmarked run: throughput over the whole run, face recall, fawn's stage timings."""

    name: str
    frames: int
    seconds: float
    recall_all: float | None = None
    recall_large: float | None = None
    faces_all: int = 0
    faces_large: int = 0
    per_frame_ms: dict[str, float] = field(default_factory=dict)
    notes: dict[str, Any] = field(default_factory=dict)
    cpu_seconds: float = 0.0  # user + system time of every thread and child process of the run

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    @property
    def cpu_ms_per_frame(self) -> float:
        return 1000.0 * self.cpu_seconds / self.frames if self.frames else 0.0


class Stopwatch:
    """Wall seconds and CPU seconds (this process and the children it waited for) since creation.

    CPU time moves less than wall time when other work shares the cores, so it is
    the steadier measure of what a run costs; wall time is what a user sees.
    :meth:`others` is the share of the machine's CPU that other processes took
    meanwhile (from ``/proc/stat``): a run with a large share is not a clean one.
    """

    def __init__(self) -> None:
        self._wall = time.perf_counter()
        self._cpu = self._cpu_now()
        self._busy = _machine_busy_seconds()

    @staticmethod
    def _cpu_now() -> float:
        own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime

    def wall(self) -> float:
        return time.perf_counter() - self._wall

    def cpu(self) -> float:
        return self._cpu_now() - self._cpu

    def others(self) -> float | None:
        """Fraction (0..1) of all cores used by other processes since creation; None off Linux."""
        busy = _machine_busy_seconds()
        if busy is None or self._busy is None:
            return None
        capacity = self.wall() * (os.cpu_count() or 1)
        return max(0.0, min(1.0, (busy - self._busy - self.cpu()) / capacity)) if capacity > 0 else None


def _machine_busy_seconds() -> float | None:
    """CPU seconds all processes have used since boot (``/proc/stat``), or None where unavailable."""
    try:
        fields = Path("/proc/stat").read_text(encoding="utf-8").split("\n", 1)[0].split()
    except OSError:
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[1:9])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Clip:
    """The benchmarked video and, for a generated clip, its ground-truth boxes per frame."""

    path: str
    frames: int
    width: int
    height: int
    truths: list[FloatArray] | None
    description: str


# ---------------------------------------------------------------- the clip


def bench_segments(width: int = 640, height: int = 480, seconds: float = 10.0) -> list[ClipSpec]:
    """Four equal segments: ordinary faces, small faces, motion blur, a dark scene.

    Face sizes scale with the frame width (given here at 640 px), so a larger
    resolution is the same scene with more pixels.
    """
    ast, grace = demo.astronaut(), demo.grace_hopper()
    k = width / 640.0
    seg = seconds / 4.0

    def spec(actors: tuple[Actor, ...], blur: int = 0, brightness: float = 1.0) -> ClipSpec:
        return ClipSpec(width, height, FPS, seg, actors, motion_blur=blur, brightness=brightness)

    ordinary = (
        Actor(ast, 110 * k, (0.25, 0.35), (0.10, 0.03), wobble=0.25),
        Actor(grace, 70 * k, (0.75, 0.65), (-0.09, -0.04), wobble=0.2),
    )
    small = (
        Actor(ast, 24 * k, (0.20, 0.30), (0.08, 0.05), wobble=0.1),
        Actor(grace, 30 * k, (0.70, 0.35), (-0.06, 0.04), wobble=0.1),
        Actor(ast, 44 * k, (0.45, 0.75), (0.05, -0.03), wobble=0.1),
        Actor(grace, 38 * k, (0.85, 0.70), (-0.04, -0.05), wobble=0.1),
    )
    moving = (
        Actor(ast, 80 * k, (0.30, 0.40), (0.45, 0.10), wobble=0.1),
        Actor(grace, 40 * k, (0.70, 0.60), (-0.40, -0.08), wobble=0.1),
    )
    dark = (
        Actor(grace, 90 * k, (0.35, 0.45), (0.08, 0.05), wobble=0.15),
        Actor(ast, 36 * k, (0.75, 0.55), (-0.07, 0.04), wobble=0.1),
    )
    return [spec(ordinary), spec(small), spec(moving, blur=max(3, round(9 * k))), spec(dark, brightness=0.35)]


def add_video_stream(
    container: av.container.OutputContainer, codec: str, size: tuple[int, int], options: Mapping[str, str]
) -> av.VideoStream:
    """A yuv420p video stream at FPS of ``size`` (width, height) with encoder ``options``."""
    stream = container.add_stream(codec, rate=FPS)
    if not isinstance(stream, av.VideoStream):
        raise BenchError(f"{codec} is not a video encoder")
    stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
    stream.options = dict(options)
    return stream


def write_segments(segments: list[ClipSpec], path: str | Path, crf: int = 18) -> list[FloatArray]:
    """Encode the segments back to back into one H.264 file; returns ground-truth boxes per frame."""
    truths: list[FloatArray] = []
    first = segments[0]
    with av.open(str(path), "w") as container:
        options = {"crf": str(crf), "preset": "veryfast"}
        stream = add_video_stream(container, "libx264", (first.width, first.height), options)
        for spec in segments:
            for image, gt in demo.render(spec):
                truths.append(gt)
                container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="bgr24")))
        container.mux(stream.encode(None))
    return truths


def make_clip(workdir: Path, seconds: float, width: int = 640, height: int = 480) -> Clip:
    segments = bench_segments(width, height, seconds)
    path = workdir / f"bench_{width}x{height}.mp4"
    truths = write_segments(segments, path)
    faces = sum(len(t) for t in truths)
    large = sum(int((np.minimum(t[:, 2] - t[:, 0], t[:, 3] - t[:, 1]) >= LARGE_FACE).sum()) for t in truths)
    description = (
        f"{width}x{height}, {len(truths)} frames at {FPS} fps, 4 segments (ordinary faces, small faces "
        f"22-48 px, motion blur, dark); {faces} face-frames, {large} of them >= {LARGE_FACE:.0f} px"
    )
    return Clip(str(path), len(truths), width, height, truths, description)


def probe_clip(path: str) -> Clip:
    """A user-supplied clip: no ground truth, so no recall."""
    if not Path(path).is_file():
        raise BenchError(f"clip not found: {path}")
    frames = sum(1 for _ in decode_frames(path, fmt=None))
    with av.open(path) as container:
        ctx = container.streams.video[0].codec_context
        width, height = ctx.width, ctx.height
    return Clip(path, frames, width, height, None, f"{path}: {width}x{height}, {frames} frames (no ground truth)")


# ---------------------------------------------------------------- decoding helpers


def decode_frames(path: str, fmt: str | None = "bgr24") -> Iterator[Any]:
    """Frames of the first video stream: BGR arrays, or PyAV frames when ``fmt`` is None."""
    try:
        container = av.open(path)
    except (av.error.FFmpegError, OSError) as exc:
        raise BenchError(f"cannot open {path}: {exc}") from None
    with container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for frame in container.decode(stream):
            yield frame if fmt is None else frame.to_ndarray(format=fmt)


def count_frames(path: str) -> int:
    return sum(1 for _ in decode_frames(path, fmt=None))


def one_frame_clip(clip: str, path: Path) -> None:
    """The clip's first frame as a 1-frame video (deface start-up cost)."""
    image = next(decode_frames(clip))
    with av.open(str(path), "w") as container:
        stream = add_video_stream(container, "libx264", (image.shape[1], image.shape[0]), {})
        container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="bgr24")))
        container.mux(stream.encode(None))


# ---------------------------------------------------------------- transcode baseline


class _DecodeThread(threading.Thread):
    """Decodes ``path`` into a bounded queue; ``None`` ends the stream; an error is kept for the caller."""

    def __init__(self, path: str, out: queue.Queue[Any], to_bgr: bool) -> None:
        super().__init__(name="bench-decode", daemon=True)
        self.path, self.out, self.to_bgr = path, out, to_bgr
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            for frame in decode_frames(self.path, "bgr24" if self.to_bgr else None):
                self.out.put(frame)
        except BaseException as exc:  # reported by the consumer
            self.error = exc
        finally:
            self.out.put(None)


def encoder_options(io: IOConfig) -> dict[str, str]:
    """The encoder settings fawn's file sink uses."""
    return {"preset": io.preset, "crf": str(io.crf)}


def transcode(clip: Clip, output: str, io: IOConfig, to_bgr: bool = False) -> Result:
    """Decode thread -> bounded queue -> encoder (fawn's codec, preset, crf). Wall clock of the whole run."""
    watch = Stopwatch()
    frames: queue.Queue[Any] = queue.Queue(maxsize=io.queue_size)
    decoder = _DecodeThread(clip.path, frames, to_bgr)
    count = 0
    with av.open(output, "w") as container:
        stream = add_video_stream(container, io.codec, (clip.width, clip.height), encoder_options(io))
        decoder.start()
        while (item := frames.get()) is not None:
            frame = av.VideoFrame.from_ndarray(item, format="bgr24") if to_bgr else item
            frame.pts, frame.time_base = count, Fraction(1, FPS)
            container.mux(stream.encode(frame))
            count += 1
        container.mux(stream.encode(None))
    decoder.join()
    if decoder.error is not None:
        raise BenchError(f"transcode of {clip.path} failed: {decoder.error}")
    name = "transcode + BGR round trip" if to_bgr else "transcode only (decode+encode)"
    seconds, cpu, others = watch.wall(), watch.cpu(), watch.others()
    notes = {"preset": io.preset, "crf": io.crf, "others_cpu": others}
    return Result(name, count, seconds, notes=notes, cpu_seconds=cpu)


# ---------------------------------------------------------------- fawn


def run_fawn(clip: Clip, output: str, *, cfg: PipelineConfig) -> Result:
    """:func:`streamer.runtime.pipeline.run` on the clip; wall clock of the whole call, models included."""
    from streamer.runtime.pipeline import RunOptions, run

    watch = Stopwatch()
    stats = run(clip.path, output, cfg, RunOptions(progress=False))
    seconds, cpu, others = watch.wall(), watch.cpu(), watch.others()
    summary = stats.to_json()
    name = f"fawn blur, every_n={cfg.detector.every_n}"
    notes = {"pipeline_fps": summary["fps"], "stage_ms": summary["stage_ms"], "tracks": summary["tracks"],
             "others_cpu": others}
    per_frame = dict(summary["per_frame_ms"])
    return Result(name, int(summary["frames"]), seconds, per_frame_ms=per_frame, notes=notes, cpu_seconds=cpu)


# ---------------------------------------------------------------- deface


def find_deface(option: str) -> str:
    """The deface executable: ``option`` if given, else ``.venv-deface/bin/deface`` (repo, cwd), else PATH."""
    if option:
        found = shutil.which(option)
        if found is None:
            raise BenchError(f"deface executable not found: {option}")
        return found
    for root in (Path(__file__).resolve().parents[2], Path.cwd()):
        candidate = root / ".venv-deface" / "bin" / "deface"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which("deface")
    if found is None:
        raise BenchError("deface not found: run scripts/setup_deface.sh, pass --deface PATH, or --no-deface")
    return found


def _run_deface(exe: str, clip: str, output: str) -> tuple[float, float, float | None]:
    """Run deface with its defaults (CPU execution provider): wall and CPU seconds, others' CPU share."""
    watch = Stopwatch()
    proc = subprocess.run([exe, clip, "-o", output, *DEFACE_ARGS], capture_output=True, text=True, check=False)
    seconds, cpu, others = watch.wall(), watch.cpu(), watch.others()
    if proc.returncode != 0 or not Path(output).is_file():
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise BenchError(f"deface failed (exit {proc.returncode}): {' | '.join(tail)}")
    return seconds, cpu, others


def run_deface(exe: str, clip: Clip, output: str, workdir: Path) -> Result:
    """Whole-process fps of deface on the clip, and its start-up cost from a 1-frame run."""
    tiny = workdir / "one_frame.mp4"
    one_frame_clip(clip.path, tiny)
    startup, _, _ = _run_deface(exe, str(tiny), str(workdir / "one_frame_deface.mp4"))
    seconds, cpu, others = _run_deface(exe, clip.path, output)
    frames = count_frames(output)
    steady = (frames - 1) / max(seconds - startup, 1e-6)
    notes = {"startup_s": round(startup, 2), "steady_fps": round(steady, 1), "version": _deface_version(exe),
             "others_cpu": others}
    return Result("deface (defaults, CPU)", frames, seconds, notes=notes, cpu_seconds=cpu)


def _deface_version(exe: str) -> str:
    proc = subprocess.run([exe, "--version"], capture_output=True, text=True, check=False)
    return (proc.stdout or proc.stderr).strip().splitlines()[-1] if proc.returncode == 0 else "unknown"


# ---------------------------------------------------------------- recall


def measure_recall(clip: Clip, output: str, result: Result) -> None:
    """Face recall of ``output`` against the clip, all faces and faces >= LARGE_FACE px, into ``result``."""
    if clip.truths is None:
        return
    frames = count_frames(output)
    if frames != clip.frames:
        raise BenchError(f"{result.name}: output has {frames} frames, the clip {clip.frames}: cannot align them")
    everything = face_recall(_pairs(clip, output))
    large = face_recall(_pairs(clip, output), min_face=LARGE_FACE)
    result.recall_all, result.faces_all = everything.recall, everything.faces
    result.recall_large, result.faces_large = large.recall, large.faces
    result.notes["leaked_frames"] = _ranges(everything)
    log.info("%s: recall %.3f of %d face-frames", result.name, everything.recall, everything.faces)


def _pairs(clip: Clip, output: str) -> Iterator[tuple[Image, Image, FloatArray]]:
    assert clip.truths is not None
    yield from zip(decode_frames(clip.path), decode_frames(output), clip.truths, strict=True)


def _ranges(report: RecallReport) -> str:
    """Leaked frame indices as compact ranges ("3-7, 90")."""
    frames = report.leaked_frames or []
    spans: list[list[int]] = []
    for index in frames:
        if spans and index == spans[-1][1] + 1:
            spans[-1][1] = index
        else:
            spans.append([index, index])
    return ", ".join(f"{a}-{b}" if b > a else f"{a}" for a, b in spans)


# ---------------------------------------------------------------- report


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    import onnxruntime

    return (
        f"{cpu}, {cores} cores usable, Python {platform.python_version()}, PyAV {av.__version__}, "
        f"onnxruntime {onnxruntime.__version__}"
    )


def _pct(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{100 * value:.{digits}f} %"


def _stage_text(ms: dict[str, float]) -> str:
    if not ms:
        return ""
    names = (("detect", "det"), ("track", "trk"), ("anonymize", "anon"), ("decode_wait", "dec-wait"),
             ("encode_wait", "enc-wait"))
    return " · ".join(f"{short} {ms[key]:.1f}" for key, short in names if key in ms)


def format_table(results: list[Result]) -> str:
    """The results as a Markdown table (fps over the whole run, ratios, recall, fawn's ms per frame)."""
    by_name = {r.name: r for r in results}
    base = by_name.get("transcode only (decode+encode)")
    peer = next((r for r in results if r.name.startswith("deface")), None)
    lines = [
        "| run | fps | × deface | % of transcode | recall (all faces) | recall (≥ 48 px) | CPU ms/frame "
        "| fawn stage ms/frame | others' CPU |",
        "|---|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    for r in results:
        ratio = f"{r.fps / peer.fps:.2f}×" if peer else "n/a"
        share = f"{100 * r.fps / base.fps:.0f} %" if base else "n/a"
        lines.append(
            f"| {r.name} | {r.fps:.1f} | {ratio} | {share} | {_pct(r.recall_all)} | {_pct(r.recall_large)} "
            f"| {r.cpu_ms_per_frame:.1f} | {_stage_text(r.per_frame_ms)} | {_pct(r.notes.get('others_cpu'), 0)} |"
        )
    return "\n".join(lines) + "\n"


LEGEND = (
    "fps: frames / wall seconds of the whole run (fawn: the whole `pipeline.run` call, models included; "
    "deface: the whole process). CPU ms/frame: user + system CPU time of the run per frame. "
    "others' CPU: share of the machine's CPU that other processes took during the run (0 % = a clean run). "
    "Recall: face-frames whose detail is gone in the output (`streamer.tools.verify`), against exact ground truth."
)


def format_report(clip: Clip, results: list[Result]) -> str:
    """Clip, machine, the table and per-run notes, as Markdown."""
    notes = []
    for r in results:
        if r.name.startswith("deface"):
            notes.append(
                f"- deface {r.notes.get('version', '')}: start-up (imports + model load, 1-frame run) "
                f"{r.notes.get('startup_s')} s; {r.notes.get('steady_fps')} fps without it."
            )
        if r.notes.get("leaked_frames"):
            notes.append(f"- {r.name}: faces left visible in frames {r.notes['leaked_frames']}")
    header = f"Clip: {clip.description}\nMachine: {machine()}\n\n"
    return header + format_table(results) + "\n" + LEGEND + "\n" + ("\n" + "\n".join(notes) + "\n" if notes else "")


def write_json(path: str, clip: Clip, results: list[Result]) -> None:
    data = {
        "clip": clip.description,
        "machine": machine(),
        "results": [
            {**dataclasses.asdict(r), "fps": round(r.fps, 2), "cpu_ms_per_frame": round(r.cpu_ms_per_frame, 2)}
            for r in results
        ],
    }
    Path(path).write_text(json.dumps(data, indent=2), encoding="utf-8")


def write_plot(path: str, results: list[Result]) -> None:
    """Bar chart of fps per run, recall written on the bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 0.6 * len(results) + 1.5))
    names = [r.name for r in results][::-1]
    values = [r.fps for r in results][::-1]
    bars = ax.barh(names, values, color="#4c72b0")
    for bar, r in zip(bars, results[::-1], strict=True):
        label = f" {r.fps:.0f} fps" + ("" if r.recall_all is None else f", recall {100 * r.recall_all:.1f} %")
        ax.text(bar.get_width(), bar.get_y() + bar.get_height() / 2, label, va="center", fontsize=8)
    ax.set_xlabel("frames per second (whole run)")
    ax.set_xlim(0, max(values) * 1.35)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ---------------------------------------------------------------- driver


def fawn_configs(every_n: int | None) -> list[PipelineConfig]:
    """The configured stride plus 2 and 3, or only ``every_n`` when given."""
    base = load_config(None)
    strides = [every_n] if every_n is not None else sorted({base.detector.every_n, *EXTRA_STRIDES})
    return [load_config(None, {"detector.every_n": n}) for n in strides]


def _timed_steps(clip: Clip, opts: BenchOptions, workdir: Path) -> list[tuple[str, Callable[[str], Result]]]:
    """(output file name, run) for every benchmarked run, in order."""
    io = load_config(None).io
    steps: list[tuple[str, Callable[[str], Result]]] = [
        ("transcode.mp4", lambda out: transcode(clip, out, io)),
        ("transcode_bgr.mp4", lambda out: transcode(clip, out, io, to_bgr=True)),
    ]
    for cfg in fawn_configs(opts.every_n):
        steps.append((f"fawn_n{cfg.detector.every_n}.mp4", partial(run_fawn, clip, cfg=cfg)))
    if opts.deface is not None:
        exe = find_deface(opts.deface)
        steps.append(("deface.mp4", lambda out: run_deface(exe, clip, out, workdir)))
    return steps


def run_bench(opts: BenchOptions) -> str:
    """Run every benchmark on one clip (generated at 640x480), sequentially; returns the Markdown report."""
    return run_bench_at(opts, 640, 480)


def run_bench_at(opts: BenchOptions, width: int, height: int) -> str:
    """:func:`run_bench` with the generated clip at ``width`` x ``height`` (ignored for ``opts.clip``)."""
    with tempfile.TemporaryDirectory(prefix="fawn-bench-") as tmp:
        workdir = Path(tmp)
        clip = probe_clip(opts.clip) if opts.clip else make_clip(workdir, opts.seconds, width, height)
        log.info("clip: %s", clip.description)
        results = [_measure(clip, filename, step, workdir) for filename, step in _timed_steps(clip, opts, workdir)]
    report = format_report(clip, results)
    if opts.json_path:
        write_json(opts.json_path, clip, results)
    if opts.plot_path:
        write_plot(opts.plot_path, results)
    return report


def _measure(clip: Clip, filename: str, step: Callable[[str], Result], workdir: Path) -> Result:
    """One timed run into ``workdir/filename``, then its face recall (timed runs never include recall)."""
    output = str(workdir / filename)
    result = step(output)
    log.info("%s: %d frames in %.2f s (%.1f fps)", result.name, result.frames, result.seconds, result.fps)
    if result.name != "transcode + BGR round trip":
        measure_recall(clip, output, result)
    return result
