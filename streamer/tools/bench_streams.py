"""How many live streams one machine sustains: ``scripts/bench_streams.py``.

Each stream is a ``demo-live`` camera (real face photos, H.264 decoded live on
the wall clock, frames dropped when the pipeline is behind), anonymized with
blur and encoded to an MP4 with the live preset, all in one process with shared
models (:class:`~streamer.runtime.multistream.MultiStreamRun`). A run warms up, then
measures each stream's delivered fps, dropped share and latency. A setting is
*sustained* when every stream delivers at least ``SUSTAIN`` of its frame rate
and drops at most ``1 - SUSTAIN`` of its frames.
"""

from __future__ import annotations

import json
import logging
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from streamer.core.config import load_config
from streamer.runtime.multistream import MultiStreamOptions, MultiStreamRun
from streamer.tools.bench import Stopwatch, machine

log = logging.getLogger(__name__)

SUSTAIN = 0.95


@dataclass(frozen=True)
class StreamsPoint:
    """One measured setting: ``streams`` cameras of ``width``x``height`` at ``fps``."""

    width: int
    height: int
    fps: float
    streams: int
    config: str
    delivered_fps: float  # the slowest stream's delivered frames per second
    dropped: float  # the worst stream's share of frames dropped
    latency_ms: float  # mean of the streams' recent decode-to-output latency
    mean_batch: float
    others_cpu: float | None

    @property
    def sustained(self) -> bool:
        return self.delivered_fps >= SUSTAIN * self.fps and self.dropped <= 1 - SUSTAIN


def measure(
    width: int, height: int, fps: float, streams: int, overrides: dict[str, Any], label: str,
    warmup: float = 3.0, seconds: float = 8.0,
) -> StreamsPoint:
    """Run ``streams`` live cameras for ``warmup + seconds`` and measure the last ``seconds``."""
    with tempfile.TemporaryDirectory(prefix="fawn-bench-streams-") as tmp:
        specs = [{"name": f"cam{i}", "source": f"demo-live:{width}x{height}@{fps:g}",
                  "output": str(Path(tmp) / f"cam{i}.mp4")} for i in range(streams)]
        cfg = load_config(None, {**overrides, "streams": specs, "io.progress": False})
        stop = threading.Event()
        multi = MultiStreamRun(cfg, MultiStreamOptions(stop=stop, progress=False))
        worker = threading.Thread(target=multi.run, daemon=True)
        worker.start()
        time.sleep(warmup)
        before = [(r.stats.frames_out, r.stats.dropped) for r in multi.results]
        watch = Stopwatch()
        time.sleep(seconds)
        after = [(r.stats.frames_out, r.stats.dropped, r.stats.latency.recent_ms()) for r in multi.results]
        wall, others = watch.wall(), watch.others()
        summary = multi.summary()["total"]
        stop.set()
        worker.join(30)
    failed = [r.error for r in multi.results if r.error]
    if failed:
        raise RuntimeError(f"a benchmark stream failed: {failed[0]}")
    rates = [(a[0] - b[0]) / wall for a, b in zip(after, before)]
    drops = [drop_share(a[0] - b[0], a[1] - b[1]) for a, b in zip(after, before)]
    return StreamsPoint(width, height, fps, streams, label, round(min(rates), 2), round(max(drops), 4),
                        round(sum(a[2] for a in after) / len(after), 1), float(summary["mean_batch"]),
                        None if others is None else round(others, 3))


def drop_share(frames_out: int, dropped: int) -> float:
    """The share of a stream's frames dropped in a window: dropped / (sent out + dropped); 0 when none came."""
    return dropped / (frames_out + dropped) if frames_out + dropped else 0.0


def sweep(
    sizes: list[tuple[int, int]], rates: list[float], configs: dict[str, dict[str, Any]], max_streams: int,
    warmup: float, seconds: float,
) -> list[StreamsPoint]:
    """For each size, rate and config: 1, 2, ... streams until one is not sustained (or ``max_streams``)."""
    points: list[StreamsPoint] = []
    for label, overrides in configs.items():
        for width, height in sizes:
            for fps in rates:
                for n in range(1, max_streams + 1):
                    point = measure(width, height, fps, n, overrides, label, warmup, seconds)
                    log.info("%s %dx%d@%g x%d: %.1f fps/stream, %.1f%% dropped, %.0f ms%s", label, width, height,
                             fps, n, point.delivered_fps, 100 * point.dropped, point.latency_ms,
                             "" if point.sustained else "  (not sustained)")
                    points.append(point)
                    if not point.sustained:
                        break
    return points


