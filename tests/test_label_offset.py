"""The labellers' offset (train.label_offset): mirroring that keeps a labelling habit."""
import numpy as np
import pytest
import torch

from facekeypoints.data import write_kaggle_csv
from facekeypoints.data.augment import Augment, augment_batch, random_affine, warp_affine
from facekeypoints.data.framing import KAGGLE_MEAN_FACE
from facekeypoints.models.card import CardError
from facekeypoints.models.checkpoint import load_checkpoint
from facekeypoints.models.codecs import encode
from facekeypoints.models.predict import TorchRunner, predict_crops, predict_inputs
from facekeypoints.schema import load_schema
from facekeypoints.train.config import load_config
from facekeypoints.train.label_offset import LabelOffset
from facekeypoints.train.loop import fit
from fakes import make_faces

SCHEMA = load_schema("kaggle15")
FLIP = list(SCHEMA.flip_index)


def _mirror_vectors(b: np.ndarray) -> np.ndarray:
    """What mirroring does to a per-point offset: x reversed, taken from the mirrored point."""
    return b[FLIP] * np.array([-1.0, 1.0])


def _known_offset() -> np.ndarray:
    """A labelling habit mirroring cannot learn: every point 0.9 px right, and left points 0.3 px
    higher than right ones (made antisymmetric, as only that part is identifiable)."""
    rng = np.random.default_rng(1)
    habit = np.tile([0.9, 0.0], (15, 1)) + rng.normal(0, 0.3, (15, 2))
    return (habit - _mirror_vectors(habit)) / 2


def test_offset_stays_mirror_antisymmetric():
    offset = LabelOffset(SCHEMA)
    offset.raw.data.normal_()
    b = offset.pixels().detach().numpy()
    assert np.abs(b).max() > 0.1
    np.testing.assert_allclose(_mirror_vectors(b), -b, atol=1e-6)
    offset.load_pixels(b)  # an antisymmetric offset loads as itself (resume from a card)
    np.testing.assert_allclose(offset.pixels().detach().numpy(), b, atol=1e-6)


def test_known_offset_is_recovered_from_mirrored_rotated_faces():
    """A perfect mirror-symmetric network (the true points) plus the learned offset must fit labels
    made with a known habit, through mirroring, rotation, zoom and shift: b comes back within 0.05 px."""
    torch.manual_seed(0)
    truth = _known_offset()
    rng = np.random.default_rng(0)
    faces = KAGGLE_MEAN_FACE[None] + rng.normal(0, 3, (64, 1, 2)) + rng.normal(0, 1, (64, 15, 2))
    points = torch.from_numpy(faces).float()
    labels = points + torch.from_numpy(truth).float()
    blank = torch.zeros(64, 1, 96, 96)
    augment = Augment(flip_prob=0.5, rotate_deg=15, shift=0.08, scale=(0.9, 1.1))
    offset = LabelOffset(SCHEMA)
    opt = torch.optim.Adam(offset.parameters(), lr=0.05)
    gen = torch.Generator().manual_seed(0)
    for step in range(300):
        matrices = random_affine(augment, 64, (96, 96), gen)
        _, moved_points = warp_affine(blank, points, matrices, SCHEMA)
        _, moved_labels = warp_affine(blank, labels, matrices, SCHEMA)
        fitted = encode(moved_points, (96, 96)) + offset(matrices, (96, 96))
        loss = torch.nn.functional.mse_loss(fitted, encode(moved_labels, (96, 96)))
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step == 200:
            for group in opt.param_groups:
                group["lr"] = 0.005
    learned = offset.pixels().detach().numpy()
    assert np.abs(learned - truth).max() < 0.05, np.abs(learned - truth).max()


