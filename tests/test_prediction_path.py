"""One prediction path: predict on a Kaggle CSV and submit agree; mirror TTA; validation = evaluate."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch

from facekeypoints import KeypointDetector
from facekeypoints.cli import main
from facekeypoints.data import KeypointData
from facekeypoints.data import framing
from facekeypoints.models import create_model
from facekeypoints.models.checkpoint import card_for
from facekeypoints.models.predict import TorchRunner, predict_crops, predict_inputs
from facekeypoints.schema import load_schema
from facekeypoints.train.config import ConfigError, load_config
from fakes import mean_face_checkpoint


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return mean_face_checkpoint(tmp_path_factory.mktemp("ckpt") / "wobbly.pt", wobble=0.01)


@pytest.fixture
def test_csv(tmp_path) -> Path:
    """A Kaggle test.csv: ImageId and Image columns."""
    images = np.random.default_rng(3).integers(0, 256, (4, 96, 96), dtype=np.uint8)
    path = tmp_path / "test.csv"
    path.write_text("ImageId,Image\n" + "".join(f"{i + 1},{' '.join(map(str, im.ravel()))}\n"
                                                for i, im in enumerate(images)))
    return path


@pytest.mark.parametrize("tta", [[], ["--mirror-tta"]])
def test_predict_on_a_kaggle_csv_and_submit_give_the_same_numbers(model, test_csv, tmp_path, tta):
    out = tmp_path / "keypoints.csv"
    assert main(["predict", str(test_csv), "-o", str(out), "--model", str(model), "--quiet", *tta]) == 0
    with open(out, newline="") as f:
        rows = list(csv.reader(f))
    columns = rows[0]
    predicted = {(int(row[0]), name): float(v) for row in rows[1:] for name, v in zip(columns[1:], row[1:])}
    lookup = tmp_path / "IdLookupTable.csv"
    wanted = [(image, name) for image in range(1, 5) for name in ("nose_tip_x", "left_eye_center_y")]
    lookup.write_text("RowId,ImageId,FeatureName,Location\n"
                      + "".join(f"{r + 1},{i},{n},\n" for r, (i, n) in enumerate(wanted)))
    submission = tmp_path / "submission.csv"
    assert main(["submit", str(test_csv), "--lookup", str(lookup), "--model", str(model), "-o", str(submission),
                 *tta]) == 0
    answers = [float(line.split(",")[1]) for line in submission.read_text().splitlines()[1:]]
    np.testing.assert_allclose(answers, [predicted[key] for key in wanted], atol=1e-4)  # the CSV keeps 4 decimals


def test_mirror_tta_is_mirror_symmetric():
    """With TTA, a mirrored face gets exactly the mirrored keypoints, whatever the weights."""
    torch.manual_seed(0)
    net = create_model("keypoint_net", schema="kaggle15")
    with torch.no_grad():  # a fresh keypoint_net answers the centre for every face: make it see the pixels
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.3)
    runner = TorchRunner(net, card_for(net))
    crops = np.random.default_rng(0).integers(0, 256, (3, 96, 96), dtype=np.uint8)
    plain = predict_crops(runner, crops, mirror=True)
    mirrored = predict_crops(runner, np.ascontiguousarray(crops[:, :, ::-1]), mirror=True)
    np.testing.assert_allclose(mirrored, load_schema("kaggle15").flip(plain, 96), atol=1e-4)
    assert np.abs(predict_crops(runner, crops) - plain).max() > 1e-3  # TTA does change the answer


def test_the_detector_s_mirror_tta_is_the_same_path(model):
    det, tta = KeypointDetector(model, detector=None), KeypointDetector(model, detector=None, mirror_tta=True)
    crops = np.random.default_rng(2).integers(0, 256, (2, 96, 96), dtype=np.uint8)
    expected = predict_inputs(tta.runner, tta.card.preprocess(crops), mirror=True)
    np.testing.assert_allclose(tta.predict_crops(crops), expected, atol=1e-9)
    assert np.abs(tta.predict_crops(crops) - det.predict_crops(crops)).max() > 1e-4


def test_training_faces_and_inference_share_the_framing():
    """A face framed from its labels by the converter and by inference's frames_from_keypoints is the same crop."""
    from facekeypoints.data.convert import to_kaggle_task

    rng = np.random.default_rng(4)
    photo = rng.integers(0, 256, (200, 240), dtype=np.uint8)
    m = np.array([[0.4, -0.1, 30.0], [0.1, 0.4, 40.0]])  # template -> photo
    labels = framing.to_crop(m, framing.template(96))  # the template placed in the photo
    data = KeypointData.from_arrays("kaggle15", labels[None].astype(np.float32), images=[photo])
    faces, _ = to_kaggle_task(data, "kaggle15")
    frames, error = framing.frames_from_keypoints(labels[None], load_schema("kaggle15"), 96)
    assert error[0] < 1e-6
    np.testing.assert_array_equal(faces.images[0], framing.warp_crops(photo, frames, 96, antialias=False)[0])
    np.testing.assert_allclose(faces.keypoints[0], framing.template(96), atol=1e-3)


@pytest.mark.parametrize("override, message", [
    ("model.options={channelz: [8, 16]}", r"model\.options: model 'keypoint_net' option 'channelz' does not exist.*did you mean \['channels'"),
    ("model.options={head_channels: wide}", r"model\.options: model 'keypoint_net' option 'head_channels': expected int"),
    ("train.loss_params={alpha: 0.1}", r"train\.loss_params: loss 'mse' parameter 'alpha' does not exist"),
    ("preprocess.clahe_grid=2.5", r"preprocess\.clahe_grid: expected int"),
    ("augment.rotate_degs=10", r"unknown key 'augment\.rotate_degs'; did you mean \['augment\.rotate_deg'\]"),
    ("train.loss=wign", r"unknown loss 'wign'.*did you mean \['wing'\]"),
])
def test_typed_settings_fail_when_the_config_is_loaded(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, [override])
