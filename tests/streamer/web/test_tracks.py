"""The WebRTC tracks carry only anonymized frames: broadcast fan-out, camera path, fail-closed."""

from __future__ import annotations

import asyncio
import time
from fractions import Fraction

import av
import numpy as np
import pytest
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError

from streamer.core.stats import RunStats
from streamer.core.types import FaceDetections, Frame, Image
from streamer.runtime.processor import FrameProcessor, build_processor
from streamer.tools import verify
from streamer.web.tracks import (
    AnonymizedFrame,
    BroadcastHub,
    CameraTrack,
    anonymize,
    draw_labels,
    draw_stamp,
    read_stamp,
    summarize,
)
from tests.streamer.web import Clip, ClipTrack, clip_feed, make_clip, serve_config


@pytest.fixture(scope="module")
def clip() -> Clip:
    return make_clip(seconds=1.0)


def new_processor() -> FrameProcessor:
    return build_processor(serve_config(), RunStats())


class Spy:
    """Wraps a processor and records every image it returned (after anonymizing)."""

    def __init__(self, processor: FrameProcessor) -> None:
        self.inner = processor
        self.stats = processor.stats
        self.outputs: list[Image] = []

    def process(self, frame: Frame) -> FaceDetections:
        dets = self.inner.process(frame)
        self.outputs.append(frame.image.copy())
        return dets


class Broken:
    """A processor whose stages fail with an unexpected error."""

    def __init__(self) -> None:
        self.stats = RunStats()

    def process(self, frame: Frame) -> FaceDetections:
        raise RuntimeError("boom")


def faces_hidden(original: Image, output: Image, boxes: np.ndarray) -> list[bool]:
    return [verify.face_hidden(original, output, box) for box in boxes]


def test_stamp_round_trip() -> None:
    image = np.full((48, 200, 3), 128, np.uint8)
    for value in (0, 1, 1234, 65535):
        draw_stamp(image, value)
        assert read_stamp(image) == value
    assert read_stamp(np.full((48, 200, 3), 128, np.uint8)) is None


def test_anonymize_hides_faces_and_seals_the_frame(clip: Clip) -> None:
    processor = new_processor()
    image = clip.frames[3].copy()
    item = anonymize(processor, Frame(image, 3, t_decoded=time.monotonic()))
    assert isinstance(item, AnonymizedFrame)
    assert all(faces_hidden(clip.frames[3], item.image, clip.boxes[3]))
    assert not item.image.flags.writeable  # nobody edits a frame after it was anonymized
    assert item.summary.faces >= 1 and item.summary.visible_names == ()


def test_anonymize_fails_closed_when_the_processor_raises(clip: Clip) -> None:
    image = clip.frames[0].copy()
    item = anonymize(Broken(), Frame(image, 0))  # type: ignore[arg-type]
    assert all(faces_hidden(clip.frames[0], item.image, clip.boxes[0]))
    whole = np.array([0, 0, image.shape[1], image.shape[0]], np.float32)
    assert verify.face_hidden(clip.frames[0], item.image, whole)  # the whole frame lost its detail


def test_labels_only_on_visible_registered_faces() -> None:
    dets = FaceDetections(
        np.array([[10, 40, 60, 100], [100, 40, 150, 100]], np.float32),
        np.ones(2, np.float32),
        identity=["registered:alice", "registered:bob"],
        visible=np.array([True, False]),
    )
    image = np.zeros((120, 200, 3), np.uint8)
    draw_labels(image, dets)
    assert image[:40, :70].any()  # alice is shown, so she is labelled
    assert not image[:40, 95:].any()  # bob is hidden: his name is never written
    assert summarize(dets).visible_names == ("alice",)


def test_broadcast_fans_one_pipeline_out_to_every_viewer(clip: Clip) -> None:
    async def main() -> tuple[list[list[Image]], Spy]:
        spy = Spy(new_processor())
        hub = BroadcastHub(clip_feed(clip), spy, replay=False)  # type: ignore[arg-type]
        viewers = [hub.subscribe(), hub.subscribe()]
        hub.start(asyncio.get_running_loop())
        try:
            got = await asyncio.wait_for(asyncio.gather(*(collect(v, 8) for v in viewers)), 20)
        finally:
            hub.stop()
        return got, spy

    received, spy = asyncio.run(main())
    assert len(spy.outputs) <= len(clip.frames)  # decoded and anonymized once, not once per viewer
    for frames in received:
        assert len(frames) == 8
        for image in frames:
            index = read_stamp(image)
            assert index is not None
            assert any(np.array_equal(image, out) for out in spy.outputs), "a frame that was not anonymized"
            assert all(faces_hidden(clip.frames[index], image, clip.boxes[index]))


