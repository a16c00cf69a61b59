"""The batch job: plan from the manifest, run every unit, retry, summarise. One job, two executors:
Ray (``fawn batch``: one actor per worker) or this process (``fawn run DIR -o DIR``: ``in_process``).

Ray is imported lazily (``fawn[ray]``). The config and the gallery's bytes go
to the workers through Ray's object store (``ray.put``); the models ship inside
the fawn package every worker has installed (or, with ``ship_code``, travel in
Ray's runtime environment as ``py_modules``). One actor per worker keeps its
models loaded across files. A file whose actor dies (a killed or crashed
worker process) is retried on a fresh actor; every failure counts towards
``max_retries``, so a file that kills every worker cannot loop forever.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import logging
import os
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from streamer import __version__
from streamer.core.config import PipelineConfig
from streamer.core.errors import ClusterError, ConfigError, GalleryError, MissingExtraError
from streamer.runtime.cluster import manifest as mf
from streamer.runtime.cluster import uris
from streamer.runtime.cluster.worker import (
    FileAnonymizer,
    FileResult,
    FileTask,
    WorkerSetup,
    validate_setup,
)
from streamer.stages.identity.gallery import check_private

log = logging.getLogger(__name__)

GPU_DEVICES = frozenset({"cuda", "tensorrt"})
PACKAGES = ("streamer", "engines", "export", "configs")  # what ship_code uploads (models included)


@dataclass(frozen=True)
class BatchOptions:
    """One ``fawn batch`` job. ``ray_address`` None starts a local Ray instance."""

    input_uri: str
    output_uri: str
    config: PipelineConfig
    ray_address: str | None = None
    workers: int | None = None  # None: as many as the cluster's CPUs (or GPUs) fit
    cpus_per_worker: float | None = None  # None: detector.threads, at least 1
    gpus_per_worker: float | None = None  # None: 1 when a stage runs on cuda/tensorrt
    max_retries: int = 2
    manifest_uri: str | None = None  # None: OUTPUT/fawn-manifest.jsonl
    rehash: bool = False
    progress: bool = True
    connect_timeout: float = 15.0
    worker_env: Mapping[str, str] = field(default_factory=dict)
    ship_code: bool = False
    log_to_driver: bool = False

    def __post_init__(self) -> None:
        if self.max_retries < 0:
            raise ConfigError("--max-retries: must be >= 0")
        if self.workers is not None and self.workers < 1:
            raise ConfigError("--workers: must be >= 1")
        if self.cpus_per_worker is not None and self.cpus_per_worker <= 0:
            raise ConfigError("--cpus-per-worker: must be > 0")
        if self.gpus_per_worker is not None and self.gpus_per_worker < 0:
            raise ConfigError("--gpus-per-worker: must be >= 0")

    @property
    def manifest(self) -> str:
        return self.manifest_uri or uris.join(self.output_uri, mf.MANIFEST_NAME)


@dataclass
class JobReport:
    """What a job did; ``table()`` is the summary printed at the end."""

    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    retries: int = 0
    frames: int = 0
    faces: int = 0
    seconds: float = 0.0
    workers: int = 0
    manifest: str = ""

    @property
    def files_per_minute(self) -> float:
        return 60.0 * len(self.done) / self.seconds if self.seconds > 0 else 0.0

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    def table(self) -> str:
        rows = [("done", len(self.done)), ("skipped", len(self.skipped)), ("failed", len(self.failed))]
        lines = [f"fawn batch: {sum(n for _, n in rows)} files in {self.seconds:.1f}s on {self.workers} workers"]
        lines += [f"  {name:<8} {n:>6}" for name, n in rows]
        lines.append(
            f"  frames {self.frames}, faces anonymized {self.faces}, retries {self.retries}; "
            f"{self.files_per_minute:.1f} files/min, {self.fps:.1f} fps"
        )
        lines += [f"  failed: {name}: {reason}" for name, reason in sorted(self.failed.items())]
        lines.append(f"  manifest: {self.manifest}")
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {
            "done": self.done, "skipped": self.skipped, "failed": self.failed, "retries": self.retries,
            "frames": self.frames, "faces_anonymized": self.faces, "seconds": round(self.seconds, 3),
            "workers": self.workers, "files_per_minute": round(self.files_per_minute, 2),
            "fps": round(self.fps, 2), "manifest": self.manifest,
        }


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise MissingExtraError("ray", "ray") from None
    return ray


def run_job(options: BatchOptions, stop: threading.Event | None = None, in_process: bool = False) -> JobReport:
    """Anonymize every unit under ``options.input_uri`` to ``options.output_uri``: on Ray, or, ``in_process``
    (folder mode), here, with the same planner, manifest, resume and retry rules."""
    ray = None if in_process else import_ray()
    options = _absolute(options)
    collection, setup, cfg_hash = _prepare(options, in_process)
    planned = mf.plan(collection, mf.read_rows(options.manifest), cfg_hash, options.rehash)
    report = JobReport(skipped=list(planned.skipped), manifest=options.manifest)
    log.info("%d files: %d to do, %d already done", len(collection.files), len(planned.todo), len(planned.skipped))
    if not planned.todo:
        return report
    writer = mf.ManifestWriter(options.manifest)
    try:
        if ray is None:
            _LocalExecutor(options, setup, cfg_hash, writer, report).run(planned.todo, stop)
        else:
            _run_on_ray(ray, options, setup, cfg_hash, writer, report, planned.todo, stop)
    finally:
        writer.close()
    return report


def _run_on_ray(
    ray: Any, options: BatchOptions, setup: WorkerSetup, cfg_hash: str, writer: mf.ManifestWriter, report: JobReport,
    todo: tuple[str, ...], stop: threading.Event | None,
) -> None:
    owns_ray = _connect(ray, options)
    try:
        _Scheduler(ray, options, setup, cfg_hash, writer, report).run(todo, stop)
    finally:
        if owns_ray:
            ray.shutdown()


def _absolute(options: BatchOptions) -> BatchOptions:
    """Local paths made absolute: workers do not share the driver's working directory."""

    def fix(uri: str) -> str:
        return uri if "://" in uri else os.path.abspath(uri)

    manifest = fix(options.manifest_uri) if options.manifest_uri is not None else None
    return dataclasses.replace(
        options, input_uri=fix(options.input_uri), output_uri=fix(options.output_uri), manifest_uri=manifest
    )


