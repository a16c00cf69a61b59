"""A real Ray cluster on loopback: a head node and a second (worker) node, one CPU each.

Ray rewrites 127.0.0.1 to the machine's primary address, so the nodes use
127.0.0.2 (loopback too). Every process a ``ray start`` spawns stays in the
session it was started in; teardown ends exactly those sessions (by id), so
other Ray instances on the machine are left alone.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

pytest.importorskip("ray", reason="fawn[ray] is not installed")

HOST = "127.0.0.2"
START_TIMEOUT = 90.0


@dataclass(frozen=True)
class RayCluster:
    address: str
    sessions: tuple[int, ...]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def _ray_start(args: list[str], env: dict[str, str], log: Path) -> int:
    """``ray start ARGS`` in a new session; returns the session id (= the ``ray start`` pid)."""
    ray = str(Path(sys.executable).with_name("ray"))
    with log.open("ab") as out:
        proc = subprocess.Popen([ray, "start", *args], env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            rc = proc.wait(timeout=START_TIMEOUT)
        except subprocess.TimeoutExpired:
            _end_session(proc.pid)
            raise
    if rc != 0:
        _end_session(proc.pid)
        raise RuntimeError(f"ray start failed ({rc}): {log.read_text()[-2000:]}")
    return proc.pid


def _session_pids(sid: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid and fields[0] != "Z":  # fields: state ppid pgrp session ...
            pids.append(int(entry.name))
    return pids


def _end_session(sid: int, grace: float = 3.0) -> None:
    """SIGTERM every process of session ``sid``, SIGKILL what is left after ``grace`` seconds."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in _session_pids(sid):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + grace
        while _session_pids(sid) and time.monotonic() < deadline:
            time.sleep(0.2)


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[RayCluster]:
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    port = _free_port()
    temp = tempfile.mkdtemp(prefix="fawnray-", dir="/tmp")  # short: Ray's socket paths must fit 107 bytes
    log = Path(temp) / "ray-start.log"
    common = [f"--node-ip-address={HOST}", "--num-cpus=1", "--disable-usage-stats"]
    sessions = [_ray_start(["--head", f"--port={port}", "--include-dashboard=false", f"--temp-dir={temp}", *common], env, log)]
    try:
        sessions.append(_ray_start([f"--address={HOST}:{port}", *common], env, log))
        yield RayCluster(f"{HOST}:{port}", tuple(sessions))
    finally:
        import ray

        ray.shutdown()
        for sid in reversed(sessions):
            _end_session(sid)
        shutil.rmtree(temp, ignore_errors=True)
