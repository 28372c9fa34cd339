"""``facekeypoints demo`` on the photos that ship with our dependencies."""
from __future__ import annotations

import json
from pathlib import Path

import cv2

from facekeypoints.cli import main
from facekeypoints.demo import demo_images, run_demo
from fakes import mean_face_checkpoint

DEFAULT_MODEL = Path(__file__).resolve().parents[1] / "src" / "facekeypoints" / "weights" / "kaggle15_default.pt"


def test_demo_finds_the_faces_and_writes_drawings_and_json(tmp_path):
    model = mean_face_checkpoint(tmp_path / "mean.pt")
    lines = []
    results = run_demo(tmp_path / "demo-output", model=model, echo=lines.append)
    expected = ["grace_hopper"] + (["astronaut"] if "astronaut" in demo_images(lambda _: None) else [])
    assert list(results) == expected
    for name in expected:
        assert len(results[name]) == 1, f"{name}: the Haar detector should find exactly one face"
        doc = json.loads((tmp_path / "demo-output" / f"{name}.json").read_text())
        assert len(doc["faces"]) == 1 and doc["source"] == name
        assert cv2.imread(str(tmp_path / "demo-output" / f"{name}.jpg")) is not None
    text = "\n".join(lines)
    assert "grace_hopper: 1 face," in text and "ms per face" in text


def test_demo_cli_without_a_default_model_says_what_is_missing(tmp_path, capsys, monkeypatch):
    import facekeypoints.models.weights as weights

    # an install that lost its weights file: point the package's weights folder somewhere empty
    monkeypatch.setattr(weights, "SHIPPED", {"kaggle15": weights.SHIPPED["kaggle15"].__class__(
        **{**weights.SHIPPED["kaggle15"].__dict__, "file": "missing_on_purpose.pt"})})
    assert main(["demo", "-o", str(tmp_path / "out")]) == 2
    assert "default kaggle15 model is missing" in capsys.readouterr().err


def test_demo_cli_with_the_default_model(tmp_path, capsys):
    assert main(["demo", "-o", str(tmp_path / "out")]) == 0
    assert "grace_hopper: 1 face," in capsys.readouterr().out
