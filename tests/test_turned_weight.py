"""train.turned_weight: turned faces are drawn more often in training, deterministically."""
import numpy as np
import pytest
import torch

from facekeypoints.data import write_kaggle_csv
from facekeypoints.schema import load_schema
from facekeypoints.train.config import load_config
from facekeypoints.train.loop import fit, turned_weights

from fakes import make_faces

KAGGLE = load_schema("kaggle15")


def _face(nose_x: float) -> np.ndarray:
    """kaggle15 points with eye centres at x 30 and 66 (y 40) and the nose tip at (nose_x, 60)."""
    points = np.full((15, 2), np.nan)
    points[0], points[1], points[10] = (66, 40), (30, 40), (nose_x, 60)
    return points


def test_weights_grow_with_the_turn_and_missing_points_count_as_frontal():
    faces = np.stack([_face(48.0), _face(48 + 0.15 * 18), _face(48 + 0.3 * 18), _face(48 - 0.3 * 18),
                      _face(48 + 5 * 18), np.full((15, 2), np.nan)])  # frontal, 0.15, 0.3, -0.3, profile+, no labels
    w = turned_weights(faces, KAGGLE, 2.0).numpy()
    np.testing.assert_allclose(w, [1.0, 2.0, 3.0, 3.0, 1.0 + 2.0 / 0.3, 1.0], atol=1e-9)
    assert turned_weights(faces, KAGGLE, 0.0) is None
    with pytest.raises(ValueError, match="turned_weight needs the eye centres and nose tip"):
        turned_weights(np.zeros((2, 1, 2)), load_schema("nose1"), 1.0)


@pytest.mark.parametrize("value", [-1, 101, ".nan"])
def test_config_refuses_weights_out_of_range(value):
    with pytest.raises(ValueError, match="train.turned_weight"):
        load_config(None, [f"train.turned_weight={value}"])


def test_training_draws_turned_faces_more_often_and_repeats_itself(tmp_path, monkeypatch):
    faces = make_faces(32, missing=False)
    csv = write_kaggle_csv(faces, tmp_path / "training.csv")
    drawn = []
    real = torch.multinomial

    def spy(weights, n, **kw):
        out = real(weights, n, **kw)
        drawn.append((weights.clone(), out.clone()))
        return out

    monkeypatch.setattr(torch, "multinomial", spy)

    def run(name):
        cfg = load_config(None, [f"data.train={csv}", f"out_dir={tmp_path / name}", "model.name=simple_cnn",
                                 "train.epochs=2", "train.batch_size=8", "train.num_threads=1",
                                 "data.split=[0.75, 0.25]", "train.turned_weight=50"])
        return fit(cfg, progress=False)

    first = run("a")
    assert len(drawn) == 2  # one draw per epoch, from the training faces' weights
    weights, order = drawn[0]
    assert len(weights) == 24 and len(order) == 24 and weights.max() > 2 * weights.min()
    heavy = weights[order].mean()
    assert heavy > weights.mean()  # the faces drawn lean to the heavy (turned) ones
    second = run("b")
    assert torch.equal(drawn[2][1], drawn[0][1]) and first["best_val_rmse"] == second["best_val_rmse"]
