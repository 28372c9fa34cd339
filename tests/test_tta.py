"""Test-time augmentation: the mirrored and turned looks at a face are mapped back into the face's
own pixels before they are averaged (predict_inputs' ``mirror`` and ``rotate``)."""
import numpy as np
import pytest

from facekeypoints.models import create_model
from facekeypoints.models.checkpoint import card_for
from facekeypoints.models.codecs import encode
from facekeypoints.models.predict import predict_inputs


class DotFinder:
    """A stand-in model that answers, for every keypoint, the centre of the bright spot in its input."""

    def __init__(self):
        self.card = card_for(create_model("fcnn", schema="kaggle15"))
        self.looks = 0

    def __call__(self, x):
        self.looks += 1
        grey = x[:, 0]
        ys, xs = np.mgrid[:grey.shape[1], :grey.shape[2]]
        weight = np.clip(grey - 0.5, 0, None)
        centre = np.stack([(weight * xs).sum((1, 2)), (weight * ys).sum((1, 2))], -1) / weight.sum((1, 2))[:, None]
        return encode(np.repeat(centre[:, None], 15, 1), grey.shape[1:]).astype(np.float32)


def _dot(x: float, y: float, size: int = 96) -> np.ndarray:
    ys, xs = np.mgrid[:size, :size]
    return np.exp(-((xs - x) ** 2 + (ys - y) ** 2) / (2 * 2.0 ** 2)).astype(np.float32)[None, None]


@pytest.mark.parametrize("mirror", [False, True])
def test_turned_looks_are_turned_back_before_averaging(mirror):
    finder = DotFinder()
    x = _dot(75.0, 20.0)  # far from the centre: a look turned back the wrong way lands pixels away
    alone = predict_inputs(finder, x, mirror=mirror)[0, 0]
    assert np.allclose(alone, (75.0, 20.0), atol=0.05)
    turned = predict_inputs(finder, x, mirror=mirror, rotate=8.0)[0, 0]
    assert np.allclose(turned, (75.0, 20.0), atol=0.3), turned
    assert finder.looks == (2 if mirror else 1) * 4  # one look alone, then three (0, +8, -8 degrees)


def test_rotation_must_be_a_small_angle():
    with pytest.raises(ValueError, match=r"rotate .* must be in \[0, 90\) degrees, got 120"):
        predict_inputs(DotFinder(), _dot(40, 40), rotate=120)


def test_the_commands_take_rotate_tta_and_say_so(tmp_path, capsys):
    from facekeypoints.cli import main
    from facekeypoints.data import write_kaggle_csv
    from fakes import make_faces, mean_face_checkpoint

    csv = write_kaggle_csv(make_faces(8), tmp_path / "faces.csv")
    model = mean_face_checkpoint(tmp_path / "mean.pt")
    assert main(["evaluate", str(csv), "--model", str(model), "--rotate-tta", "4", "--mirror-tta", "--json"]) == 0
    result = __import__("json").loads(capsys.readouterr().out)
    assert result["rotate_tta"] == 4.0 and result["mirror_tta"] is True
    with pytest.raises(SystemExit):
        main(["evaluate", str(csv), "--rotate-tta", "90"])
    assert "must be at least 0 and under 90 degrees" in capsys.readouterr().err
