"""One worker's model session: load the models once, anonymize many files.

:class:`FileAnonymizer` is plain Python (the Ray actor in :mod:`streamer.runtime.cluster.job`
wraps it), so it also runs in-process. The detector and identity model sessions
are built once (:class:`~streamer.runtime.processor.SharedModels`); every file is one
:func:`streamer.runtime.pipeline.run` with a fresh tracker, identity state (the small
gallery file is re-read) and anonymizer, so no per-stream state crosses from one
file to the next.

Outputs appear under their final name only when complete: a local (or shared)
output is written as ``clip.partial.mp4`` and renamed; for an object store the
input is downloaded to a local temporary file, processed, uploaded under the
partial name and moved.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import signal
import socket
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av

from streamer import __version__
from streamer.core.config import PipelineConfig
from streamer.core.errors import FawnError, RunInterrupted
from streamer.core.stats import RunStats
from streamer.io.annotations import annotation_record, annotations_path
from streamer.runtime.cluster import uris
from streamer.runtime.pipeline import RunOptions, run
from streamer.runtime.processor import SharedModels
from streamer.stages.identity.resolver import PENDING, create_identity

log = logging.getLogger(__name__)

# fault injection for the tests: the first worker to take a file creates this file and
# kills its own process with SIGKILL (as the OOM killer would); later workers carry on
KILL_ONCE_ENV = "FAWN_FAULT_KILL_ONCE"


@dataclass(frozen=True)
class WorkerSetup:
    """What every worker needs, shipped through Ray's object store: the config and the gallery's bytes."""

    config: PipelineConfig
    gallery: bytes | None = None
    threads: int = 1  # inference threads when the config says 0 (all cores): the worker's CPUs
    in_process: bool = False  # fawn run DIR -o DIR: the config as given (its gallery path, its audit log)


@dataclass(frozen=True)
class FileTask:
    rel: str
    input_uri: str
    output_uri: str
    attempt: int = 1


@dataclass(frozen=True)
class FileResult:
    rel: str
    ok: bool
    input_sha256: str | None = None
    frames: int = 0
    faces_anonymized: int = 0
    identity: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    error: str | None = None
    worker: dict[str, Any] = field(default_factory=dict)
    input_size: int | None = None
    input_mtime: float | None = None
    interrupted: bool = False  # a stop request ended it (in-process runs): no manifest row, redone next time


class FileAnonymizer:
    """A model session that anonymizes whole files (see the module docstring)."""

    def __init__(self, setup: WorkerSetup) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="fawn-worker-")
        self.cfg = _worker_config(setup, Path(self._tmp.name))
        self.models = SharedModels(self.cfg)  # the detector and identity sessions, once per worker
        create_identity(self.cfg.identity, embedder=self.models.embedder)  # a bad gallery or mode fails here, once
        self.worker = {"pid": os.getpid(), "host": socket.gethostname(), "fawn": __version__}
        log.info("worker %d ready", os.getpid())

    def close(self) -> None:
        self.models.close()
        self._tmp.cleanup()

    def process(self, task: FileTask, stop: threading.Event | None = None) -> FileResult:
        """Anonymize one file; a file's failure is a result, not an exception. ``stop`` (in-process runs):
        a stop request finalizes the output under its partial name and leaves it there."""
        _maybe_kill_for_tests()
        start = time.monotonic()
        try:
            result = self._process(task, stop)
        except RunInterrupted:
            return FileResult(task.rel, False, error="interrupted", interrupted=True, worker=self.worker)
        except FawnError as exc:
            return self._failed(task, str(exc), start)
        except (OSError, av.FFmpegError, ValueError) as exc:  # I/O or codec trouble outside fawn's wrappers
            log.exception("%s failed", task.rel)
            return self._failed(task, f"{type(exc).__name__}: {exc}", start)
        return dataclasses.replace(result, seconds=round(time.monotonic() - start, 3), worker=self.worker)

    def _failed(self, task: FileTask, error: str, start: float) -> FileResult:
        log.error("%s: %s", task.rel, error)
        return FileResult(task.rel, False, error=error, seconds=round(time.monotonic() - start, 3), worker=self.worker)

    def _process(self, task: FileTask, stop: threading.Event | None = None) -> FileResult:
        in_fs, in_path = uris.resolve(task.input_uri)
        out_fs, out_path = uris.resolve(task.output_uri)
        size, mtime = uris.unit_stat(in_fs, in_path)
        sequence = bool(in_fs.isdir(in_path))  # a folder of images: one sequence, a folder of images out
        with tempfile.TemporaryDirectory(prefix="fawn-file-", dir=self._tmp.name) as scratch:
            local_in = in_path if uris.is_local(in_fs) else _download(in_fs, in_path, Path(scratch), sequence)
            checksum = uris.unit_sha256(uris.resolve(local_in)[0], local_in)
            if uris.is_local(out_fs):
                stats, decisions = self._anonymize_local(local_in, out_path, sequence, stop)
            else:
                local_out = str(Path(scratch) / ("out" + ("" if sequence else Path(out_path).suffix)))
                stats, decisions = self._anonymize_local(local_in, local_out, sequence)
                _upload(out_fs, local_out, out_path, sequence)
                record = annotations_path(self.cfg, local_out)
                if record is not None:  # the item's annotation record goes next to its output
                    _upload(out_fs, record, str(annotations_path(self.cfg, out_path)))
        return FileResult(
            task.rel, True, checksum, stats.frames_out, stats.faces_anonymized,
            _identity_summary(stats, decisions), input_size=size, input_mtime=mtime,
        )

    def _anonymize_local(
        self, src: str, dst: str, sequence: bool = False, stop: threading.Event | None = None
    ) -> tuple[RunStats, dict[int, str]]:
        """``src`` -> ``dst`` through ``dst``'s partial name, renamed only when complete (with its annotations)."""
        os.makedirs(os.path.dirname(dst) or ".", exist_ok=True)
        partial = uris.partial_name(dst, folder=sequence)
        record = annotations_path(self.cfg, dst)
        try:
            result = self._run(src, partial, None if record is None else record + PARTIAL_SUFFIX, stop)
        except BaseException:
            _remove(partial)
            if record is not None:
                _remove(record + PARTIAL_SUFFIX)
            raise
        if stop is not None and stop.is_set():  # finalized, playable, but not complete: not renamed
            log.warning("%s: interrupted; left as %s (redone on the next run)", src, os.path.basename(partial))
            raise RunInterrupted(src)
        if sequence:
            _remove(dst)  # a re-run (changed config or input) replaces the old folder whole
        os.replace(partial, dst)
        if record is not None:
            os.replace(record + PARTIAL_SUFFIX, record)
        return result

    def _run(
        self, src: str, dst: str, record: str | None = None, stop: threading.Event | None = None
    ) -> tuple[RunStats, dict[int, str]]:
        """:func:`streamer.runtime.pipeline.run` with this worker's model sessions (fresh per-file stages)."""
        stats = RunStats()
        decisions: dict[int, str] = {}
        options = RunOptions(stop=stop, progress=False, on_frame=lambda _frame, tracked: _record(decisions, tracked))
        with annotation_record(self.cfg, options, stats, record):
            run(src, dst, self.cfg, options, shared=self.models, stats=stats)
        return stats, decisions


