from streamer.io import demo
from streamer.stages.scene import CutDetector


def test_cut_detector_ignores_ordinary_motion_and_spots_a_replay() -> None:
    frames = [image for image, _ in demo.render(demo.demo_spec(seconds=1.0))]
    cut = CutDetector()
    assert cut(frames[0])  # the first frame of a stream counts as a cut
    assert not any(cut(image) for image in frames[1:])
    assert cut(frames[0])  # the replay jump
