import pytest

from facekeypoints.data.augment import Augment
from facekeypoints.train.config import ConfigError, config_from_dict, load_config


def test_file_then_overrides(tmp_path):
    f = tmp_path / "exp.yaml"
    f.write_text("model: {name: resnet18}\ntrain: {epochs: 7, lr: 0.01}\naugment: {flip_prob: 0.0}\n")
    cfg = load_config(f, ["train.epochs=3", "data.split=[0.55, 0.15, 0.3]"])
    assert cfg.model.name == "resnet18"
    assert cfg.train.epochs == 3 and cfg.train.lr == 0.01
    assert cfg.data.split == [0.55, 0.15, 0.3]
    assert cfg.augment == Augment(flip_prob=0.0)  # the other settings keep their defaults


def test_unknown_key_suggests_the_closest(tmp_path):
    with pytest.raises(ConfigError, match=r"train.epochs"):
        load_config(None, ["train.epoch=3"])
    f = tmp_path / "bad.yaml"
    f.write_text("trian: {epochs: 1}\n")
    with pytest.raises(ConfigError, match=r"bad.yaml.*trian.*train"):
        load_config(f)


def test_wrong_type_is_rejected():
    with pytest.raises(ConfigError, match="train.epochs"):
        load_config(None, ["train.epochs=many"])
    with pytest.raises(ConfigError, match="train.batch_size"):
        load_config(None, ["train.batch_size=true"])
    assert load_config(None, ["train.lr=1"]).train.lr == 1.0  # ints are fine for floats


def test_round_trip_through_dict():
    cfg = load_config(None, ["model.name=fcnn", "train.patience=20"])
    again = config_from_dict(cfg.to_dict())
    assert again == cfg


def test_every_shipped_config_loads():
    from pathlib import Path

    files = sorted(Path(__file__).resolve().parents[1].joinpath("configs").rglob("*.yaml"))
    assert files, "configs/ should hold the seed experiments"
    for f in files:
        load_config(f)
