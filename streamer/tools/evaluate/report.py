"""The evaluation report: ``metrics.json``, ``report.md``, ``report.html`` and PNG plots.

Plots are drawn with matplotlib's Agg canvas directly (no pyplot, no global
backend switch), small enough to commit.
"""

from __future__ import annotations

import html
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from streamer.core.types import Image
from streamer.tools.evaluate.runner import (
    PRIVACY_KEYS,
    REALISM_KEYS,
    SCORE_KEYS,
    UTILITY_KEYS,
    VIDEO_KEYS,
    Result,
)

log = logging.getLogger(__name__)

DPI = 80
# what each metric means (and which way is better), shown in the reports
DESCRIPTIONS: dict[str, str] = {
    "reid_rate": "anonymized faces whose nearest original (whole set) is their own source; lower = more private (chance 1/N)",
    "avg_similarity": "mean cosine similarity of an anonymized face to its source; lower = more private",
    "verification_auc": "AUC of same- vs different-person pairs (anonymized vs original); 0.5 = no information",
    "closed_set_top1": "nearest *other* original photo shows the same person; lower = more private",
    "attacker_top1": "MLP trained on anonymized faces of half of each person's photos, tested on the rest; chance 1/people",
    "detection_rate": "anonymized faces the detector still finds (IoU >= 0.4); higher = more useful",
    "landmark_nme": "landmark displacement / inter-ocular distance on re-detected faces; lower = pose kept",
    "age_agreement": "predicted age moves by at most the tolerance; higher = age kept",
    "gender_agreement": "predicted gender unchanged; higher = gender kept",
    "age_mae": "mean absolute change of the predicted age (years)",
    "agr": "attribute preservation alpha*age + beta*gender (no race model offline)",
    "psnr": "PSNR of the whole frame (dB, capped at 100)",
    "ssim": "SSIM of the whole frame",
    "psnr_face": "PSNR of the face region (box + 25 %)",
    "ssim_face": "SSIM of the face region",
    "fid": "FID of face crops, original vs anonymized (Inception-v3); lower = more realistic; biased on small sets",
    "lpips": "LPIPS of face crops (user-supplied model); lower = closer",
    "identity_stability": "cosine similarity of a track's anonymized face between kept frames; higher = steadier",
    "identity_stability_original": "the same on the original faces (reference)",
    "flicker": "mean grey-level change of a track's aligned anonymized face between kept frames",
    "flicker_original": "the same on the original faces (motion already there)",
    "flicker_excess": "flicker added by the anonymization (flicker - flicker_original)",
    "reid_norm": "re-ID rate rescaled: 0 at chance, 1 when all re-identified",
    "similarity_norm": "similarity rescaled: 0 at the different-person mean, 1 when identical",
    "privacy_score": "1 - (reid_norm + similarity_norm) / 2",
    "composite": "seed-study score 0.25 (1 - reid_norm) + 0.25 (1 - similarity_norm) + 0.5 AGR; higher = better",
}
SECTIONS = (
    ("Privacy", PRIVACY_KEYS),
    ("Utility", UTILITY_KEYS),
    ("Realism", REALISM_KEYS),
    ("Video", VIDEO_KEYS),
    ("Scores", SCORE_KEYS),
)


def format_value(value: float | None, reason: str | None) -> str:
    if value is None:
        return reason or "skipped"
    return f"{value:.3f}" if abs(value) < 1000 else f"{value:.0f}"


def save_figure(fig: Figure, path: Path) -> Path:
    FigureCanvasAgg(fig)
    fig.savefig(str(path), dpi=DPI, bbox_inches="tight")
    return path


def plot_roc(result: Result, path: Path) -> Path | None:
    roc = result.curves.get("roc")
    if roc is None:
        return None
    fig = Figure(figsize=(3.6, 3.2))
    ax = fig.add_subplot()
    fpr, tpr = roc
    auc = result.values.get("verification_auc")
    ax.plot(fpr, tpr, label=f"anonymized vs original (AUC {auc:.2f})" if auc is not None else "anonymized vs original")
    ax.plot([0, 1], [0, 1], ":", color="grey", label="no information")
    ax.set_xlabel("false match rate")
    ax.set_ylabel("true match rate")
    ax.set_title("Verification ROC")
    ax.legend(loc="lower right", fontsize=7)
    return save_figure(fig, path)


def plot_similarity(result: Result, path: Path) -> Path:
    fig = Figure(figsize=(3.6, 3.2))
    ax = fig.add_subplot()
    genuine, impostor = result.curves.get("genuine"), result.curves.get("impostor")
    bins = [float(b) for b in np.linspace(-0.2, 1.0, 49)]
    if impostor is not None and len(impostor):
        ax.hist(impostor, bins=bins, density=True, alpha=0.5, label="anonymized vs other people")
    if genuine is not None and len(genuine):
        ax.hist(genuine, bins=bins, density=True, alpha=0.6, label="anonymized vs own source")
    ax.set_xlabel("cosine similarity")
    ax.set_ylabel("density")
    ax.set_title("Identity similarity")
    ax.legend(loc="upper left", fontsize=7)
    return save_figure(fig, path)


