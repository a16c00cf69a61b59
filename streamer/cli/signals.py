"""Signal handling for every command, in one place: SIGINT/SIGTERM stop a run cleanly (the output is finalized)."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # asyncio is imported by the one command that uses it (``fawn serve``): ~20 ms of start-up
    import asyncio

log = logging.getLogger("fawn")
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextmanager
def stop_on_signals() -> Iterator[threading.Event]:
    """SIGINT/SIGTERM set an event so the run stops cleanly and finalizes its output."""
    stop = threading.Event()

    def handler(signum: int, _frame: object) -> None:
        log.warning("received %s: finishing the output and stopping", signal.Signals(signum).name)
        stop.set()

    previous = {s: signal.signal(s, handler) for s in STOP_SIGNALS}
    try:
        yield stop
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


@asynccontextmanager
async def async_stop_on_signals() -> AsyncIterator[asyncio.Event]:
    """The same for an asyncio command (``fawn serve``): SIGINT/SIGTERM set an ``asyncio.Event``."""
    import asyncio

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for s in STOP_SIGNALS:
        loop.add_signal_handler(s, stop.set)
    try:
        yield stop
    finally:
        for s in STOP_SIGNALS:
            loop.remove_signal_handler(s)