def _prepare(options: BatchOptions, in_process: bool = False) -> tuple[uris.Collection, WorkerSetup, str]:
    """List the inputs and check the config and gallery here, before any cluster is involved."""
    if _same_folder(options.input_uri, options.output_uri):
        raise ConfigError(f"the output folder is the input folder ({options.input_uri}): give another output folder")
    for uri in (options.input_uri, options.output_uri, options.manifest):
        fs, _ = uris.resolve(uri)
        if not in_process and set(uris.protocols(fs)) & uris.PROCESS_LOCAL:
            raise ConfigError(f"{uri}: this filesystem lives in one process; Ray workers cannot see it")
    collection = uris.list_units(options.input_uri, exclude=options.output_uri)
    gallery = gallery_bytes(options.config)
    cpus, _ = worker_resources(options)
    setup = WorkerSetup(options.config, gallery, threads=0 if in_process else max(1, int(cpus)), in_process=in_process)
    validate_setup(setup)
    return collection, setup, mf.config_hash(options.config, gallery)


def _same_folder(a: str, b: str) -> bool:
    if "://" in a or "://" in b:
        return a.rstrip("/") == b.rstrip("/")
    return os.path.realpath(a) == os.path.realpath(b)


def gallery_bytes(cfg: PipelineConfig) -> bytes | None:
    path = cfg.identity.gallery
    if path is None:
        return None
    if "://" not in path and os.path.exists(path):  # a local file: private, as for fawn run
        check_private(Path(path), os.stat(path).st_mode)
    try:
        return uris.read_bytes(path)
    except FileNotFoundError:
        raise GalleryError(f"gallery not found: {path} (make one with: fawn enroll PHOTOS -o {path})") from None


def worker_resources(options: BatchOptions) -> tuple[float, float]:
    """(CPUs, GPUs) each worker asks Ray for: the options, else what the config's devices imply."""
    cfg = options.config
    cpus = options.cpus_per_worker or float(max(1, cfg.detector.threads))
    devices = {cfg.detector.device, cfg.identity.device}
    if cfg.anonymizer.method == "diffusion":
        devices.add(cfg.diffusion.device)
    gpus = options.gpus_per_worker if options.gpus_per_worker is not None else float(bool(devices & GPU_DEVICES))
    return cpus, gpus


# -- connecting ----------------------------------------------------------------

LOCAL_NODE_IP = "127.0.0.2"


