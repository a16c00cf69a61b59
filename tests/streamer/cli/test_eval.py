"""``fawn eval`` / ``fawn sweep`` argument handling, and one real run on a folder of photos."""

import argparse
import json
from pathlib import Path

import pytest

from streamer.cli.eval import add_eval_parser, add_sweep_parser, gallery_overrides, parse_sets
from streamer.core.errors import ConfigError
from streamer.tools.evaluate.faces import builtin_faces, write_faces


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fawn")
    sub = parser.add_subparsers(dest="command", required=True)
    add_eval_parser(sub)
    add_sweep_parser(sub)
    return parser


def test_sets_are_yaml_values() -> None:
    assert parse_sets(["anonymizer.strength=0.3", "ksame.faces=faces/"]) == {"anonymizer.strength": 0.3, "ksame.faces": "faces/"}
    with pytest.raises(ConfigError):
        parse_sets(["novalue"])


def test_gallery_goes_where_it_fits(tmp_path: Path) -> None:
    enrolled = tmp_path / "people.fawn"
    enrolled.write_text("{}")
    assert gallery_overrides(str(tmp_path), "ksame", sweep=False) == {"ksame.faces": str(tmp_path)}
    assert gallery_overrides(str(enrolled), "ksame", sweep=False) == {"ksame.faces": str(enrolled)}  # refused later, explained
    assert gallery_overrides(str(enrolled), "blur", sweep=False) == {"identity.gallery": str(enrolled)}
    assert gallery_overrides(str(tmp_path), None, sweep=True) == {"ksame.faces": str(tmp_path)}
    with pytest.raises(ConfigError, match="only --method ksame"):
        gallery_overrides(str(tmp_path), "blur", sweep=False)


def test_sweep_parser_collects_grid_axes() -> None:
    args = _parser().parse_args(["sweep", "builtin", "-o", "out", "--grid", "ksame.k=2,3", "--grid", "anonymizer.method=ksame"])
    assert args.grid == ["ksame.k=2,3", "anonymizer.method=ksame"]


def test_eval_on_a_folder_of_labelled_photos(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = write_faces(tmp_path / "faces", builtin_faces(2, people=3))
    args = _parser().parse_args(["eval", str(folder), "-o", str(tmp_path / "report"), "--method", "pixelate", "--no-fid"])
    assert args.func(args) == 0
    data = json.loads((tmp_path / "report" / "metrics.json").read_text())
    assert data["info"]["faces"] == 6 and data["info"]["identities"] == 3 and data["info"]["labelled"]
    assert data["info"]["method"] == "pixelate"
    assert data["skipped"]["fid"] == "skipped: FID turned off (--no-fid)"
    assert "report:" in capsys.readouterr().out


def test_loose_photos_are_unlabelled_each_its_own_identity(tmp_path: Path, detector) -> None:  # type: ignore[no-untyped-def]
    import cv2

    from streamer.tools.evaluate.dataset import load_photos

    for photo in builtin_faces(1, people=3):
        cv2.imwrite(str(tmp_path / f"{photo.person}.jpg"), photo.image)
    (tmp_path / "notes.txt").write_text("not a photo")
    evalset = load_photos(str(tmp_path), detector)
    assert not evalset.labelled and evalset.identities == len(evalset.faces) == 3