def test_augment_batch_returns_the_matrices_it_used():
    faces = make_faces(8, missing=False)
    images = torch.from_numpy(faces.images[:, None] / 255.0).float()
    kp = torch.from_numpy(faces.keypoints)
    augment = Augment(flip_prob=0.5, rotate_deg=10)
    out, moved, matrices = augment_batch(images, kp, SCHEMA, augment, torch.Generator().manual_seed(3),
                                         with_matrices=True)
    again, moved_again = warp_affine(images, kp, matrices, SCHEMA)
    assert matrices.shape == (8, 3, 3) and (np.linalg.det(matrices[:, :2, :2].numpy()) < 0).any()
    assert torch.allclose(moved, moved_again, atol=1e-5, equal_nan=True)
    still = Augment(flip_prob=0, brightness=0.2, contrast=0, shift=0, scale=(1.0, 1.0), rotate_deg=0)
    _, _, identity = augment_batch(images, kp, SCHEMA, still, torch.Generator(), with_matrices=True)
    assert torch.equal(identity, torch.eye(3, dtype=torch.float64).repeat(8, 1, 1))


def test_training_learns_it_and_only_the_crops_path_adds_it(tmp_path):
    csv = write_kaggle_csv(make_faces(48, missing=False), tmp_path / "training.csv")
    cfg = load_config(None, [f"data.train={csv}", f"out_dir={tmp_path / 'run'}", "model.name=keypoint_net",
                             "train.epochs=2", "train.batch_size=8", "train.num_threads=1",
                             "data.split=[0.75, 0.25]", "train.label_offset=true"])
    summary = fit(cfg, progress=False)
    ckpt = load_checkpoint(tmp_path / "run" / "best.pt")
    b = np.asarray(ckpt.card.label_offset)
    assert b.shape == (15, 2) and np.abs(b).max() > 0  # it moved from zero ...
    np.testing.assert_allclose(_mirror_vectors(b), -b, atol=1e-5)  # ... within the identifiable part
    runner = TorchRunner.load(tmp_path / "run" / "best.pt")
    crops = make_faces(4, seed=5).images
    with_offset, without = predict_crops(runner, crops), predict_crops(runner, crops, label_offset=False)
    np.testing.assert_allclose(with_offset - without, np.broadcast_to(b, without.shape), atol=1e-5)
    x = runner.card.preprocess(crops)
    np.testing.assert_allclose(predict_inputs(runner, x), without, atol=1e-5)  # photos: the point itself
    # the validation figure it recorded is the data's own labels scored with the offset
    from facekeypoints.evaluate.runner import evaluate

    assert evaluate(tmp_path / "run" / "best.pt", None, split="val")["rmse"] == pytest.approx(
        summary["best_val_rmse"], abs=1e-4)
    # resuming starts from the learned offset, not from zero
    fit(load_config(None, [*[f"{k}={v}" for k, v in (("data.train", csv), ("out_dir", tmp_path / "run"))],
                           "model.name=keypoint_net", "train.epochs=3", "train.batch_size=8", "train.num_threads=1",
                           "data.split=[0.75, 0.25]", "train.label_offset=true"]), resume=True, progress=False)
    resumed = np.asarray(load_checkpoint(tmp_path / "run" / "last.pt").card.label_offset)
    assert np.abs(resumed - b).max() < 0.1


def test_card_refuses_a_malformed_offset():
    from facekeypoints.data.preprocess import Preprocess
    from facekeypoints.models.card import ModelCard

    base = dict(model="keypoint_net", schema=SCHEMA, input_size=96, in_channels=1, preprocess=Preprocess(size=96))
    with pytest.raises(CardError, match="15 finite"):
        ModelCard(**base, label_offset=[[0.0, 0.0]] * 14)
    with pytest.raises(CardError, match="15 finite"):
        ModelCard(**base, label_offset=[[float("nan"), 0.0]] * 15)
    with pytest.raises(CardError, match="pairs of numbers"):
        ModelCard(**base, label_offset=[["a", "b"]] * 15)
    card = ModelCard(**base, label_offset=np.zeros((15, 2)).tolist())
    assert ModelCard.from_dict(card.to_dict()) == card