def _connect(ray: Any, options: BatchOptions) -> bool:
    """Join the cluster (or start a local instance). True when this call started Ray in this process."""
    if ray.is_initialized():
        return False
    kwargs: dict[str, Any] = {
        "runtime_env": _runtime_env(options) or None,
        "log_to_driver": options.log_to_driver,
        "logging_level": logging.WARNING,
    }
    if options.ray_address is None:
        kwargs.update(address="local", include_dashboard=False)
        if sys.platform.startswith("linux"):  # a private instance stays on loopback (Ray swaps 127.0.0.1
            kwargs["_node_ip_address"] = LOCAL_NODE_IP  # for the primary address; 127.0.0.2 it keeps)
    else:
        _check_reachable(options.ray_address, options.connect_timeout)
        kwargs["address"] = options.ray_address
    try:
        ray.init(**kwargs)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise ClusterError(f"cannot join the Ray cluster at {options.ray_address or 'local'}: {_first_line(exc)}") from None
    return True


def _check_reachable(address: str, timeout: float) -> None:
    """A quick TCP check, so a wrong address fails in seconds instead of Ray's long retries."""
    if address == "auto":
        return
    hostport = address.split("://", 1)[-1].rstrip("/")
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"--ray: expected HOST:PORT, ray://HOST:PORT or auto, got '{address}'")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as exc:
        raise ClusterError(f"cannot reach the Ray cluster at {address}: {exc.strerror or exc}") from None


def _runtime_env(options: BatchOptions) -> dict[str, Any]:
    env: dict[str, Any] = {}
    if options.worker_env:
        env["env_vars"] = dict(options.worker_env)
    if options.ship_code:
        env["py_modules"] = [_package_dir(name) for name in PACKAGES]
    return env


def _package_dir(name: str) -> str:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(f"--ship-code: package '{name}' not found")
    return str(Path(list(spec.submodule_search_locations)[0]))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


# -- the actors ----------------------------------------------------------------


class _Worker:
    """The Ray actor: one :class:`FileAnonymizer` (model session) for the actor's life."""

    def __init__(self, setup: WorkerSetup) -> None:
        self.session = FileAnonymizer(setup)

    def process(self, task: FileTask) -> FileResult:
        import ray

        result = self.session.process(task)
        node = ray.get_runtime_context().get_node_id()
        return dataclasses.replace(result, worker={**result.worker, "node": node})


class _Executor:
    """What both executors share: a unit's result becomes its manifest row, or a retry."""

    def __init__(self, options: BatchOptions, cfg_hash: str, writer: mf.ManifestWriter, report: JobReport) -> None:
        self.options = options
        self.cfg_hash = cfg_hash
        self.writer = writer
        self.report = report
        self._errors: dict[str, list[str]] = {}

    def _tasks(self, todo: tuple[str, ...]) -> deque[FileTask]:
        opts = self.options
        return deque(FileTask(rel, uris.join(opts.input_uri, rel), uris.join(opts.output_uri, rel)) for rel in todo)

    def _bar(self, todo: tuple[str, ...]) -> Any:
        return _bar(len(todo) + len(self.report.skipped), len(self.report.skipped), self.options.progress)

    def _next(self, task: FileTask, result: FileResult, queue: deque[FileTask], bar: Any) -> None:
        """Queue the unit's retry, or count it as finished."""
        retry = self._settle(task, result)
        if retry is not None:
            queue.append(retry)
        elif bar is not None:
            bar.update(1)
            bar.set_postfix_str(f"failed={len(self.report.failed)} retries={self.report.retries}")

    def _close_bar(self, bar: Any, started: float) -> None:
        self.report.seconds = time.monotonic() - started
        if bar is not None:
            bar.close()

    def _settle(self, task: FileTask, result: FileResult) -> FileTask | None:
        """Write the file's row when it is final; return the retry when there is one."""
        errors = self._errors.setdefault(task.rel, [])
        if not result.ok:
            errors.append(result.error or "failed")
            if task.attempt <= self.options.max_retries:
                self.report.retries += 1
                return FileTask(task.rel, task.input_uri, task.output_uri, task.attempt + 1)
        self.writer.append(self._row(task, result, tuple(errors)))
        if result.ok:
            self.report.done.append(task.rel)
            self.report.frames += result.frames
            self.report.faces += result.faces_anonymized
        else:
            self.report.failed[task.rel] = errors[-1]
        return None

    def _row(self, task: FileTask, result: FileResult, errors: tuple[str, ...]) -> mf.ManifestRow:
        return mf.ManifestRow(
            path=task.rel, status=mf.DONE if result.ok else mf.FAILED, input_sha256=result.input_sha256,
            config_hash=self.cfg_hash, output=task.output_uri, frames=result.frames,
            faces_anonymized=result.faces_anonymized, identity=result.identity, attempts=task.attempt,
            errors=errors, worker=result.worker, seconds=result.seconds, input_size=result.input_size,
            input_mtime=result.input_mtime, fawn_version=__version__, finished_at=round(time.time(), 3),
        )


