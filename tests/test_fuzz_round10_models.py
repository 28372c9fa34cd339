"""Round 10 of bad inputs to the model, checkpoint, card, result and loss APIs: each is a TypeError
or ValueError naming the argument, never a crash deep inside torch, OpenCV, json or difflib.

Cases:
- P1 count_macs left the caller's model in eval mode when the forward pass failed; input_shape unchecked;
- P2 create_model coerced in_channels and input_size with int() ('1', True, 96.5, NaN, 10**6);
- P3 a None name reached difflib or fnmatch (create_model, make_loss, list_models, register_model,
     check_model_options);
- P4 save_checkpoint wrote a config the loader refuses; a None card or model was an AttributeError;
- P5 ``~`` and bytes paths in save_checkpoint, load_checkpoint and Result.save;
- P6 Result.draw crashed on a NaN box or a 1e20 keypoint; to_json on a NaN timing; a schema name;
     in_place not a bool;
- P7 ModelCard fields unchecked when built directly; from_dict with a schema name; with_metrics(None);
- P8 losses given numpy arrays or lists.
"""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

from facekeypoints.data.preprocess import Preprocess
from facekeypoints.infer import Face, Result
from facekeypoints.models import (check_model_options, count_macs, create_model, list_models, model_info,
                                  register_model)
from facekeypoints.models.card import ModelCard
from facekeypoints.models.checkpoint import card_for, load_checkpoint, save_checkpoint
from facekeypoints.schema import load_schema
from facekeypoints.train.losses import complete_graph_distance, labelled_mask, make_loss


@pytest.fixture(scope="module")
def model():
    return create_model("simple_cnn", schema="nose1")


# P1 ------------------------------------------------------------------------------------------------