def sustained_table(points: list[StreamsPoint]) -> str:
    """Markdown: the most streams sustained per config, size and rate ("≥ N": the sweep's limit)."""
    keys = sorted({(p.config, p.width, p.height) for p in points}, key=lambda k: (k[0], k[1] * k[2]))
    rates = sorted({p.fps for p in points})
    head = "| config | resolution | " + " | ".join(f"streams at {r:g} fps" for r in rates) + " |"
    lines = [head, "|---|---|" + "---:|" * len(rates)]
    for config, w, h in keys:
        cells = []
        for r in rates:
            runs = [p for p in points if (p.config, p.width, p.height, p.fps) == (config, w, h, r)]
            ok = [p.streams for p in runs if p.sustained]
            best = max(ok) if ok else 0
            # every run sustained: the sweep stopped at its limit, not at the machine's
            cells.append(f"≥ {best}" if runs and len(ok) == len(runs) else str(best))
        lines.append(f"| {config} | {w}x{h} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def points_table(points: list[StreamsPoint]) -> str:
    """Markdown: every measured point (the scaling from 1 to N streams)."""
    lines = ["| config | resolution | fps | streams | delivered fps (slowest) | dropped (worst) | latency ms | "
             "mean batch | others' CPU | sustained |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for p in points:
        others = "n/a" if p.others_cpu is None else f"{100 * p.others_cpu:.0f} %"
        lines.append(f"| {p.config} | {p.width}x{p.height} | {p.fps:g} | {p.streams} | {p.delivered_fps:.1f} | "
                     f"{100 * p.dropped:.1f} % | {p.latency_ms:.0f} | {p.mean_batch:.2f} | {others} | "
                     f"{'yes' if p.sustained else 'no'} |")
    return "\n".join(lines)


def write_outputs(points: list[StreamsPoint], json_path: str | None, plot_path: str | None) -> None:
    if json_path:
        Path(json_path).write_text(json.dumps({"machine": machine(), "points": [asdict(p) for p in points]}, indent=2), encoding="utf-8")
    if plot_path:
        write_plot(points, plot_path)


def write_plot(points: list[StreamsPoint], path: str) -> None:
    """Delivered share of the camera frame rate against streams: one panel per rate,
    colour per resolution, line style per config."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rates = sorted({p.fps for p in points})
    sizes = sorted({(p.width, p.height) for p in points}, key=lambda s: s[0] * s[1])
    configs = sorted({p.config for p in points})
    styles = ["-", "--", ":", "-."]
    fig, axes = plt.subplots(1, len(rates), figsize=(5.5 * len(rates), 5.0), sharey=True, squeeze=False)
    for ax, rate in zip(axes[0], rates):
        for ci, config in enumerate(configs):
            for si, size in enumerate(sizes):
                series = [p for p in points if (p.fps, p.config, (p.width, p.height)) == (rate, config, size)]
                if series:
                    ax.plot([p.streams for p in series], [p.delivered_fps / p.fps for p in series], marker="o",
                            color=f"C{si}", linestyle=styles[ci % len(styles)], label=f"{size[0]}x{size[1]}, {config}")
        ax.axhline(SUSTAIN, color="grey", linestyle="--", linewidth=1)
        ax.set_title(f"cameras at {rate:g} fps")
        ax.set_xlabel("streams in one process")
        ax.xaxis.get_major_locator().set_params(integer=True)
    axes[0][0].set_ylabel("delivered / camera frame rate (slowest stream)")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=7, loc="lower center", ncol=3, frameon=False)
    fig.suptitle("fawn: live streams in one process (blur, shared models; grey line: 95 %)")
    fig.tight_layout(rect=(0, 0.14, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def load_points(paths: list[str]) -> list[StreamsPoint]:
    """Points saved by :func:`write_outputs` (several runs can be combined)."""
    points: list[StreamsPoint] = []
    for path in paths:
        points += [StreamsPoint(**p) for p in json.loads(Path(path).read_text(encoding="utf-8"))["points"]]
    return points


def recall(width: int, height: int, overrides: dict[str, Any], seconds: float = 10.0) -> tuple[float, float]:
    """(recall of all faces, of faces >= 48 px) of a config on ``fawn bench``'s clip at this size
    (ordinary, small 22-48 px, motion-blurred and dark faces, exact ground truth)."""
    from streamer.tools.bench import make_clip, measure_recall, run_fawn

    with tempfile.TemporaryDirectory(prefix="fawn-bench-recall-") as tmp:
        clip = make_clip(Path(tmp), seconds, width, height)
        out = str(Path(tmp) / "out.mp4")
        result = run_fawn(clip, out, cfg=load_config(None, overrides))
        measure_recall(clip, out, result)
    assert result.recall_all is not None and result.recall_large is not None
    return result.recall_all, result.recall_large
