"""Batch mode: ``fawn run DIR -o OUTDIR`` anonymizes every video under DIR.

Outputs keep their relative paths. Each file is written under a temporary
name and renamed when complete. Resuming follows ``fawn batch`` (one
implementation: :mod:`streamer.runtime.cluster.manifest`): a JSONL manifest in OUTDIR
records each file's input checksum and config hash; a re-run skips a file only
when its latest row is done with the same config and input and its output
exists, and redoes everything else (a changed config redoes every file).
Failures are collected and summarised; one bad file does not stop the batch.
An output folder equal to DIR is refused; one inside DIR is left out of the inputs.
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from tqdm import tqdm

from streamer.core.config import PipelineConfig
from streamer.core.errors import ConfigError, FawnError
from streamer.core.media import VIDEO_SUFFIXES
from streamer.core.redact import redact_text
from streamer.core.stats import RunStats
from streamer.io.annotations import annotation_record, annotations_path
from streamer.runtime.pipeline import RunOptions, run

if TYPE_CHECKING:
    from streamer.runtime.cluster.manifest import ManifestRow

log = logging.getLogger(__name__)



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
    from streamer.io.imageseq import folder_kind

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
    """Anonymize every video under ``source_dir`` into ``output_dir`` (resumable, see the module docstring)."""
    from streamer.runtime.cluster import manifest as mf
    from streamer.runtime.cluster import uris
    from streamer.runtime.cluster.job import gallery_bytes

    if os.path.realpath(source_dir) == os.path.realpath(output_dir):
        raise ConfigError(f"the output folder is the input folder ({source_dir}): give another -o folder")
    collection = uris.list_units(str(source_dir), exclude=str(output_dir))  # raises when there are none
    manifest = str(output_dir / mf.MANIFEST_NAME)
    cfg_hash = mf.config_hash(cfg, gallery_bytes(cfg))
    planned = mf.plan(collection, mf.read_rows(manifest), cfg_hash)
    result = BatchResult(skipped=list(planned.skipped))
    writer = mf.ManifestWriter(manifest)
    bar = _progress(len(planned.todo), progress)
    try:
        for rel in planned.todo:
            if stop is not None and stop.is_set():
                break
            row = _one(source_dir / rel, output_dir / rel, rel, cfg, stop, result, cfg_hash)
            if row is not None:
                writer.append(row)
            if bar is not None:
                bar.update(1)
                bar.set_postfix_str(f"failed={len(result.failed)}")
    finally:
        writer.close()
        if bar is not None:
            bar.close()
    return result


def _one(
    video: Path, final: Path, name: str, cfg: PipelineConfig, stop: threading.Event | None, result: BatchResult,
    cfg_hash: str,
) -> ManifestRow | None:
    """Run one file; its manifest row (None when interrupted: redone next time)."""
    from streamer.runtime.cluster import manifest as mf
    from streamer.runtime.cluster import uris

    final.parent.mkdir(parents=True, exist_ok=True)
    partial = partial_path(final)
    fs, path = uris.resolve(str(video))
    size, mtime = uris.unit_stat(fs, path)  # a video file, or an image sequence's folder
    checksum = uris.unit_sha256(fs, path)
    start = time.monotonic()
    row = functools.partial(mf.ManifestRow, path=name, input_sha256=checksum, config_hash=cfg_hash, output=str(final),
                            input_size=size, input_mtime=mtime, finished_at=time.time())
    record = annotations_path(cfg, str(final))  # with --annotations: each item's record next to its output
    options, stats = RunOptions(stop=stop, progress=False), RunStats()
    try:
        with annotation_record(cfg, options, stats, record):
            run(str(video), str(partial), cfg, options, stats=stats)
    except FawnError as exc:
        message = redact_text(str(exc))
        log.error("%s: %s", name, message)
        result.failed[name] = message
        if partial.is_dir():  # an image sequence's folder
            shutil.rmtree(partial, ignore_errors=True)
        else:
            partial.unlink(missing_ok=True)
        return row(status=mf.FAILED, errors=(message,), seconds=time.monotonic() - start)
    if stop is not None and stop.is_set():
        log.warning("%s: interrupted; left as %s (redone on the next run)", name, partial.name)
        return None
    if final.is_dir():  # a sequence redone (changed config or input): the old output folder goes
        shutil.rmtree(final)
    partial.replace(final)
    result.done.append(name)
    result.frames += stats.frames_out
    result.faces += stats.faces_anonymized
    return row(status=mf.DONE, frames=stats.frames_out, faces_anonymized=stats.faces_anonymized,
               seconds=time.monotonic() - start)


def _progress(total: int, enabled: bool) -> tqdm | None:
    return tqdm(total=total, unit="file", dynamic_ncols=True) if enabled else None
