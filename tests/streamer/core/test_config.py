from pathlib import Path

import pytest

from streamer.core.config import PipelineConfig, load_config, presets_dir
from streamer.core.errors import ConfigError


@pytest.mark.parametrize("name", ["default", "cctv", "dashcam", "webrtc"])
def test_presets_load(name: str) -> None:
    assert isinstance(load_config(name), PipelineConfig)


def test_presets_ship_as_package_data() -> None:
    assert {p.stem for p in presets_dir().glob("*.yaml")} >= {"default", "cctv", "dashcam", "webrtc"}


def test_unknown_key_names_key_and_valid_keys(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("detector:\n  treshold: 0.5\n")
    with pytest.raises(ConfigError, match=r"unknown key 'detector.treshold' \(valid keys in detector: .*threshold"):
        load_config(bad)


def test_unknown_section(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("detektor: {}\n")
    with pytest.raises(ConfigError, match="unknown key 'detektor'.*detector"):
        load_config(bad)


def test_bad_choice_lists_choices() -> None:
    with pytest.raises(ConfigError, match=r"anonymizer.method: 'swirl' is not valid \(choices: blur, pixelate, solid"):
        load_config(None, {"anonymizer.method": "swirl"})


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("detector.threshold", 2.0, "detector.threshold"),
        ("detector.every_n", 0, "detector.every_n"),
        ("io.crf", "high", "expected an integer"),
        ("tracker.max_coast", True, "expected an integer"),
    ],
)
def test_bad_values(key: str, value: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(None, {key: value})


def test_not_yaml(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("detector: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


def test_missing_preset() -> None:
    with pytest.raises(ConfigError, match="preset: .*cctv"):
        load_config("nonexistent")


def test_overrides_apply() -> None:
    cfg = load_config("cctv", {"anonymizer.method": "pixelate", "detector.every_n": 3})
    assert cfg.anonymizer.method == "pixelate"
    assert cfg.detector.every_n == 3
    assert cfg.detector.max_side == 1920
