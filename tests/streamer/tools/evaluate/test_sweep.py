"""Sweep grid parsing, Pareto front, and a small real sweep."""

import csv
from pathlib import Path

import pytest

from streamer.core.errors import ConfigError
from streamer.tools.evaluate.runner import Evaluator
from streamer.tools.evaluate.sweep import label_of, pareto_front, parse_grid, run_sweep


def test_grid_is_the_cartesian_product_of_yaml_values() -> None:
    points = parse_grid(["anonymizer.method=blur,pixelate", "anonymizer.strength=0.2,0.5"])
    assert points == [
        {"anonymizer.method": "blur", "anonymizer.strength": 0.2},
        {"anonymizer.method": "blur", "anonymizer.strength": 0.5},
        {"anonymizer.method": "pixelate", "anonymizer.strength": 0.2},
        {"anonymizer.method": "pixelate", "anonymizer.strength": 0.5},
    ]
    with pytest.raises(ConfigError, match="KEY=V1,V2"):
        parse_grid(["anonymizer.strength"])


def test_labels() -> None:
    assert label_of({"anonymizer.method": "ksame", "ksame.k": 3}) == "ksame k=3"
    assert label_of({}) == "config"


def test_pareto_front_known_points() -> None:
    pts = [(0.1, 0.9), (0.5, 0.5), (0.4, 0.4), (0.9, 0.1), (0.9, 0.05)]
    assert pareto_front(pts) == [0, 1, 3]


def test_a_small_sweep_writes_csv_plot_and_names_the_best(evaluator: Evaluator, tmp_path: Path) -> None:
    points = [
        {"anonymizer.method": "solid"},
        {"anonymizer.method": "blur", "anonymizer.strength": 0.5},
        {"anonymizer.method": "ksame", "ksame.faces": str(tmp_path / "missing")},  # fails: reported, not fatal
    ]
    sweep = run_sweep(evaluator, points, tmp_path)
    rows = list(csv.DictReader((tmp_path / "sweep.csv").open()))
    assert [r["label"] for r in rows] == ["solid", "blur strength=0.5", f"ksame faces={tmp_path / 'missing'}"]
    assert rows[0]["reid_rate"] and not rows[2]["reid_rate"] and "not found" in rows[2]["error"]
    assert sweep.best is not None and sweep.best.label in ("solid", "blur strength=0.5")
    assert (tmp_path / "pareto.png").read_bytes()[:4] == b"\x89PNG"
    md = (tmp_path / "sweep.md").read_text()
    assert f"**{sweep.best.label}**" in md and "pareto.png" in md