def test_count_macs_restores_training_mode_when_forward_fails(model):
    class Broken(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def forward(self, x):
            raise RuntimeError("boom")

    broken = Broken().train()
    with pytest.raises(RuntimeError, match="boom"):
        count_macs(broken, (1, 1, 8, 8))
    assert broken.training


@pytest.mark.parametrize("shape", [(1, 96, 96), (0, 1, 96, 96), (1, 1, -96, 96), (1, 1, 96.0, 96), "1x96"])
def test_count_macs_checks_input_shape(model, shape):
    model.train()
    with pytest.raises(ValueError, match="input_shape"):
        count_macs(model, shape)
    assert model.training


def test_count_macs_checks_channels_and_model(model):
    with pytest.raises(ValueError, match="3 channels, the model takes 1"):
        count_macs(model, (1, 3, 96, 96))
    with pytest.raises(TypeError, match="nn.Module"):
        count_macs(None, (1, 1, 96, 96))
    assert count_macs(model, [1, 1, 96, 96]) == count_macs(model, (1, 1, 96, 96)) > 0


# P2 ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("value", ["1", True, 1.0])
def test_create_model_in_channels_must_be_an_int(value):
    with pytest.raises(TypeError, match="in_channels must be an int"):
        create_model("simple_cnn", in_channels=value)


@pytest.mark.parametrize("value", [0, 2, -1])
def test_create_model_in_channels_1_or_3(value):
    with pytest.raises(ValueError, match="in_channels must be 1 .* or 3"):
        create_model("simple_cnn", in_channels=value)


@pytest.mark.parametrize("value", ["96", 96.5, float("nan"), False])
def test_create_model_input_size_must_be_an_int(value):
    with pytest.raises(TypeError, match="input_size must be an int"):
        create_model("simple_cnn", input_size=value)


@pytest.mark.parametrize("value", [0, -96, 10**6])
def test_create_model_input_size_range(value):
    with pytest.raises(ValueError, match="input_size must be from 1 to 1024"):
        create_model("simple_cnn", input_size=value)


def test_create_model_numpy_ints_still_work():
    m = create_model("simple_cnn", in_channels=np.int64(3), input_size=np.int64(64))
    assert (m.in_channels, m.input_size) == (3, 64) and type(m.input_size) is int


def test_model_info_checks_input_size():
    with pytest.raises(TypeError, match="input_size must be an int"):
        model_info("simple_cnn", input_size="96")
    with pytest.raises(ValueError, match="input_size must be from 1"):
        model_info("simple_cnn", input_size=0)


# P3 ------------------------------------------------------------------------------------------------

def test_name_arguments_are_type_checked():
    with pytest.raises(TypeError, match="model name must be a str"):
        create_model(None)
    with pytest.raises(TypeError, match="schema must be a schema name or a KeypointSchema"):
        create_model("simple_cnn", schema=None)
    with pytest.raises(TypeError, match="loss name must be a str"):
        make_loss(None)
    with pytest.raises(TypeError, match="pattern must be a str"):
        list_models(None)
    with pytest.raises(TypeError, match="register_model needs a named function"):
        register_model(5)
    with pytest.raises(TypeError, match="register_model needs a named function"):
        register_model(lambda **k: None)
    with pytest.raises(TypeError, match="options must be a dict"):
        check_model_options("simple_cnn", None)
    with pytest.raises(TypeError, match="model name must be a str"):
        check_model_options(None, {})


# P4 ------------------------------------------------------------------------------------------------

def test_save_checkpoint_refuses_config_it_could_not_read_back(model, tmp_path):
    path = tmp_path / "m.pt"
    with pytest.raises(TypeError, match=r"config\['a'\] \(object\) is not plain data"):
        save_checkpoint(path, model, card_for(model), config={"a": object()})
    assert not path.exists()
    # plain data and tensors still save and load
    save_checkpoint(path, model, card_for(model), config={"a": [1, 2.0, None, "x"]},
                    optimizer={"state": {0: {"exp_avg": torch.zeros(3)}}})
    assert load_checkpoint(path).training["config"] == {"a": [1, 2.0, None, "x"]}


def test_save_checkpoint_argument_types(model, tmp_path):
    path = tmp_path / "m.pt"
    card = card_for(model)
    with pytest.raises(TypeError, match="card must be a ModelCard"):
        save_checkpoint(path, model, None)
    with pytest.raises(TypeError, match="card must be a ModelCard"):
        save_checkpoint(path, model, card.to_dict())
    with pytest.raises(TypeError, match="model must be an nn.Module"):
        save_checkpoint(path, None, card)
    with pytest.raises(TypeError, match="path must be a str or Path"):
        save_checkpoint(None, model, card)


# P5 ------------------------------------------------------------------------------------------------

def test_checkpoint_paths_expand_home_and_accept_bytes(model, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    save_checkpoint("~/m.pt", model, card_for(model))
    assert (tmp_path / "m.pt").is_file()
    assert load_checkpoint("~/m.pt").card.model == "simple_cnn"
    assert load_checkpoint(os.fsencode(tmp_path / "m.pt")).card.model == "simple_cnn"


def _result(**face):
    s = load_schema("nose1")
    f = dict(box=np.array([10., 10., 50., 50.]), box_score=1.0, keypoints=np.array([[30., 32.]]), scores=None,
             schema=s)
    f.update(face)
    return Result(image_size=(64, 80), faces=[Face(**f)], schema=s)


def test_result_save_expands_home_and_accepts_bytes(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    r = _result()
    assert r.save("~/r.json") == tmp_path / "r.json" and (tmp_path / "r.json").is_file()
    r.save(os.fsencode(tmp_path / "r.png"), image=np.zeros((64, 80, 3), np.uint8))
    assert (tmp_path / "r.png").is_file()


# P6 ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("face", [dict(box=np.array([np.nan, 0., 10., 10.])),
                                  dict(box=np.array([0., 0., 1e20, 1e20])),
                                  dict(keypoints=np.array([[1e20, -1e20]])),
                                  dict(keypoints=np.array([[np.inf, 3.]]))])
def test_draw_never_crashes_on_nan_or_huge_values(face):
    image = np.zeros((64, 80, 3), np.uint8)
    assert _result(**face).draw(image).shape == (64, 80, 3)


def test_draw_nan_box_still_draws_its_keypoints():
    drawn = _result(box=np.array([np.nan] * 4)).draw(np.zeros((64, 80, 3), np.uint8))
    assert drawn[32, 30].any()


def test_to_json_nan_timing_is_null():
    r = _result()
    r.timings = {"model": float("nan"), "detection": 1.5}
    assert json.loads(r.to_json())["timings"] == {"model": None, "detection": 1.5}


def test_result_schema_name_or_type_error():
    assert Result((10, 10), [], "kaggle15").keypoints.shape == (0, 15, 2)
    with pytest.raises(TypeError, match="Result schema must be"):
        Result((10, 10), [], 15)


def test_result_save_in_place_must_be_bool(tmp_path):
    with pytest.raises(TypeError, match="in_place must be True or False"):
        _result().save(tmp_path / "r.png", image=np.zeros((64, 80, 3), np.uint8), in_place="yes")
    assert not (tmp_path / "r.png").exists()


# P7 ------------------------------------------------------------------------------------------------

def _card(**kw):
    values = dict(model="simple_cnn", schema=load_schema("kaggle15"), input_size=96, in_channels=1,
                  preprocess=Preprocess(size=96, channels=1))
    values.update(kw)
    return ModelCard(**values)


@pytest.mark.parametrize("field,value", [("input_size", "96"), ("input_size", True), ("in_channels", 1.0),
                                         ("version", "3"), ("model", None), ("schema", 15),
                                         ("preprocess", None), ("options", [1]), ("metrics", None),
                                         ("trained_in", 5)])
def test_card_fields_are_type_checked(field, value):
    with pytest.raises(TypeError, match=f"ModelCard.{field} must be"):
        _card(**{field: value})


def test_card_accepts_schema_name_and_preprocess_dict():
    card = _card(schema="kaggle15", preprocess={"size": 96})
    assert card == _card()


def test_card_version_at_least_1():
    from facekeypoints.models.card import CardError
    with pytest.raises(CardError, match="version must be 1 or more"):
        _card(version=0)


def test_card_non_json_option_named():
    with pytest.raises(TypeError, match=r"ModelCard.options\['a'\] must be plain JSON"):
        _card(options={"a": object()})


def test_card_from_dict_schema_name():
    d = _card().to_dict()
    assert ModelCard.from_dict({**d, "schema": "kaggle15"}) == _card()
    from facekeypoints.models.card import CardError
    with pytest.raises(CardError, match="schema must be a mapping .* or a schema name, got int"):
        ModelCard.from_dict({**d, "schema": 15})


def test_with_metrics_needs_a_dict():
    with pytest.raises(TypeError, match="with_metrics needs a dict"):
        _card().with_metrics(None)
    assert _card().with_metrics({"val_rmse": 1.0}).metrics == {"val_rmse": 1.0}


# P8 ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["mse", "l1", "smooth_l1", "wing", "cgd"])
@pytest.mark.parametrize("kind", ["numpy", "list"])
def test_losses_need_tensors(name, kind):
    value = np.zeros((1, 2, 2)) if kind == "numpy" else [[[0.0, 0.0], [0.0, 0.0]]]
    loss = make_loss(name)
    with pytest.raises(TypeError, match="pred and target must be torch tensors"):
        loss(value, value)
    with pytest.raises(TypeError, match="pred and target must be torch tensors"):
        loss(torch.zeros(1, 2, 2), value)


def test_loss_helpers_need_tensors():
    with pytest.raises(TypeError, match="must be torch tensors"):
        labelled_mask(np.zeros((1, 2, 2)))
    with pytest.raises(TypeError, match="must be torch tensors"):
        complete_graph_distance(np.zeros((1, 2, 2)), torch.zeros(1, 2, 2))
