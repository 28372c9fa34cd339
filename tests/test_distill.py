"""Knowledge distillation (train.teacher): a teacher's mirror-consistent keypoints as extra targets."""
import numpy as np
import pytest
import torch

from facekeypoints.data import write_kaggle_csv
from facekeypoints.data.framing import template
from facekeypoints.models import create_model
from facekeypoints.models.checkpoint import card_for, save_checkpoint
from facekeypoints.models.codecs import decode, encode
from facekeypoints.models.predict import TorchRunner, predict_inputs
from facekeypoints.schema import load_schema
from facekeypoints.train.config import load_config
from facekeypoints.train.distill import Teacher
from facekeypoints.train.loop import fit
from fakes import make_faces, mean_face_checkpoint

SCHEMA = load_schema("kaggle15")


def _constant_teacher(path, points: np.ndarray):
    """An fcnn checkpoint that answers ``points`` (15, 2 pixels) for every face."""
    model = create_model("fcnn", schema="kaggle15")
    with torch.no_grad():
        model.head[-1].weight.zero_()
        model.head[-1].bias.copy_(torch.from_numpy(encode(points, (96, 96)).reshape(-1).astype(np.float32)))
    save_checkpoint(path, model, card_for(model))
    return path


def test_teacher_targets_only_where_it_agrees_with_itself_under_mirroring(tmp_path):
    face = template(96)  # the Kaggle mean face: nearly mirror-symmetric
    lopsided = face + np.array([6.0, 0.0])  # every point 6 px right: its mirrored look is 6 px left
    x = torch.rand(4, 1, 96, 96)
    sure = Teacher(str(_constant_teacher(tmp_path / "a.pt", face)), SCHEMA, 96, 1, "cpu", max_disagreement=2.0)
    targets = decode(sure.targets(x), (96, 96))
    assert torch.isfinite(targets).all()
    expected = (face + SCHEMA.flip(face, 96)) / 2  # its two looks averaged
    assert torch.allclose(targets, torch.from_numpy(expected).float().expand(4, 15, 2), atol=1e-3)
    unsure = Teacher(str(_constant_teacher(tmp_path / "b.pt", lopsided)), SCHEMA, 96, 1, "cpu", max_disagreement=2.0)
    assert torch.isnan(unsure.targets(x)).all()  # 12 px apart: no target anywhere
    assert sure.kept_share() == 1.0 and unsure.kept_share() == 0.0  # what the run reports per epoch
    assert np.isnan(sure.kept_share())  # counted afresh after each report


def test_the_share_of_points_the_teacher_kept_is_reported_per_epoch(tmp_path):
    csv = write_kaggle_csv(make_faces(16), tmp_path / "t.csv")
    teacher = _constant_teacher(tmp_path / "t.pt", template(96))
    summary = fit(load_config(None, [f"data.train={csv}", "model.name=fcnn", "train.epochs=2", "train.batch_size=8",
                                     "train.num_threads=1", "data.split=[0.75, 0.25]", f"out_dir={tmp_path / 'r'}",
                                     f"train.teacher={teacher}", "train.teacher_max_disagreement=50"]), progress=False)
    assert summary["teacher_kept"] == 1.0  # a symmetric teacher agrees with itself everywhere
    header, *rows = (tmp_path / "r" / "metrics.csv").read_text().splitlines()
    assert header.endswith(",teacher_kept") and all(row.endswith(",1.0") for row in rows)


def test_a_student_learns_from_the_teacher_where_labels_are_missing(tmp_path):
    faces = make_faces(48, missing=False)
    faces.keypoints[:] = np.nan  # no labels at all: only the teacher can teach
    csv = write_kaggle_csv(faces, tmp_path / "unlabelled.csv")
    val = write_kaggle_csv(make_faces(8, seed=1), tmp_path / "val.csv")  # validation needs labels of its own
    teacher = mean_face_checkpoint(tmp_path / "teacher.pt")
    base = [f"data.train={csv}", f"data.val={val}", "model.name=fcnn", "train.epochs=8", "train.batch_size=8",
            "train.lr=0.001", "train.num_threads=1", "augment.flip_prob=0", "augment.rotate_deg=0",
            "augment.shift=0", "augment.scale=[1, 1]"]
    fit(load_config(None, [*base, f"out_dir={tmp_path / 'student'}", f"train.teacher={teacher}",
                           "train.teacher_max_disagreement=50"]), progress=False)
    with pytest.raises(ValueError, match=r"unlabelled.csv \(data.train\): has no labelled points"):
        fit(load_config(None, [*base, f"out_dir={tmp_path / 'alone'}"]), progress=False)  # nothing to learn from
    x = torch.from_numpy(faces.images[:8, None] / 255.0).float().numpy()
    goal = template(96)
    student = TorchRunner.load(tmp_path / "student" / "last.pt")
    torch.manual_seed(0)  # the student's starting weights (train.seed 0), as a run without a teacher would keep them
    alone = TorchRunner(create_model("fcnn", schema="kaggle15"), student.card)
    gaps = {name: float(np.abs(predict_inputs(runner, x) - goal).mean())
            for name, runner in (("student", student), ("alone", alone))}
    assert gaps["student"] < 0.5 * gaps["alone"], gaps  # it moved towards the teacher's answer


def test_a_teacher_of_another_schema_or_missing_file_is_refused(tmp_path):
    other = create_model("fcnn", schema="nose1")
    save_checkpoint(tmp_path / "nose.pt", other, card_for(other))
    with pytest.raises(ValueError, match="predicts nose1 .* the student needs kaggle15"):
        Teacher(str(tmp_path / "nose.pt"), SCHEMA, 96, 1, "cpu", 2.0)
    csv = write_kaggle_csv(make_faces(8), tmp_path / "t.csv")
    with pytest.raises(ValueError, match="train.teacher .*gone.pt: no such checkpoint file"):
        fit(load_config(None, [f"data.train={csv}", f"out_dir={tmp_path / 'r'}", f"train.teacher={tmp_path / 'gone.pt'}"]),
            progress=False)
    with pytest.raises(ValueError, match="train.distill_weight must be a finite number >= 0"):
        load_config(None, ["train.distill_weight=-0.5"])
