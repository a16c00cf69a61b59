"""Decode/encode threads: bounded queues, drop-oldest for live, errors crossing threads, prompt stop."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from streamer.core.config import IOConfig
from streamer.core.errors import SinkError, SourceError, SourceLostError
from streamer.core.types import Frame, StreamInfo
from streamer.io.sinks import open_sink
from streamer.io.sources import open_source
from streamer.io.threads import FrameReader, FrameWriter

Item = Frame | av.Packet
IMAGE = np.zeros((8, 8, 3), np.uint8)
INFO = StreamInfo("fake", 8, 8, 30.0, Fraction(1, 30), live=True)


def frame(i: int) -> Frame:
    return Frame(IMAGE, i, pts=i, time_base=Fraction(1, 30), t_decoded=time.monotonic())


class FakeSource:
    """Yields the given items; optionally raises after them, or blocks until released."""

    def __init__(self, items: list[Item], error: BaseException | None = None, hold: bool = False) -> None:
        self.info = INFO
        self.items = items
        self.error = error
        self.release = threading.Event()
        if not hold:
            self.release.set()
        self.produced = 0
        self.closed = 0

    def read(self) -> Iterator[Item]:
        for item in self.items:
            self.produced += 1
            yield item
        self.release.wait(10)
        if self.error is not None:
            raise self.error

    def close(self) -> None:
        self.closed += 1


class RecordingSink:
    def __init__(self, fail_at: int | None = None, gate: threading.Event | None = None) -> None:
        self.items: list[Item] = []
        self.frames_written = 0
        self.closed = 0
        self.fail_at = fail_at
        self.gate = gate

    def write(self, item: Item) -> None:
        if self.gate is not None:
            self.gate.wait(10)
        if self.fail_at is not None and len(self.items) == self.fail_at:
            raise SinkError("disk full")
        self.items.append(item)
        if isinstance(item, Frame):
            self.frames_written += 1

    def close(self) -> None:
        self.closed += 1


def drain(reader: FrameReader, timeout: float = 5.0) -> list[Item]:
    out: list[Item] = []
    while (item := reader.get(timeout=timeout)) is not None:
        out.append(item)
    return out


def wait_until(predicate: object, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:  # type: ignore[operator]
        time.sleep(0.005)
    assert predicate(), "condition not reached in time"  # type: ignore[operator]


# ---------------------------------------------------------------- FrameReader


def test_reader_without_dropping_delivers_every_item_in_order() -> None:
    items: list[Item] = [frame(i) for i in range(50)]
    reader = FrameReader(FakeSource(items), queue_size=3, drop_oldest=False)
    reader.start()
    got = drain(reader)
    reader.stop()
    assert [f.index for f in got] == list(range(50))  # type: ignore[union-attr]
    assert reader.dropped == 0
    assert reader.get() is None  # end of stream stays the end


def test_reader_applies_backpressure_for_files() -> None:
    source = FakeSource([frame(i) for i in range(20)])
    reader = FrameReader(source, queue_size=4, drop_oldest=False)
    reader.start()
    time.sleep(0.2)
    assert reader.qsize() == 4
    assert source.produced <= 4 + 1  # one item may be waiting in put()
    reader.stop()


def test_reader_drop_oldest_bounds_queue_and_counts_drops() -> None:
    audio = av.Packet(b"\x01\x02\x03")
    items: list[Item] = [frame(0), audio] + [frame(i) for i in range(1, 40)]
    source = FakeSource(items, hold=True)  # the stream stays "live" until released
    reader = FrameReader(source, queue_size=4, drop_oldest=True)
    reader.start()
    wait_until(lambda: source.produced == len(items))
    assert reader.qsize() == 4
    source.release.set()
    got = drain(reader)
    reader.stop()
    assert got[0] is audio  # audio packets are never dropped
    assert [f.index for f in got[1:]] == [37, 38, 39]  # type: ignore[union-attr]
    assert reader.dropped == 40 - 3


def test_reader_reraises_source_error_after_queued_frames() -> None:
    source = FakeSource([frame(i) for i in range(3)], error=SourceLostError("camera gone after 5 reconnect attempts"))
    reader = FrameReader(source, queue_size=8, drop_oldest=True)
    reader.start()
    got = [reader.get(timeout=5) for _ in range(3)]
    assert [f.index for f in got] == [0, 1, 2]  # type: ignore[union-attr]
    with pytest.raises(SourceLostError, match="camera gone"):
        reader.get(timeout=5)
    reader.stop()
    assert source.closed == 1


def test_reader_get_timeout_raises_queue_empty() -> None:
    source = FakeSource([], hold=True)
    reader = FrameReader(source, queue_size=2, drop_oldest=False)
    reader.start()
    start = time.monotonic()
    with pytest.raises(queue.Empty):
        reader.get(timeout=0.1)
    assert time.monotonic() - start < 1.0
    source.release.set()
    assert reader.get(timeout=5) is None
    reader.stop()


def test_reader_stop_is_prompt_when_blocked_on_full_queue() -> None:
    source = FakeSource([frame(i) for i in range(100)])
    reader = FrameReader(source, queue_size=2, drop_oldest=False)
    reader.start()
    wait_until(lambda: reader.qsize() == 2)
    start = time.monotonic()
    reader.stop()
    assert time.monotonic() - start < 0.5
    assert source.closed == 1
    reader.stop()  # idempotent
    assert source.closed == 1


def test_reader_stop_without_start_closes_source() -> None:
    source = FakeSource([frame(0)])
    FrameReader(source, queue_size=2, drop_oldest=False).stop()
    assert source.closed == 1


# ---------------------------------------------------------------- FrameWriter


def test_writer_writes_everything_in_order_and_closes_sink() -> None:
    sink = RecordingSink()
    writer = FrameWriter(sink, queue_size=2)
    writer.start()
    packet = av.Packet(b"\x00")
    for i in range(10):
        writer.put(frame(i))
    writer.put(packet)
    writer.close()
    writer.close()  # idempotent
    assert [getattr(x, "index", "pkt") for x in sink.items] == [*range(10), "pkt"]
    assert sink.closed == 1


def test_writer_put_blocks_when_queue_is_full() -> None:
    gate = threading.Event()
    sink = RecordingSink(gate=gate)
    writer = FrameWriter(sink, queue_size=2)
    writer.start()
    done = threading.Event()

    def produce() -> None:
        for i in range(5):
            writer.put(frame(i))
        done.set()

    thread = threading.Thread(target=produce)
    thread.start()
    assert not done.wait(0.3)  # 1 in write + 2 queued, then put() waits
    gate.set()
    assert done.wait(5)
    thread.join()
    writer.close()
    assert sink.frames_written == 5


def test_writer_reraises_encode_error_in_put_and_still_closes_sink() -> None:
    sink = RecordingSink(fail_at=2)
    writer = FrameWriter(sink, queue_size=2)
    writer.start()
    with pytest.raises(SinkError, match="disk full"):
        for i in range(50):
            writer.put(frame(i))
    writer.close()  # already reported by put(): not raised twice
    assert sink.closed == 1


def test_writer_reraises_encode_error_in_close() -> None:
    sink = RecordingSink(fail_at=0)
    writer = FrameWriter(sink, queue_size=4)
    writer.start()
    writer.put(frame(0))
    with pytest.raises(SinkError, match="disk full"):
        writer.close()
    writer.close()
    assert sink.closed == 1


def test_writer_close_without_start_closes_sink() -> None:
    sink = RecordingSink()
    FrameWriter(sink, queue_size=1).close()
    assert sink.closed == 1


def test_writer_reports_sink_close_error() -> None:
    class BadClose(RecordingSink):
        def close(self) -> None:
            raise SinkError("finalizing failed")

    writer = FrameWriter(BadClose(), queue_size=1)
    writer.start()
    with pytest.raises(SinkError, match="finalizing"):
        writer.close()


# ---------------------------------------------------------------- real media through both threads


def test_file_to_file_through_reader_and_writer_threads(av_clip: Path, tmp_path: Path) -> None:
    io = IOConfig(queue_size=4, preset="ultrafast")
    source = open_source(str(av_clip), io)
    sink = open_sink(str(tmp_path / "out.mp4"), source.info, io)
    reader = FrameReader(source, io.queue_size, drop_oldest=source.info.live)
    writer = FrameWriter(sink, io.queue_size)
    reader.start()
    writer.start()
    packets = 0
    while (item := reader.get(timeout=10)) is not None:
        packets += isinstance(item, av.Packet)
        writer.put(item)
    reader.stop()
    writer.close()
    assert sink.frames_written == 30 and reader.dropped == 0
    with av.open(str(tmp_path / "out.mp4")) as container:
        assert len(list(container.decode(video=0))) == 30
    with av.open(str(av_clip)) as container:
        assert packets == sum(1 for p in container.demux(audio=0) if p.dts is not None)


def test_reader_reraises_error_raised_mid_stream() -> None:
    class Failing(FakeSource):
        def read(self) -> Iterator[Item]:
            yield frame(0)
            raise SourceError("error while reading clip.mp4: Invalid data found")

    reader = FrameReader(Failing([]), queue_size=2, drop_oldest=False)
    reader.start()
    assert reader.get(timeout=5).index == 0  # type: ignore[union-attr]
    with pytest.raises(SourceError, match="Invalid data"):
        reader.get(timeout=5)
    reader.stop()