def examples_image(pairs: Sequence[tuple[Image, Image]], height: int = 96) -> Image | None:
    """Originals on the top row, anonymized below, each scaled to ``height`` px."""
    if not pairs:
        return None
    cols = []
    for orig, anon in pairs:
        w = max(1, round(orig.shape[1] * height / orig.shape[0]))
        cols.append(np.vstack([cv2.resize(im, (w, height), interpolation=cv2.INTER_AREA) for im in (orig, anon)]))
        cols.append(np.full((2 * height, 4, 3), 255, np.uint8))
    return np.hstack(cols[:-1])


def write_json(data: dict[str, Any], path: Path) -> Path:
    path.write_text(json.dumps(data, indent=2, default=_jsonable) + "\n", encoding="utf-8")
    return path


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def write_report(result: Result, out_dir: str | Path, title: str = "fawn evaluation") -> dict[str, Path]:
    """Write metrics.json, the plots, report.md and report.html into ``out_dir``; returns the paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {"metrics": write_json(result.to_json(), out / "metrics.json")}
    plots: list[tuple[str, Path]] = []
    roc = plot_roc(result, out / "roc.png")
    if roc is not None:
        plots.append(("Verification ROC", roc))
    plots.append(("Identity similarity", plot_similarity(result, out / "similarity.png")))
    grid = examples_image(result.examples)
    if grid is not None:
        cv2.imwrite(str(out / "examples.png"), grid)
        plots.append(("Examples (top: original, bottom: anonymized)", out / "examples.png"))
    files.update({path.stem: path for _, path in plots})
    files["markdown"] = out / "report.md"
    files["markdown"].write_text(markdown(result, title, [(n, p.name) for n, p in plots]), encoding="utf-8")
    files["html"] = out / "report.html"
    files["html"].write_text(to_html(result, title, [(n, p.name) for n, p in plots]), encoding="utf-8")
    log.info("report written to %s", out)
    return files


def _summary_lines(result: Result) -> list[str]:
    info = result.info
    lines = [
        f"- input: `{info.get('input')}` ({info.get('kind')}), {info.get('faces')} faces of {info.get('identities')} "
        f"identities{' (labelled)' if info.get('labelled') else ' (unlabelled: each face its own identity)'}",
        f"- method: `{info.get('method')}`, settings: `{json.dumps(info.get('overrides', {}))}`",
        f"- identity model: `{info.get('identity_model')}`; on the originals it scores "
        f"`{json.dumps(info.get('recognizer_on_originals'))}`; different-person similarity {info.get('impostor_similarity')}",
        f"- chance: re-ID {_fmt(info.get('chance', {}).get('reid_rate'))}, attacker {_fmt(info.get('chance', {}).get('attacker_top1'))}, "
        f"AGR {_fmt(info.get('chance', {}).get('agr'))} (attributes unrelated to the face)",
    ]
    lines += [f"- note: {note}" for note in info.get("notes", [])]
    return lines


def _fmt(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, (int, float)) else str(value)


def markdown(result: Result, title: str, plots: list[tuple[str, str]]) -> str:
    parts = [f"# {title}", "", *_summary_lines(result), ""]
    for section, keys in SECTIONS:
        parts += [f"## {section}", "", "| metric | value | meaning |", "|---|---|---|"]
        for key in keys:
            value = format_value(result.values.get(key), result.skipped.get(key))
            parts.append(f"| `{key}` | {value} | {DESCRIPTIONS.get(key, '')} |")
        parts.append("")
    if plots:
        parts += ["## Plots", ""]
        parts += [f"![{name}]({file})" for name, file in plots]
        parts.append("")
    return "\n".join(parts)


HTML_STYLE = (
    "body{font-family:sans-serif;max-width:60em;margin:2em auto;padding:0 1em}"
    "table{border-collapse:collapse;margin-bottom:1em}td,th{border:1px solid #ccc;padding:.2em .5em;text-align:left}"
    "code{background:#f4f4f4}img{margin:.5em}.skip{color:#888}"
)


def html_page(title: str, body: list[str]) -> str:
    return (
        f"<!doctype html>\n<html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{HTML_STYLE}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n"
    )


def to_html(result: Result, title: str, plots: list[tuple[str, str]]) -> str:
    body = [f"<h1>{html.escape(title)}</h1>", "<ul>"]
    body += [f"<li>{html.escape(line[2:])}</li>" for line in _summary_lines(result)]
    body.append("</ul>")
    for section, keys in SECTIONS:
        body += [f"<h2>{section}</h2>", "<table><tr><th>metric</th><th>value</th><th>meaning</th></tr>"]
        for key in keys:
            value = result.values.get(key)
            text = html.escape(format_value(value, result.skipped.get(key)))
            cell = f"<td class='skip'>{text}</td>" if value is None else f"<td>{text}</td>"
            body.append(f"<tr><td><code>{key}</code></td>{cell}<td>{html.escape(DESCRIPTIONS.get(key, ''))}</td></tr>")
        body.append("</table>")
    if plots:
        body.append("<h2>Plots</h2>")
        body += [f"<figure><img src='{html.escape(f)}' alt='{html.escape(n)}'><figcaption>{html.escape(n)}</figcaption></figure>" for n, f in plots]
    return html_page(title, body)
