"""``fawn bench --stress``: fawn (default, ``cctv``) vs deface on stress footage, in one run.

For each resolution (640x480, 1280x720, 1920x1080 by default) one H.264 clip is
generated from real photos (:mod:`streamer.tools.stress`: small faces, rolled heads,
sensor noise, faces cut by each frame edge, motion blur, exposure dips). Each
tool runs on it as a whole process (``fawn run`` / ``deface`` in subprocesses, so
imports and model load count for both), interleaved resolution by resolution so
a busy machine slows all of them alike; with ``repeat`` > 1 every tool runs that many
times per resolution, round after round, and its fps and start-up are the medians (a
shared VM's speed drifts by 10-20 % from minute to minute). Reported per tool and
resolution: the whole-process fps, its ratio to deface's, start-up seconds (a 1-frame run), and
recall per segment: a face-frame counts as hidden only when the whole face box
is (its centre region and the whole box, :func:`streamer.tools.verify.face_hidden`).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av

from streamer.core.types import FloatArray
from streamer.tools import stress
from streamer.tools.bench import BenchError, add_video_stream, decode_frames, find_deface, machine
from streamer.tools.verify import face_hidden

log = logging.getLogger(__name__)

SIZES = ((640, 480), (1280, 720), (1920, 1080))
FPS = 15
DEFACE_ARGS = ("--ep", "CPUExecutionProvider")
FAWN_PRESETS = ("default", "cctv")


@dataclass(frozen=True)
class StressClip:
    path: str
    width: int
    height: int
    truths: list[FloatArray]
    segment_of_frame: list[str]


@dataclass
class ToolRun:
    """One tool on one clip: whole-process wall time, start-up, recall per segment."""

    tool: str
    size: str
    frames: int
    seconds: float
    startup_s: float
    hidden: dict[str, int] = field(default_factory=dict)
    faces: dict[str, int] = field(default_factory=dict)
    leaked_frames: list[int] = field(default_factory=list)
    rounds_s: list[float] = field(default_factory=list)  # whole-process seconds of every round

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    def recall(self, segment: str | None = None) -> float:
        if segment is None:
            faces, hidden = sum(self.faces.values()), sum(self.hidden.values())
        else:
            faces, hidden = self.faces.get(segment, 0), self.hidden.get(segment, 0)
        return hidden / faces if faces else 1.0


def make_clip(workdir: Path, width: int, height: int, frames_per_segment: int) -> StressClip:
    """All stress segments back to back in one H.264 file (crf 18) with their ground truth."""
    path = workdir / f"stress_{width}x{height}.mp4"
    truths: list[FloatArray] = []
    segments: list[str] = []
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=FPS)
        assert isinstance(stream, av.VideoStream)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": "18", "preset": "veryfast"}
        for spec in stress.segment_specs(width, height, frames_per_segment, FPS):
            for image, gt in stress.render(spec):
                truths.append(gt)
                segments.append(spec.name)
                container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="bgr24")))
        container.mux(stream.encode(None))
    return StressClip(str(path), width, height, truths, segments)


def one_frame(clip: StressClip, workdir: Path) -> str:
    """The clip's first frame as a 1-frame video: a run on it is the tool's start-up."""
    path = workdir / f"one_{clip.width}x{clip.height}.mp4"
    image = next(decode_frames(clip.path))
    with av.open(str(path), "w") as container:
        stream = add_video_stream(container, "libx264", (clip.width, clip.height), {})
        container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="bgr24")))
        container.mux(stream.encode(None))
    return str(path)


def tool_command(tool: str, source: str, output: str, deface: str | None) -> list[str]:
    if tool == "deface":
        if deface is None:
            raise BenchError("deface was not found")
        return [deface, source, "-o", output, *DEFACE_ARGS]
    preset = tool.removeprefix("fawn ")
    return [sys.executable, "-m", "streamer.cli", "run", source, "-o", output, "-c", preset, "--no-progress"]


def preset_file(preset: str, workdir: Path) -> str:
    """``NAME`` as is, or ``NAME:key=value+section.key=value`` (bare keys: detector) as a YAML file in ``workdir``."""
    if ":" not in preset:
        return preset
    import yaml

    from streamer.core.config import presets_dir

    name, _, pairs = preset.partition(":")
    data = yaml.safe_load((presets_dir() / f"{name}.yaml").read_text(encoding="utf-8"))
    for pair in pairs.split("+"):
        key, _, value = pair.partition("=")
        section, _, name = key.strip().rpartition(".")
        data.setdefault(section or "detector", {})[name] = yaml.safe_load(value)
    path = workdir / (preset.replace(":", "_").replace("+", "_").replace("=", "-") + ".yaml")
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return str(path)


def timed(cmd: list[str], output: str) -> float:
    """Wall seconds of a whole process; a failure or a missing output is a BenchError."""
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    if proc.returncode != 0 or not Path(output).is_file():
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise BenchError(f"{Path(cmd[0]).name} failed (exit {proc.returncode}): {' | '.join(tail)}")
    return seconds


def measure(clip: StressClip, output: str, run: ToolRun) -> None:
    """Recall per segment of ``output`` against the clip's ground truth, into ``run``."""
    frames = 0
    for index, (original, result) in enumerate(zip(decode_frames(clip.path), decode_frames(output), strict=False)):
        frames += 1
        segment = clip.segment_of_frame[index]
        for box in clip.truths[index]:
            run.faces[segment] = run.faces.get(segment, 0) + 1
            if face_hidden(original, result, box):  # the whole box, not only its centre
                run.hidden[segment] = run.hidden.get(segment, 0) + 1
            elif not run.leaked_frames or run.leaked_frames[-1] != index:
                run.leaked_frames.append(index)
    if frames != len(clip.truths):
        raise BenchError(f"{run.tool}: output has {frames} frames, the clip {len(clip.truths)}")


