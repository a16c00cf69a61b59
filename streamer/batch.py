"""Batch mode: ``fawn run DIR -o OUTDIR`` anonymizes every video under DIR.

Outputs keep their relative paths. Each file is written under a temporary
name and renamed when complete, so a finished name always means a finished
file: re-running skips those (resumable) and redoes the rest. Failures are
collected and summarised; one bad file does not stop the batch.
"""

from __future__ import annotations

import logging
import shutil
import threading
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from streamer.annotations import annotation_record, annotations_path
from streamer.config import PipelineConfig
from streamer.errors import FawnError, SourceError
from streamer.pipeline import RunOptions, run
from streamer.stats import RunStats

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = frozenset({".mp4", ".mkv", ".mov", ".avi", ".webm", ".m4v", ".ts", ".mpg", ".mpeg", ".flv"})


@dataclass
class BatchResult:
    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    frames: int = 0
    faces: int = 0

    def summary(self) -> str:
        lines = [
            f"batch: {len(self.done)} done, {len(self.skipped)} skipped (already finished), "
            f"{len(self.failed)} failed; {self.frames} frames, {self.faces} faces anonymized"
        ]
        lines += [f"  failed: {name}: {reason}" for name, reason in sorted(self.failed.items())]
        return "\n".join(lines)


def find_videos(root: Path) -> list[Path]:
    """Every video under ``root`` and every folder below it that directly holds images (one sequence each)."""
    from streamer.imageseq import folder_kind

    videos = [p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES and not _is_partial(p)]
    folders = [p for p in root.rglob("*") if p.is_dir() and not _is_partial(p) and folder_kind(p) == "sequence"]
    return sorted(videos + folders)


def _is_partial(path: Path) -> bool:
    return ".partial" in path.suffixes


def partial_path(final: Path) -> Path:
    return final.with_name(f"{final.stem}.partial{final.suffix}")


def run_batch(
    source_dir: Path, output_dir: Path, cfg: PipelineConfig, stop: threading.Event | None = None, progress: bool = True
) -> BatchResult:
    """Anonymize every video under ``source_dir`` into ``output_dir``."""
    videos = find_videos(source_dir)
    if not videos:
        raise SourceError(f"no video files under {source_dir} (looked for {', '.join(sorted(VIDEO_SUFFIXES))})")
    result = BatchResult()
    bar = _progress(len(videos), progress)
    for video in videos:
        if stop is not None and stop.is_set():
            break
        rel = video.relative_to(source_dir)
        _one(video, output_dir / rel, str(rel), cfg, stop, result)
        if bar is not None:
            bar.update(1)
            bar.set_postfix_str(f"failed={len(result.failed)}")
    if bar is not None:
        bar.close()
    return result


def _one(video: Path, final: Path, name: str, cfg: PipelineConfig, stop: threading.Event | None, result: BatchResult) -> None:
    if final.exists():
        result.skipped.append(name)
        return
    final.parent.mkdir(parents=True, exist_ok=True)
    partial = partial_path(final)
    record = annotations_path(cfg, str(final))  # with --annotations: each item's record next to its output
    options, stats = RunOptions(stop=stop, progress=False), RunStats()
    try:
        with annotation_record(cfg, options, stats, record):
            run(str(video), str(partial), cfg, options, stats=stats)
    except FawnError as exc:
        log.error("%s: %s", name, exc)
        result.failed[name] = str(exc)
        if partial.is_dir():  # an image sequence's folder
            shutil.rmtree(partial, ignore_errors=True)
        else:
            partial.unlink(missing_ok=True)
        return
    if stop is not None and stop.is_set():
        log.warning("%s: interrupted; left as %s (redone on the next run)", name, partial.name)
        return
    partial.replace(final)
    result.done.append(name)
    result.frames += stats.frames_out
    result.faces += stats.faces_anonymized


def _progress(total: int, enabled: bool) -> tqdm | None:
    return tqdm(total=total, unit="file", dynamic_ncols=True) if enabled else None
