"""The model card: one contract saved with every checkpoint and export, read by one loader."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from facekeypoints import KeypointDetector
from facekeypoints.cli import main
from facekeypoints.data.pipeline import DataConfig
from facekeypoints.data.preprocess import Preprocess
from facekeypoints.models import create_model
from facekeypoints.models.card import CARD_VERSION, CardError, ModelCard
from facekeypoints.models.checkpoint import CheckpointError, card_for, load_checkpoint, load_model, save_checkpoint
from facekeypoints.schema import load_schema


def _card(**changes) -> ModelCard:
    values = dict(model="keypoint_net", schema=load_schema("ibug68"), input_size=64, in_channels=3,
                  preprocess=Preprocess(size=64, channels=3, clahe=True), framing="kaggle",
                  options={"head_channels": 16}, trained_on=DataConfig(train="faces.csv", frame="kaggle"),
                  metrics={"epoch": 3, "val_rmse": 2.5})
    return ModelCard(**{**values, **changes})


def test_round_trip_through_plain_data_and_json():
    card = _card()
    assert ModelCard.from_dict(card.to_dict()) == card
    again = ModelCard.from_dict(json.loads(json.dumps(card.to_dict())))
    assert again == card and again.version == CARD_VERSION


@pytest.mark.parametrize("changes, message", [
    ({"framing": "letterbox"}, "framing 'letterbox' is not one of"),
    ({"preprocess": Preprocess(size=96, channels=3)}, "preprocess makes 3x96x96 inputs but the model takes 3x64x64"),
    ({"version": CARD_VERSION + 1}, "newer than this facekeypoints reads"),
])
def test_inconsistent_cards_are_refused(changes, message):
    with pytest.raises(CardError, match=message):
        _card(**changes)


def test_the_loader_names_the_source_and_the_bad_field():
    d = _card().to_dict()
    with pytest.raises(CardError, match=r"m\.pt: .*unknown key 'trained_on\.trian'; did you mean \['trained_on\.train'\]"):
        ModelCard.from_dict({**d, "trained_on": {"trian": "x.csv"}}, source="m.pt")
    with pytest.raises(CardError, match=r"m\.pt: the model card has no 'schema'"):
        ModelCard.from_dict({k: v for k, v in d.items() if k != "schema"}, source="m.pt")
    with pytest.raises(CardError, match=r"m\.pt: .*preprocess\.scale"):
        ModelCard.from_dict({**d, "preprocess": {**d["preprocess"], "scale": 1}}, source="m.pt")


def _version_1_checkpoint(path, model, frame="kaggle"):
    """The layout every checkpoint had before the card (the shipped models until they were re-saved)."""
    torch.save({"format": "facekeypoints-checkpoint/1",
                "model": {"name": model.model_name, "input_size": 96, "in_channels": 1, "options": model.model_options},
                "schema": load_schema(model.schema_name).to_dict(), "preprocess": {"size": 96, "scale": "centered"},
                "state_dict": model.state_dict(), "metrics": {"epoch": 7, "val_rmse": 1.9, "note": "dropped"},
                "config": {"data": {"train": "old.csv", "frame": frame}, "train": {"epochs": 9}}}, path)
    return path


def test_a_version_1_checkpoint_loads_as_a_card_and_predicts_the_same(tmp_path):
    torch.manual_seed(0)
    model = create_model("keypoint_net", schema="kaggle15", channels=(8, 16, 32, 64), head_channels=32)
    old = _version_1_checkpoint(tmp_path / "old.pt", model, frame="resize")
    ckpt = load_checkpoint(old)
    card = ckpt.card
    assert (card.model, card.schema.name, card.framing, card.trained_on.train) == ("keypoint_net", "kaggle15", "resize", "old.csv")
    assert card.preprocess == Preprocess(size=96, scale="centered") and card.metrics == {"epoch": 7, "val_rmse": 1.9}
    assert ckpt.training["config"]["train"]["epochs"] == 9
    assert main(["export", "--model", str(old), "--format", "pt", "-o", str(tmp_path / "new.pt")]) == 0
    assert torch.load(tmp_path / "new.pt", weights_only=True)["format"] == "facekeypoints-checkpoint/2"
    assert load_checkpoint(tmp_path / "new.pt").card == card
    image = np.random.default_rng(0).integers(0, 255, (120, 160, 3), dtype=np.uint8)
    a = KeypointDetector(old, backend="torch")(image)
    b = KeypointDetector(tmp_path / "new.pt", backend="torch")(image)
    np.testing.assert_array_equal(a.keypoints, b.keypoints)


def test_a_card_for_another_model_is_not_saved(tmp_path):
    model = create_model("simple_cnn", schema="nose1")
    with pytest.raises(CheckpointError, match="the card describes fcnn/nose1, the model is simple_cnn/nose1"):
        save_checkpoint(tmp_path / "m.pt", model, card_for(create_model("fcnn", schema="nose1")))
    with pytest.raises(TypeError, match="unknown training entries \\['optimiser'\\]"):
        save_checkpoint(tmp_path / "m.pt", model, card_for(model), optimiser={})


def test_load_model_rebuilds_the_card_s_model_with_its_options(tmp_path):
    model = create_model("keypoint_net", schema="ibug68", input_size=64, head_channels=16)
    save_checkpoint(tmp_path / "m.pt", model, card_for(model, metrics={"val_rmse": 3.0}))
    again, card = load_model(tmp_path / "m.pt")
    assert card.options["head_channels"] == 16 and card.input_size == 64 and card.metrics["val_rmse"] == 3.0
    assert card.options["channels"] == [16, 32, 64, 96]  # defaults are recorded too: they may change later
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))


def test_load_model_copies_the_weights_out_of_the_mapped_file_and_reads_legacy_checkpoints(tmp_path):
    """load_model maps the file (a run's optimizer state is never read; the memory saved is measured in
    the README, not here) and copies the weights out of it, so the file may change afterwards; a
    checkpoint in torch's legacy (non-zip) layout, which cannot be mapped, is read whole instead."""
    model = create_model("keypoint_net", schema="kaggle15", channels=(8, 16, 32, 64), head_channels=32)
    save_checkpoint(tmp_path / "m.pt", model, card_for(model))
    loaded, _ = load_model(tmp_path / "m.pt")
    (tmp_path / "m.pt").write_bytes(b"")  # the mapping is gone with the checkpoint: the weights are the model's own
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), loaded.state_dict().values()))
    legacy = tmp_path / "legacy.pt"
    torch.save({"format": "facekeypoints-checkpoint/2", "card": card_for(model).to_dict(),
                "state_dict": model.state_dict()}, legacy, _use_new_zipfile_serialization=False)
    again, card = load_model(legacy)
    assert card.model == "keypoint_net"
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))
    (tmp_path / "junk.pt").write_bytes(b"\x80\x02 not a checkpoint at all")
    with pytest.raises(CheckpointError, match="junk.pt: not a readable facekeypoints checkpoint"):
        load_model(tmp_path / "junk.pt")


def test_shipped_models_carry_their_training_data_and_validation_figures():
    for name, train_file in (("kaggle15", "fkd15-ytf/training.zip"), ("ibug68", "ytf68/train.csv")):
        card = KeypointDetector(name, backend="torch").card
        assert 2 <= card.version <= CARD_VERSION and card.trained_on.train.endswith(train_file)
        assert card.schema.name == name and 1.0 < card.metrics["val_rmse"] < 3.0
        assert card.summary()["val_rmse"] == card.metrics["val_rmse"]