@dataclass(frozen=True)
class StressOptions:
    sizes: tuple[tuple[int, int], ...] = SIZES
    frames_per_segment: int = 40
    deface: str | None = ""  # "" finds .venv-deface; None skips deface
    presets: tuple[str, ...] = FAWN_PRESETS
    repeat: int = 1  # rounds per resolution: fps and start-up are the medians
    json_path: str | None = None
    plot_path: str | None = None


def run_stress(opts: StressOptions) -> dict[str, Any]:
    """Every tool on every resolution's clip, interleaved; returns the report as a dict."""
    exe = find_deface(opts.deface) if opts.deface is not None else None
    runs: list[ToolRun] = []
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="fawn-stress-") as tmp:
        workdir = Path(tmp)
        tools = [f"fawn {preset_file(p, workdir)}" for p in opts.presets]
        if exe is not None:
            tools.insert(0, "deface")
        for width, height in opts.sizes:
            clip = make_clip(workdir, width, height, opts.frames_per_segment)
            tiny = one_frame(clip, workdir)
            runs.extend(_run_rounds(tools, clip, tiny, workdir, exe, opts.repeat))
    report = {
        "machine": machine(),
        "load_avg_at_end": _loadavg(),
        "minutes": round((time.time() - started) / 60, 1),
        "segments": list(stress.SEGMENTS),
        "frames_per_segment": opts.frames_per_segment,
        "repeat": opts.repeat,
        "fps": FPS,
        "runs": [{**dataclasses.asdict(r), "fps": round(r.fps, 2), "recall": round(r.recall(), 4)} for r in runs],
    }
    if opts.json_path:
        Path(opts.json_path).write_text(json.dumps(report, indent=2), encoding="utf-8")
    if opts.plot_path:
        write_plot(opts.plot_path, runs)
    return report


def _run_rounds(tools: list[str], clip: StressClip, tiny: str, workdir: Path, deface: str | None,
                repeat: int) -> list[ToolRun]:
    """Every tool ``repeat`` times on ``clip``, round after round; recall is measured on the first
    round's output, fps and start-up are the medians of all rounds."""
    runs: dict[str, ToolRun] = {}
    startups: dict[str, list[float]] = {tool: [] for tool in tools}
    for round_ in range(max(repeat, 1)):
        for tool in tools:
            startup, seconds, output = _time_tool(tool, clip, tiny, workdir, deface)
            startups[tool].append(startup)
            if round_ == 0:
                runs[tool] = ToolRun(tool, f"{clip.width}x{clip.height}", len(clip.truths), seconds, startup)
                measure(clip, output, runs[tool])
            runs[tool].rounds_s.append(seconds)
    for tool, run in runs.items():
        run.seconds, run.startup_s = statistics.median(run.rounds_s), statistics.median(startups[tool])
        log.info("%s %s: %.2f fps (rounds %s), recall %.4f, start-up %.2f s", tool, run.size, run.fps,
                 [round(run.frames / s, 2) for s in run.rounds_s], run.recall(), run.startup_s)
    return list(runs.values())


