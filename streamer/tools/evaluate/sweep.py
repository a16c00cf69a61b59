"""``fawn sweep``: evaluate a grid of settings, tabulate them, plot the privacy-utility front.

Outputs in the report folder: ``sweep.csv`` (one row per setting, every metric),
``sweep.json``, ``pareto.png`` (privacy score against AGR and against the
detection rate, Pareto front drawn) and ``sweep.md``/``sweep.html`` naming the
best setting by the seed study's composite score (normalized re-ID 0.25,
normalized similarity 0.25, AGR 0.5).
"""

from __future__ import annotations

import csv
import html
import itertools
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from matplotlib.figure import Figure

from streamer.core.errors import ConfigError, FawnError
from streamer.tools.evaluate.report import DESCRIPTIONS, html_page, save_figure, write_json
from streamer.tools.evaluate.runner import ALL_KEYS, Evaluator, Result

log = logging.getLogger(__name__)

DEFAULT_GRID: tuple[dict[str, Any], ...] = (
    *({"anonymizer.method": "blur", "anonymizer.strength": s} for s in (0.25, 0.5, 0.75, 1.0)),
    *({"anonymizer.method": "pixelate", "anonymizer.blocks": b} for b in (16, 12, 8)),
    {"anonymizer.method": "solid"},
    *({"anonymizer.method": "ksame", "ksame.k": k} for k in (2, 3, 4)),
)
TABLE_KEYS = (
    "reid_rate", "avg_similarity", "verification_auc", "closed_set_top1", "attacker_top1",
    "detection_rate", "agr", "ssim_face", "fid", "privacy_score", "composite",
)
MARKERS = {"blur": "o", "pixelate": "s", "solid": "X", "ksame": "^", "diffusion": "D"}


@dataclass
class SweepRow:
    label: str
    overrides: dict[str, Any]
    result: Result | None = None
    error: str | None = None

    def value(self, key: str) -> float | None:
        return None if self.result is None else self.result.values.get(key)

    @property
    def method(self) -> str:
        return str(self.overrides.get("anonymizer.method", self.result.info.get("method", "?") if self.result else "?"))


@dataclass
class SweepResult:
    rows: list[SweepRow] = field(default_factory=list)
    best: SweepRow | None = None
    files: dict[str, Path] = field(default_factory=dict)


def parse_grid(items: Sequence[str]) -> list[dict[str, Any]]:
    """``["anonymizer.method=blur,pixelate", "anonymizer.strength=0.2,0.5"]`` -> the cartesian product.

    Values are YAML scalars (``0.5`` a number, ``true`` a boolean, ``blur`` a string).
    """
    axes: list[tuple[str, list[Any]]] = []
    for item in items:
        key, sep, values = item.partition("=")
        if not sep or not key.strip() or not values.strip():
            raise ConfigError(f"--grid '{item}': expected KEY=V1,V2,... (e.g. anonymizer.strength=0.2,0.5)")
        axes.append((key.strip(), [yaml.safe_load(v) for v in values.split(",") if v.strip()]))
    keys = [k for k, _ in axes]
    return [dict(zip(keys, combo)) for combo in itertools.product(*(v for _, v in axes))]


def label_of(overrides: dict[str, Any]) -> str:
    """``blur strength=0.5`` from ``{"anonymizer.method": "blur", "anonymizer.strength": 0.5}``."""
    method = overrides.get("anonymizer.method")
    rest = [f"{k.rsplit('.', 1)[-1]}={v}" for k, v in overrides.items() if k != "anonymizer.method"]
    return " ".join([str(method)] * (method is not None) + rest) or "config"


def run_sweep(evaluator: Evaluator, points: Sequence[dict[str, Any]], out_dir: str | Path) -> SweepResult:
    """Evaluate every point, then write the CSV, JSON, plot and reports into ``out_dir``."""
    sweep = SweepResult()
    for i, point in enumerate(points, 1):
        row = SweepRow(label_of(point), dict(point))
        log.info("sweep %d/%d: %s", i, len(points), row.label)
        try:
            row.result = evaluator.evaluate(point)
        except FawnError as exc:  # one bad point (e.g. k-Same without a gallery) does not end the sweep
            row.error = str(exc)
            log.warning("sweep point %s failed: %s", row.label, exc)
        sweep.rows.append(row)
    sweep.best = best_row(sweep.rows)
    sweep.files = write_sweep(sweep, Path(out_dir))
    return sweep


