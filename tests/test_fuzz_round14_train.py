"""Round 14 of fresh bad inputs, training and grid (audit /tmp/fuzz14-train):

1  a rename-only refresh followed by a rename plus change leaves one row for the run, not two.
2  a run saved by round 12 (scores already in image pixels, no ``scored_in``) resumes; one saved before it
   (no ``teacher`` in its state either) is still refused.
3  train.turned_weight is refused when no training face can be weighted, and warns when some cannot.
4  resuming a run interrupted at the last step of an epoch prints no PyTorch scheduler warning.
5  the grid writes the table it names, also when every config was done before.
"""
import json
import signal
import warnings

import numpy as np
import pytest
import torch

from facekeypoints.data import write_kaggle_csv
from facekeypoints.models.checkpoint import load_checkpoint
from facekeypoints.schema import load_schema
from facekeypoints.train import grid, loop
from facekeypoints.train.loop import fit, turned_weights
from fakes import make_faces, tiny_config
from test_fuzz_round13_train import _grid_config  # one tiny grid config for both rounds


def _grid(tmp_path, csv, results, lines=None, **kw):
    return grid.run_grid([_grid_config(tmp_path, csv, **kw)], results, progress=False,
                         echo=(lines.append if lines is not None else lambda *_: None))


# ---- 1. one row per run, after a refresh and a rename plus change ------------------------------------
def test_a_refreshed_row_renamed_and_changed_again_leaves_one_row(tiny_csv, tmp_path):
    results = tmp_path / "r.json"
    _grid(tmp_path, tiny_csv, results, name="a1")
    lines = []
    _grid(tmp_path, tiny_csv, results, lines, name="a2")
    assert any("row refreshed, not retrained" in line for line in lines), lines
    lines = []
    rows = _grid(tmp_path, tiny_csv, results, lines, name="a3", epochs=2)
    assert any("resuming" in line for line in lines), lines
    assert [r["config"] for r in json.loads(results.read_text())] == ["a3"]
    assert [r["config"] for r in rows] == ["a3"] and rows[0]["epochs"] == 2
    assert "`a2`" not in (tmp_path / "r.md").read_text()


# ---- 2. which pixels a run without scored_in was scored in -------------------------------------------
def _without(last, *keys):
    payload = torch.load(last, map_location="cpu", weights_only=True)
    for key in keys:
        payload["train_state"].pop(key)
    torch.save(payload, last)


RESIZED = ("preprocess.size=64", "data.frame=resize")  # 96-pixel faces into a 64-pixel model: two units


def test_a_run_saved_by_round_12_resumes(tiny_csv, tmp_path):
    out = tmp_path / "run"
    fit(tiny_config(tiny_csv, out, *RESIZED), progress=False)
    _without(out / "last.pt", "scored_in")  # round 12 scored in image pixels, and had TrainState.teacher
    summary = fit(tiny_config(tiny_csv, out, *RESIZED, "train.epochs=2"), resume=True, progress=False)
    assert summary["epochs"] == 2
    assert load_checkpoint(out / "last.pt").training["train_state"]["scored_in"] == "image pixels"


def test_a_run_saved_before_round_12_is_still_refused(tiny_csv, tmp_path):
    out = tmp_path / "run"
    fit(tiny_config(tiny_csv, out, *RESIZED), progress=False)
    _without(out / "last.pt", "scored_in", "teacher")
    with pytest.raises(ValueError, match=r"scored in the model input's pixels.*--overwrite"):
        fit(tiny_config(tiny_csv, out, *RESIZED, "train.epochs=2"), resume=True, progress=False)


# ---- 3. train.turned_weight with faces it cannot weight ----------------------------------------------
KAGGLE = load_schema("kaggle15")


def test_turned_weight_is_refused_when_no_face_can_be_weighted():
    faces = np.full((4, 15, 2), 40.0)
    faces[:, 10] = np.nan  # no nose tip anywhere
    with pytest.raises(ValueError, match=r"train.turned_weight 5: none of the 4 training faces has labelled eye "
                                         r"centres and a nose tip.*leave train.turned_weight at 0"):
        turned_weights(faces, KAGGLE, 5.0)


def test_turned_weight_warns_with_the_count_of_faces_it_cannot_weight():
    faces = np.full((4, 15, 2), 40.0)
    faces[:, 0], faces[:, 1] = (66, 40), (30, 40)
    faces[:3, 10] = np.nan  # only the last face has its nose tip
    with pytest.warns(UserWarning, match=r"train.turned_weight 2: only 1 of the 4 training faces have labelled eye "
                                         r"centres.*the other 3 count as frontal") as caught:
        assert len(turned_weights(faces, KAGGLE, 2.0)) == 4
    assert len(caught) == 1 and "\n" not in str(caught[0].message)


def test_training_with_turned_weight_and_no_nose_tips_is_refused(tmp_path):
    faces = make_faces(32, missing=False)
    faces.keypoints[:, 10] = np.nan
    csv = write_kaggle_csv(faces, tmp_path / "nonose.csv")
    with pytest.raises(ValueError, match="train.turned_weight 5: none of the 24 training faces"):
        fit(tiny_config(csv, tmp_path / "run", "train.turned_weight=5"), progress=False)


# ---- 4. resumed after the last step of an epoch ------------------------------------------------------
def test_resuming_after_an_epochs_last_step_gives_no_scheduler_warning(tiny_csv, tmp_path, monkeypatch):
    real, calls = loop.augment_batch, {"n": 0}

    def interrupt_at_the_last_step(*args, **kwargs):  # 24 training faces, batches of 8: 3 steps an epoch
        calls["n"] += 1
        if calls["n"] == 3:
            signal.raise_signal(signal.SIGINT)
        return real(*args, **kwargs)

    monkeypatch.setattr(loop, "augment_batch", interrupt_at_the_last_step)
    out = tmp_path / "run"
    summary = fit(tiny_config(tiny_csv, out, "train.epochs=2"), progress=False)
    assert summary["stop_reason"] == "interrupted" and (summary["epoch"], summary["step"]) == (0, 3)
    monkeypatch.setattr(loop, "augment_batch", real)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert fit(tiny_config(tiny_csv, out, "train.epochs=2"), resume=True, progress=False)["epochs"] == 2
    assert not [w for w in caught if "lr_scheduler" in str(w.message)]


# ---- 5. the grid's table -----------------------------------------------------------------------------
def test_the_grid_writes_the_table_when_every_config_was_done(tiny_csv, tmp_path):
    results = tmp_path / "r.json"
    _grid(tmp_path, tiny_csv, results)
    (tmp_path / "r.md").unlink()  # e.g. a results file copied on its own
    lines = []
    _grid(tmp_path, tiny_csv, results, lines)
    assert any(": done (" in line for line in lines), lines
    assert "`a`" in (tmp_path / "r.md").read_text()