PARTIAL_SUFFIX = uris.PARTIAL  # an annotation record's name until its output is complete


def _remove(path: str) -> None:
    if os.path.isdir(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        Path(path).unlink(missing_ok=True)


def validate_setup(setup: WorkerSetup) -> None:
    """Check the gallery and identity mode where the job starts (one clear error, not one per file)."""
    with tempfile.TemporaryDirectory(prefix="fawn-check-") as tmp:
        probe = create_identity(_worker_config(setup, Path(tmp)).identity)
        close = getattr(probe, "close", None)
        if close is not None:
            close()


def _worker_config(setup: WorkerSetup, tmp: Path) -> PipelineConfig:
    """The config as the worker runs it: the shipped gallery written locally, threads fitted to the worker."""
    cfg = setup.config
    if setup.in_process:
        return cfg
    ident = cfg.identity
    gallery = None
    if setup.gallery is not None:
        path = tmp / "gallery.fawn"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(setup.gallery)
        gallery = str(path)
    # identity decisions go to the manifest; an audit path is the driver's, not the worker's
    ident = dataclasses.replace(ident, gallery=gallery, audit=None, threads=ident.threads or setup.threads)
    det = dataclasses.replace(cfg.detector, threads=cfg.detector.threads or setup.threads)
    return dataclasses.replace(cfg, identity=ident, detector=det)


def _record(decisions: dict[int, str], tracked: Any) -> None:
    if tracked.identity is None or tracked.track_id is None:
        return
    for tid, identity in zip(tracked.track_id, tracked.identity):
        if identity is not None and identity != PENDING:
            decisions[int(tid)] = identity


def _identity_summary(stats: RunStats, decisions: dict[int, str]) -> dict[str, Any]:
    """Identity calls and each decided track's last decision (tracks never decided stayed anonymized)."""
    return {
        "calls": sum(stats.identity_calls.values()),
        "tracks": len(stats.track_ids),
        "decided": {str(tid): decision for tid, decision in sorted(decisions.items())},
        "visible_face_frames": stats.faces_visible,
    }


def _download(fs: Any, path: str, scratch: Path, sequence: bool = False) -> str:
    if sequence:  # a folder of images: each image into a local folder
        local_dir = scratch / "in"
        local_dir.mkdir()
        for image in uris.sequence_files(fs, path):
            fs.get_file(image, str(local_dir / os.path.basename(image)))
        return str(local_dir)
    local = scratch / ("in" + Path(path).suffix)
    fs.get_file(path, str(local))
    return str(local)


def _upload(fs: Any, local: str, path: str, sequence: bool = False) -> None:
    """Upload under the partial name, then move: readers never see a half-written object."""
    partial = uris.partial_name(path, folder=sequence)
    parent = os.path.dirname(path)
    if parent:
        fs.makedirs(parent, exist_ok=True)
    try:
        if sequence:
            for name in sorted(os.listdir(local)):
                fs.put_file(os.path.join(local, name), f"{partial}/{name}")
            if fs.exists(path):
                fs.rm(path, recursive=True)
            fs.mv(partial, path, recursive=True)
        else:
            fs.put_file(local, partial)
            fs.mv(partial, path)
    except BaseException:
        if fs.exists(partial):
            fs.rm(partial, recursive=sequence)
        raise


def _maybe_kill_for_tests() -> None:
    marker = os.environ.get(KILL_ONCE_ENV)
    if not marker:
        return
    try:
        os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return
    log.warning("%s: killing worker %d (fault injection)", KILL_ONCE_ENV, os.getpid())
    os.kill(os.getpid(), signal.SIGKILL)