def best_row(rows: Sequence[SweepRow]) -> SweepRow | None:
    """The row with the highest composite score (privacy score when no row has a composite)."""
    for key in ("composite", "privacy_score"):
        scored = [r for r in rows if r.value(key) is not None]
        if scored:
            return max(scored, key=lambda r: float(r.value(key) or 0.0))
    return None


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats on both axes (higher is better), by x."""
    front = []
    for i, (x, y) in enumerate(points):
        dominated = any(
            (ox >= x and oy >= y) and (ox > x or oy > y) for j, (ox, oy) in enumerate(points) if j != i
        )
        if not dominated:
            front.append(i)
    return sorted(front, key=lambda i: points[i][0])


def write_sweep(sweep: SweepResult, out: Path) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    files = {"csv": write_csv(sweep.rows, out / "sweep.csv")}
    data = {
        "best": sweep.best.label if sweep.best else None,
        "rows": [
            {"label": r.label, "overrides": r.overrides, "error": r.error, **(r.result.to_json() if r.result else {})}
            for r in sweep.rows
        ],
    }
    files["json"] = write_json(data, out / "sweep.json")
    plot = plot_pareto(sweep.rows, out / "pareto.png")
    if plot is not None:
        files["pareto"] = plot
    files["markdown"] = out / "sweep.md"
    files["markdown"].write_text(sweep_markdown(sweep, plot.name if plot else None), encoding="utf-8")
    files["html"] = out / "sweep.html"
    files["html"].write_text(sweep_html(sweep, plot.name if plot else None), encoding="utf-8")
    return files


def write_csv(rows: Sequence[SweepRow], path: Path) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["label", "overrides", *ALL_KEYS, "error"])
        for r in rows:
            values = ["" if r.value(k) is None else f"{r.value(k):.6g}" for k in ALL_KEYS]
            writer.writerow([r.label, json.dumps(r.overrides), *values, r.error or ""])
    return path


def plot_pareto(rows: Sequence[SweepRow], path: Path) -> Path | None:
    """Privacy score against AGR and against detection rate, one marker per method, Pareto front dashed."""
    axes_keys = [k for k in ("agr", "detection_rate") if any(r.value(k) is not None for r in rows)]
    usable = [r for r in rows if r.value("privacy_score") is not None]
    if not usable or not axes_keys:
        return None
    fig = Figure(figsize=(5.0 * len(axes_keys), 4.0), layout="constrained")
    for n, key in enumerate(axes_keys, 1):
        ax = fig.add_subplot(1, len(axes_keys), n)
        pts = [r for r in usable if r.value(key) is not None]
        xy = [(float(r.value("privacy_score") or 0.0), float(r.value(key) or 0.0)) for r in pts]
        for method in dict.fromkeys(r.method for r in pts):
            sel = [p for p, r in zip(xy, pts) if r.method == method]
            ax.scatter([x for x, _ in sel], [y for _, y in sel], marker=MARKERS.get(method, "o"), label=method, s=36)
        for (x, y), r in zip(xy, pts):
            short = r.label.split(" ", 1)[-1].split("=")[-1] if " " in r.label else r.label
            ax.annotate(short, (x, y), fontsize=6, xytext=(3, 3), textcoords="offset points")
        front = pareto_front(xy)
        ax.plot([xy[i][0] for i in front], [xy[i][1] for i in front], "--", color="grey", lw=1, label="Pareto front")
        ax.set_xlabel("privacy score (1 = chance re-ID and similarity)")
        ax.set_ylabel(key)
        ax.set_title(f"{key} (labels: strength, blocks or k)", fontsize=8)
        ax.set_xlim(-0.05, 1.05)
        ax.set_ylim(-0.05, 1.1)
        ax.legend(fontsize=7, loc="lower left")
    fig.suptitle("Privacy vs utility")
    return save_figure(fig, path)


def _cell(value: float | None) -> str:
    return "-" if value is None or not np.isfinite(value) else f"{value:.3f}"


def _best_line(sweep: SweepResult) -> str:
    if sweep.best is None:
        return "no setting could be scored"
    key = "composite" if sweep.best.value("composite") is not None else "privacy_score"
    return f"best setting by {key}: **{sweep.best.label}** ({key} {_cell(sweep.best.value(key))})"


def _context(sweep: SweepResult) -> list[str]:
    first = next((r.result for r in sweep.rows if r.result is not None), None)
    if first is None:
        return []
    info = first.info
    chance = info.get("chance", {})
    lines = [f"input `{info.get('input')}`: {info.get('faces')} faces of {info.get('identities')} identities; chance levels: "
             + ", ".join(f"{k} {v:.3f}" for k, v in chance.items())]
    if "agr" in chance:
        lines.append("AGR is not 0 at chance (a fill still 'agrees' on gender about half the time): compare AGR with its chance level")
    return lines + [f"note: {n}" for n in info.get("notes", [])]


def sweep_markdown(sweep: SweepResult, plot: str | None) -> str:
    lines = ["# fawn sweep", "", _best_line(sweep), ""]
    lines += [f"- {c}" for c in _context(sweep)] + [""]
    lines += ["| setting | " + " | ".join(TABLE_KEYS) + " |", "|---" * (len(TABLE_KEYS) + 1) + "|"]
    for r in sweep.rows:
        cells = [_cell(r.value(k)) for k in TABLE_KEYS] if r.error is None else [f"error: {r.error}"] + [""] * (len(TABLE_KEYS) - 1)
        lines.append(f"| {r.label} | " + " | ".join(cells) + " |")
    lines += ["", "Columns:", ""] + [f"- `{k}`: {DESCRIPTIONS.get(k, '')}" for k in TABLE_KEYS]
    if plot:
        lines += ["", f"![Privacy vs utility]({plot})"]
    return "\n".join(lines) + "\n"


def sweep_html(sweep: SweepResult, plot: str | None) -> str:
    best = html.escape(_best_line(sweep)).replace("**", "")
    body = ["<h1>fawn sweep</h1>", f"<p>{best}</p>", "<ul>"]
    body += [f"<li>{html.escape(c)}</li>" for c in _context(sweep)] + ["</ul>", "<table><tr><th>setting</th>"]
    body[-1] += "".join(f"<th>{k}</th>" for k in TABLE_KEYS) + "</tr>"
    for r in sweep.rows:
        cells = "".join(f"<td>{_cell(r.value(k))}</td>" for k in TABLE_KEYS) if r.error is None else f"<td colspan='{len(TABLE_KEYS)}'>{html.escape(r.error)}</td>"
        mark = " style='font-weight:bold'" if r is sweep.best else ""
        body.append(f"<tr{mark}><td>{html.escape(r.label)}</td>{cells}</tr>")
    body.append("</table><ul>")
    body += [f"<li><code>{k}</code>: {html.escape(DESCRIPTIONS.get(k, ''))}</li>" for k in TABLE_KEYS] + ["</ul>"]
    if plot:
        body.append(f"<img src='{html.escape(plot)}' alt='Privacy vs utility'>")
    return html_page("fawn sweep", body)