async def collect(track: MediaStreamTrack, count: int) -> list[Image]:
    frames: list[Image] = []
    while len(frames) < count:
        frame = await track.recv()
        assert isinstance(frame, av.VideoFrame)
        frames.append(frame.to_ndarray(format="bgr24"))
    return frames


def test_broadcast_ends_viewer_tracks_when_the_source_ends(clip: Clip) -> None:
    short = Clip(clip.frames[:3], clip.boxes[:3])

    async def main() -> int:
        hub = BroadcastHub(clip_feed(short, live=True), new_processor(), replay=True)
        viewer = hub.subscribe()
        hub.start(asyncio.get_running_loop())
        count = 0
        try:
            with pytest.raises(MediaStreamError):
                while True:
                    await asyncio.wait_for(viewer.recv(), 10)
                    count += 1
        finally:
            hub.stop()
        assert hub.ended and hub.viewers == 0
        return count

    assert asyncio.run(main()) <= 3


def test_camera_track_sends_back_only_anonymized_frames(clip: Clip) -> None:
    async def main() -> tuple[list[Image], Spy]:
        spy = Spy(new_processor())
        track = CameraTrack(ClipTrack(clip), spy)  # type: ignore[arg-type]
        try:
            return await asyncio.wait_for(collect(track, 10), 20), spy
        finally:
            track.stop()

    frames, spy = asyncio.run(main())
    for image in frames:
        index = read_stamp(image)
        assert index is not None
        assert any(np.array_equal(image, out) for out in spy.outputs)
        assert all(faces_hidden(clip.frames[index], image, clip.boxes[index]))


def test_camera_track_fails_closed(clip: Clip) -> None:
    async def main() -> Image:
        track = CameraTrack(ClipTrack(clip), Broken())  # type: ignore[arg-type]
        try:
            frame = await asyncio.wait_for(track.recv(), 10)
        finally:
            track.stop()
        return frame.to_ndarray(format="bgr24")

    image = asyncio.run(main())
    assert all(faces_hidden(clip.frames[0], image, clip.boxes[0]))


def test_camera_track_ends_with_its_source() -> None:
    class Ended(MediaStreamTrack):
        kind = "video"

        async def recv(self) -> av.VideoFrame:
            raise MediaStreamError

    async def main() -> None:
        track = CameraTrack(Ended(), new_processor())
        with pytest.raises(MediaStreamError):
            await asyncio.wait_for(track.recv(), 5)

    asyncio.run(main())


def test_the_face_check_catches_a_raw_face_after_vp8(clip: Clip) -> None:
    """Control: VP8 keeps a raw face's detail, so the checks above would see a leak."""
    from aiortc.codecs import get_decoder, get_encoder
    from aiortc.codecs.vpx import vp8_depayload
    from aiortc.jitterbuffer import JitterFrame
    from aiortc.rtcrtpparameters import RTCRtpCodecParameters

    codec = RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=96)
    encoder, decoder = get_encoder(codec), get_decoder(codec)
    frame = av.VideoFrame.from_ndarray(clip.frames[0], format="bgr24")
    frame.pts, frame.time_base = 0, Fraction(1, 90000)
    payloads, timestamp = encoder.encode(frame)
    data = b"".join(vp8_depayload(p) for p in payloads)
    (decoded,) = decoder.decode(JitterFrame(data=data, timestamp=timestamp))
    assert isinstance(decoded, av.VideoFrame)
    image = decoded.to_ndarray(format="bgr24")
    assert not any(faces_hidden(clip.frames[0], image, clip.boxes[0]))


def test_a_jump_is_detected_afresh_not_covered_by_stale_tracks(clip: Clip) -> None:
    """A replayed clip jumps back to frame 0: its faces must be found there, not only predicted."""
    processor = new_processor()
    assert processor.every_n > 1  # the webrtc preset detects every other frame
    order = list(range(len(clip.frames))) + [0, 1, 2]
    if len(clip.frames) % processor.every_n == 0:
        order = order[1:]  # make the jump land on a frame the schedule would not detect
    for index in order:
        item = anonymize(processor, Frame(clip.frames[index].copy(), index))
        assert all(faces_hidden(clip.frames[index], item.image, clip.boxes[index])), f"frame {index} leaked"
