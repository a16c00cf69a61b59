"""Folder mode: ``fawn run DIR -o OUTDIR`` anonymizes every video and image sequence under DIR.

It is the ``fawn batch`` job (:mod:`streamer.runtime.cluster.job`) run by its in-process executor:
one planner, one manifest, one set of resume and retry rules. Outputs keep their relative paths;
each is written under a partial name and renamed when complete. A JSONL manifest in OUTDIR records
each unit's input checksum and config hash; a re-run skips a unit only when its latest row is done
with the same config and input and its output exists, and redoes everything else (a changed config
redoes every unit). Failures are collected and summarised; one bad file does not stop the batch.
An output folder equal to DIR is refused; one inside DIR is left out of the inputs.
"""

from __future__ import annotations

import threading
from pathlib import Path

from streamer.core.config import PipelineConfig
from streamer.runtime.cluster import uris
from streamer.runtime.cluster.job import BatchOptions, JobReport, run_job


def run_batch(
    source_dir: Path, output_dir: Path, cfg: PipelineConfig, stop: threading.Event | None = None, progress: bool = True
) -> JobReport:
    """Anonymize every unit under ``source_dir`` into ``output_dir`` (resumable, see the module docstring)."""
    options = BatchOptions(input_uri=str(source_dir), output_uri=str(output_dir), config=cfg, max_retries=0,
                           progress=progress)  # fmt: skip
    return run_job(options, stop, in_process=True)


def find_videos(root: Path) -> list[Path]:
    """Every unit under ``root``: video files and folders that directly hold images (one sequence each)."""
    return [root / rel for rel in uris.list_units(str(root)).files]


def partial_path(final: Path) -> Path:
    """The name ``final`` has until it is complete."""
    return Path(uris.partial_name(str(final)))
