"""Decode and encode worker threads joined to the pipeline by bounded queues.

:class:`FrameReader` runs ``source.read()`` on its own thread. For files the
queue applies backpressure (every frame is processed); for live sources
(``drop_oldest=True``) a full queue discards its oldest *frame* — never an audio
packet — so latency stays bounded. :class:`FrameWriter` runs ``sink.write`` on
its own thread with a blocking bounded queue. An exception on a worker thread
is re-raised in the caller's thread by the next ``get``/``put``/``close``.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque

import av

from streamer.core.types import Frame
from streamer.io.sinks import Sink
from streamer.io.sources import Source

log = logging.getLogger(__name__)

Item = Frame | av.Packet

STOP_TIMEOUT = 2.0  # seconds stop() waits for the decode thread before leaving it to finish alone


class _Channel:
    """A bounded FIFO between two threads that can be cancelled and can carry an error."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"queue size must be >= 1, got {capacity}")
        self.capacity = capacity
        self._items: deque[Item] = deque()
        self._cond = threading.Condition()
        self._finished = False  # the producer is done (or failed)
        self._cancelled = False  # the consumer is gone: producers stop waiting
        self._error: BaseException | None = None

    def put(self, item: Item, drop_oldest: bool = False) -> tuple[bool, int]:
        """Append ``item``, waiting for room (or dropping the oldest frame).

        Returns (accepted, frames dropped); ``accepted`` is False once cancelled.
        """
        dropped = 0
        with self._cond:
            while len(self._items) >= self.capacity and not self._cancelled:
                if drop_oldest and self._drop_oldest_frame():
                    dropped += 1
                    break
                self._cond.wait()
            if self._cancelled:
                return False, dropped
            self._items.append(item)
            self._cond.notify_all()
            return True, dropped

    def _drop_oldest_frame(self) -> bool:
        for i, queued in enumerate(self._items):
            if isinstance(queued, Frame):
                del self._items[i]
                return True
        return False

    def get(self, timeout: float | None = None) -> Item | None:
        """The next item; None once the producer finished and the queue is empty.

        Re-raises the producer's error after the items queued before it.
        Raises :class:`queue.Empty` when ``timeout`` passes with nothing to return.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while not self._items and not self._finished:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise queue.Empty
                self._cond.wait(remaining)
            if self._items:
                item = self._items.popleft()
                self._cond.notify_all()
                return item
            if self._error is not None:
                raise self._error
            return None

    def finish(self, error: BaseException | None = None) -> None:
        with self._cond:
            self._finished = True
            self._error = self._error or error
            self._cond.notify_all()

    def cancel(self) -> None:
        with self._cond:
            self._cancelled = True
            self._items.clear()
            self._cond.notify_all()

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)


class FrameReader:
    """The decode thread: ``source.read()`` into a bounded queue."""

    def __init__(self, source: Source, queue_size: int, drop_oldest: bool) -> None:
        self._source = source
        self._channel = _Channel(queue_size)
        self._drop_oldest = drop_oldest
        self._thread = threading.Thread(target=self._run, name="fawn-decode", daemon=True)
        self._lock = threading.Lock()
        self._started = False
        self._done = False  # the thread has left source.read()
        self._stopped = False
        self._source_closed = False
        self.dropped = 0

    def start(self) -> None:
        self._started = True
        self._thread.start()

    def _run(self) -> None:
        error: BaseException | None = None
        items = self._source.read()
        try:
            for item in items:
                accepted, dropped = self._channel.put(item, self._drop_oldest)
                self.dropped += dropped
                if not accepted:
                    break
        except BaseException as exc:  # handed to the consumer by get()
            error = exc
        finally:
            _close_iterator(items)
            self._channel.finish(None if self._stopped else error)
            with self._lock:
                self._done = True
                close_here = self._stopped
            if close_here:
                self._close_source()
        if error is not None:
            log.debug("decode thread ended with %s: %s", type(error).__name__, error)

    def get(self, timeout: float | None = None) -> Item | None:
        """The next frame or audio packet; None at the end of the stream.

        Re-raises the decode thread's exception. Raises :class:`queue.Empty` when
        ``timeout`` seconds pass with nothing to return.
        """
        return self._channel.get(timeout)

    def qsize(self) -> int:
        return len(self._channel)

    def stop(self) -> None:
        """Stop the decode thread (even when blocked on a full queue) and close the source.

        A thread stuck in a network read is given ``STOP_TIMEOUT`` seconds; after
        that it closes the source itself when the read returns.
        """
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
        self._channel.cancel()
        if self._started:
            self._thread.join(STOP_TIMEOUT)
        with self._lock:
            close_now = self._done or not self._started
        if close_now:
            self._close_source()
        else:
            log.warning("decode thread still busy after %.1fs; it will close the source when it returns",
                        STOP_TIMEOUT)

    def _close_source(self) -> None:
        with self._lock:
            if self._source_closed:
                return
            self._source_closed = True
        try:
            self._source.close()
        except Exception as exc:  # closing must not hide the error that stopped the run
            log.warning("closing the source failed: %s", exc)


class FrameWriter:
    """The encode thread: a bounded queue into ``sink.write``; ``close`` drains and finalizes."""

    def __init__(self, sink: Sink, queue_size: int) -> None:
        self._sink = sink
        self._channel = _Channel(queue_size)
        self._thread = threading.Thread(target=self._run, name="fawn-encode", daemon=True)
        self._started = False
        self._closed = False
        self._error: BaseException | None = None
        self._reported = False  # the error was already raised to the caller

    def start(self) -> None:
        self._started = True
        self._thread.start()

    def _run(self) -> None:
        try:
            while (item := self._channel.get()) is not None:
                self._sink.write(item)
        except BaseException as exc:  # re-raised by put()/close() in the caller's thread
            self._error = exc
            self._channel.cancel()
        finally:
            self._close_sink()

    def _close_sink(self) -> None:
        try:
            self._sink.close()
        except BaseException as exc:
            if self._error is None:
                self._error = exc
            else:
                log.debug("closing the sink after an error failed too: %s", exc)

    def put(self, item: Item) -> None:
        """Queue ``item`` for encoding; blocks while the queue is full. Re-raises an encode error."""
        if self._closed:
            raise RuntimeError("FrameWriter.put after close")
        if not self._started:
            raise RuntimeError("FrameWriter.put before start")
        accepted, _ = self._channel.put(item)
        if not accepted or self._error is not None:
            self._raise_error()

    def _raise_error(self) -> None:
        self._thread.join()
        if self._error is None:
            raise RuntimeError("the encode thread stopped")
        self._reported = True
        raise self._error

    def close(self) -> None:
        """Drain the queue, close the sink and join the thread.

        Re-raises an encode error unless ``put`` already raised it. Idempotent.
        """
        if self._closed:
            return
        self._closed = True
        if not self._started:
            self._close_sink()
        else:
            self._channel.finish()
            self._thread.join()
        if self._error is not None and not self._reported:
            self._reported = True
            raise self._error


def _close_iterator(items: object) -> None:
    close = getattr(items, "close", None)
    if callable(close):
        try:
            close()
        except Exception as exc:
            log.debug("closing the source iterator failed: %s", exc)