class _LocalExecutor(_Executor):
    """Folder mode: the units one after another in this process, one model session for all of them."""

    def __init__(
        self, options: BatchOptions, setup: WorkerSetup, cfg_hash: str, writer: mf.ManifestWriter, report: JobReport
    ) -> None:
        super().__init__(options, cfg_hash, writer, report)
        self.setup = setup

    def run(self, todo: tuple[str, ...], stop: threading.Event | None) -> None:
        queue, bar = self._tasks(todo), self._bar(todo)
        session = FileAnonymizer(self.setup)
        self.report.workers = 1
        started = time.monotonic()
        try:
            while queue and not (stop is not None and stop.is_set()):
                task = queue.popleft()
                result = session.process(task, stop)
                if result.interrupted:
                    break
                self._next(task, result, queue, bar)
        finally:
            self._close_bar(bar, started)
            session.close()


class _Scheduler(_Executor):
    """Keeps every actor busy with one file, retries, replaces dead actors, writes the manifest."""

    def __init__(
        self, ray: Any, options: BatchOptions, setup: WorkerSetup, cfg_hash: str, writer: mf.ManifestWriter,
        report: JobReport,
    ) -> None:
        super().__init__(options, cfg_hash, writer, report)
        self.ray = ray
        cpus, gpus = worker_resources(options)
        self._actor_cls = ray.remote(num_cpus=cpus, num_gpus=gpus, max_restarts=0)(_Worker)
        self._setup_ref = ray.put(setup)
        self._gpus = gpus
        self._deaths_in_a_row = 0

    def run(self, todo: tuple[str, ...], stop: threading.Event | None) -> None:
        queue = self._tasks(todo)
        n = self._worker_count(len(queue))
        actors = [self._spawn() for _ in range(n)]
        self.report.workers = n
        bar = self._bar(todo)
        inflight: dict[Any, tuple[int, FileTask]] = {}
        idle = list(range(n))
        started = time.monotonic()
        try:
            while queue or inflight:
                if stop is not None and stop.is_set():
                    log.warning("stopping: %d files in flight are redone on the next run", len(inflight))
                    break
                while idle and queue:
                    slot, task = idle.pop(), queue.popleft()
                    inflight[actors[slot].process.remote(task)] = (slot, task)
                ready, _ = self.ray.wait(list(inflight), num_returns=1, timeout=0.5)
                for ref in ready:
                    slot, task = inflight.pop(ref)
                    result = self._result(ref, task, actors, slot)
                    idle.append(slot)
                    self._next(task, result, queue, bar)
        finally:
            self._close_bar(bar, started)
            for actor in actors:
                self.ray.kill(actor)

    def _worker_count(self, files: int) -> int:
        cpus, gpus = worker_resources(self.options)
        resources = self.ray.cluster_resources()
        fits = int(resources.get("GPU", 0) // gpus) if gpus else int(resources.get("CPU", 0) // cpus)
        if fits < 1:
            need = f"{gpus:g} GPU" if gpus else f"{cpus:g} CPU"
            raise ClusterError(f"no node of the cluster has {need} free for a worker (cluster: {_resources(resources)})")
        wanted = self.options.workers or fits
        if wanted > fits:
            log.warning("--workers %d: the cluster fits %d; using %d", wanted, fits, fits)
        return max(1, min(wanted, fits, files))

    def _spawn(self) -> Any:
        return self._actor_cls.remote(self._setup_ref)

    def _result(self, ref: Any, task: FileTask, actors: list[Any], slot: int) -> FileResult:
        exceptions = self.ray.exceptions
        try:
            result: FileResult = self.ray.get(ref)
        except (exceptions.RayActorError, exceptions.WorkerCrashedError, exceptions.ObjectLostError) as exc:
            self._deaths_in_a_row += 1
            log.warning("%s: worker died (%s); retrying on a new worker", task.rel, _first_line(exc))
            if self._deaths_in_a_row > max(3, 2 * len(actors)):
                raise ClusterError(f"workers keep dying ({self._deaths_in_a_row} in a row): {_first_line(exc)}") from None
            self.ray.kill(actors[slot])
            actors[slot] = self._spawn()
            return FileResult(task.rel, False, error=f"worker died: {_first_line(exc)}")
        except exceptions.RayTaskError as exc:
            return FileResult(task.rel, False, error=_first_line(exc))
        self._deaths_in_a_row = 0
        return result

def _resources(resources: Mapping[str, float]) -> str:
    return ", ".join(f"{k} {v:g}" for k, v in sorted(resources.items()) if k in ("CPU", "GPU")) or "empty"


def _bar(total: int, initial: int, enabled: bool) -> Any:
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, unit="file", dynamic_ncols=True)