def _time_tool(tool: str, clip: StressClip, tiny: str, workdir: Path, deface: str | None) -> tuple[float, float, str]:
    """(start-up s, whole-run s, output path) of one tool on ``clip``: a 1-frame run, then the clip."""
    size = f"{clip.width}x{clip.height}"
    stem = Path(tool.replace(" ", "_")).stem
    startup_out = str(workdir / f"{stem}_one_{size}.mp4")
    startup = timed(tool_command(tool, tiny, startup_out, deface), startup_out)
    output = str(workdir / f"{stem}_{size}.mp4")
    return startup, timed(tool_command(tool, clip.path, output, deface), output), output


def _loadavg() -> str:
    try:
        return Path("/proc/loadavg").read_text(encoding="utf-8").split(" ", 3)[:3].__str__()
    except OSError:
        return "n/a"


def runs_from(report: dict[str, Any]) -> list[ToolRun]:
    fields = {f.name for f in dataclasses.fields(ToolRun)}
    return [ToolRun(**{k: v for k, v in r.items() if k in fields}) for r in report["runs"]]


def format_table(report: dict[str, Any]) -> str:
    """Markdown: one row per tool and resolution."""
    runs = runs_from(report)
    segments = report["segments"]
    head = ["size", "tool", "fps", "× deface", "start-up s", *segments, "all"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * 2 + "---:|" * (len(head) - 2)]
    for run in runs:
        peer = next((r for r in runs if r.tool == "deface" and r.size == run.size), None)
        ratio = f"{run.fps / peer.fps:.2f}×" if peer and peer.fps else "n/a"
        cells = [f"{100 * run.recall(s):.1f}" for s in segments]
        lines.append(f"| {run.size} | {run.tool} | {run.fps:.2f} | {ratio} | {run.startup_s:.2f} | "
                     + " | ".join(cells) + f" | **{100 * run.recall():.2f}** |")
    faces = {s: runs[0].faces.get(s, 0) for s in segments} if runs else {}
    return "\n".join(lines) + f"\n\nRecall in % of face-frames (whole face box); face-frames per segment at each size: {faces}\n"


def write_plot(path: str, runs: list[ToolRun]) -> None:
    """fps per tool and resolution (bars), overall recall written above each bar."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = list(dict.fromkeys(r.size for r in runs))
    tools = list(dict.fromkeys(r.tool for r in runs))
    fig, ax = plt.subplots(figsize=(9, 4))
    width = 0.8 / max(len(tools), 1)
    for t, tool in enumerate(tools):
        for s, size in enumerate(sizes):
            run = next((r for r in runs if r.tool == tool and r.size == size), None)
            if run is None:
                continue
            bar = ax.bar(s + t * width, run.fps, width, color=f"C{t}", label=tool if s == 0 else None)
            ax.text(bar[0].get_x() + width / 2, run.fps, f"{100 * run.recall():.1f}%", ha="center", va="bottom", fontsize=7)
    ax.set_xticks([s + width * (len(tools) - 1) / 2 for s in range(len(sizes))], sizes)
    ax.set_ylabel("whole-process fps")
    ax.set_title("stress clips: fps (bars) and recall of face-frames (labels)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def iter_sizes(text: str) -> Iterator[tuple[int, int]]:
    """``640x480,1280x720`` -> (640, 480), (1280, 720); a bad item is a BenchError."""
    for item in text.split(","):
        try:
            w, h = (int(v) for v in item.lower().split("x"))
        except ValueError:
            raise BenchError(f"--sizes: expected WIDTHxHEIGHT[,WIDTHxHEIGHT...], got '{item}'") from None
        if w < 64 or h < 64:
            raise BenchError(f"--sizes: {item} is too small (>= 64x64)")
        yield w, h
