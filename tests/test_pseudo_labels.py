"""Unlabelled photos as training faces (data.unlabeled): framed and labelled by the teacher, validation
people left out, photos without a face reported."""
import json
from dataclasses import replace

import cv2
import numpy as np
import pytest
import torch

from facekeypoints.cli import main
from facekeypoints.data import write_kaggle_csv
from facekeypoints.data.framing import template
from facekeypoints.models import create_model
from facekeypoints.models.checkpoint import card_for, save_checkpoint
from facekeypoints.models.codecs import encode
from facekeypoints.schema import load_schema
from facekeypoints.train.config import ConfigError, load_config
from facekeypoints.train.distill import Teacher
from facekeypoints.train.loop import fit
from facekeypoints.train.pseudo import unlabeled_faces
from fakes import grace_hopper_copy, make_faces, mean_face_checkpoint

SCHEMA = load_schema("kaggle15")


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):  # framed faces are cached; each test starts without
    monkeypatch.setenv("FACEKEYPOINTS_CACHE", str(tmp_path / "cache"))


def _unlabelled_crops(path):
    """A Kaggle-style CSV of 4 framed faces, no labels, no persons."""
    faces = make_faces(4, missing=False)
    faces.keypoints[:] = np.nan
    return write_kaggle_csv(faces, path)


def _people(*names: str):
    """Validation faces of these people (blank 8x8 pictures: no unlabelled photo is one of them)."""
    from facekeypoints.data.dataset import KeypointData

    return KeypointData.from_arrays("kaggle15", np.zeros((len(names), 15, 2), np.float32),
                                    images=np.zeros((len(names), 8, 8), np.uint8), person=list(names))


def _photos(folder, people: dict[str, str]) -> str:
    """A CSV ``image,person`` (ytf68's unlabeled.csv layout) of photos: a face, or a blank image."""
    (folder / "images").mkdir(exist_ok=True)
    rows = ["image,person"]
    for name, person in people.items():
        if name.startswith("blank"):
            cv2.imwrite(str(folder / "images" / name), np.full((300, 300, 3), 128, np.uint8))
        else:
            grace_hopper_copy(folder / "images" / name)
        rows.append(f"{name},{person}")
    csv = folder / "unlabeled.csv"
    csv.write_text("\n".join(rows) + "\n")
    return str(csv)


def test_teacher_labels_carry_its_labellers_offset_and_leave_unsure_points_out(tmp_path):
    face = template(96)
    model = create_model("fcnn", schema="kaggle15")
    lopsided = face.copy()
    lopsided[0] += [8.0, 0.0]  # the right eye centre 8 px off: its mirrored look disagrees there only
    with torch.no_grad():
        model.head[-1].weight.zero_()
        model.head[-1].bias.copy_(torch.from_numpy(encode(lopsided, (96, 96)).reshape(-1).astype(np.float32)))
    offset = np.tile([0.75, -0.25], (15, 1))
    save_checkpoint(tmp_path / "t.pt", model, replace(card_for(model), label_offset=offset.tolist()))
    teacher = Teacher(str(tmp_path / "t.pt"), SCHEMA, 96, 1, "cpu", max_disagreement=2.0)
    labels = teacher.pseudo_labels(torch.rand(3, 1, 96, 96), batch_size=2)
    assert labels.shape == (3, 15, 2) and labels.dtype == np.float32
    unsure = np.isnan(labels).any(-1)
    # the right eye centre and its mirror partner (the left eye centre) disagree by 8 px; the rest agree
    assert unsure[:, :2].all() and not unsure[:, 2:].any()
    symmetric = (lopsided + SCHEMA.flip(lopsided, 96)) / 2
    np.testing.assert_allclose(labels[:, 2:], np.broadcast_to(symmetric[2:] + offset[2:], (3, 13, 2)), atol=1e-3)
    assert np.isnan(teacher.kept_share())  # labelling the extra faces is not reported as the batches' share


def test_photos_are_framed_by_the_teacher_and_validation_people_left_out(tmp_path):
    csv = _photos(tmp_path, {"a1.jpg": "Ada", "a2.jpg": "Ada", "b1.jpg": "Bob", "blank1.png": "Ada"})
    teacher = mean_face_checkpoint(tmp_path / "teacher.pt")
    with pytest.warns(UserWarning, match=r"no face found \(or framed\) in 1 of 4 photos, not used: blank1.png"):
        faces, report = unlabeled_faces(csv, teacher=str(teacher), schema="kaggle15", size=96, frame="none",
                                        unseen=[_people("Bob")], by_person=True, progress=False)
    assert report == {"source": csv, "read": 4, "unreadable": 0, "no_face_found": 1, "left_out_validation_people": 1,
                      "left_out_validation_pictures": 0, "used": 2}
    assert faces.person == ["Ada", "Ada"] and np.isnan(faces.keypoints).all()
    assert np.asarray(faces.images).shape == (2, 96, 96)
    # framed as the training faces are: the teacher sees its own answer (the mean face) in the crop's middle,
    # so Grace Hopper's face fills the crop like a Kaggle face: her eyes are darker than her cheeks below them
    crop = np.asarray(faces.images[0], float)
    eyes, cheeks = crop[34:42, 20:76].mean(), crop[46:54, 20:76].mean()
    assert eyes < cheeks - 5, (eyes, cheeks)
    with pytest.warns(UserWarning, match=r"no face found \(or framed\) in 1 of 4"):  # from the cache, said again
        again, _ = unlabeled_faces(csv, teacher=str(teacher), schema="kaggle15", size=96, frame="none",
                                   unseen=[_people()], by_person=True, progress=False)
    assert again.person == ["Ada", "Ada", "Bob"] and np.array_equal(np.asarray(again.images)[:2], faces.images)


def test_unusable_unlabelled_files_are_refused_with_the_reason(tmp_path):
    teacher = str(mean_face_checkpoint(tmp_path / "teacher.pt"))
    csv = _photos(tmp_path, {"b1.jpg": "Bob"})
    with pytest.raises(ValueError, match="all of its 1 usable faces are of validation people"):
        unlabeled_faces(csv, teacher=teacher, schema="kaggle15", size=96, frame="none", unseen=[_people("Bob")],
                        by_person=True, progress=False)
    crops = _unlabelled_crops(tmp_path / "crops.csv")  # no person column
    with pytest.raises(ValueError, match=r"4 of its 4 faces have no person \(no person column\), and this run splits its people"):
        unlabeled_faces(str(crops), teacher=teacher, schema="kaggle15", size=96, frame="none", unseen=[_people()],
                        by_person=True, progress=False)
    with pytest.raises(ValueError, match="holds 96x96 images inline, not faces framed at the model's 48x48"):
        unlabeled_faces(str(crops), teacher=teacher, schema="kaggle15", size=48, frame="none", unseen=[_people()],
                        by_person=False, progress=False)
    with pytest.raises(ConfigError, match="data.unlabeled .*learnt from a teacher's targets; set train.teacher"):
        load_config(None, [f"data.unlabeled={csv}"])
    with pytest.raises(ConfigError, match="train.distill_weight 0 .*without data.unlabeled"):
        load_config(None, [f"train.teacher={teacher}", "train.distill_weight=0"])
    with pytest.raises(ValueError, match="train.distill_weight must be a finite number >= 0"):
        load_config(None, ["train.distill_weight=-1"])


def test_a_run_trains_on_pseudo_labelled_photos_beside_its_labels(tmp_path, capsys):
    people = [f"P{i}" for i in range(6)]
    csv = _photos(tmp_path, {**{f"{p}.jpg": p for p in people}, "blank1.png": "P0"})
    train = write_kaggle_csv(make_faces(12), tmp_path / "train.csv")
    (tmp_path / "persons.csv").write_text("person\n" + "".join(f"{people[i // 2]}\n" for i in range(12)))
    teacher = mean_face_checkpoint(tmp_path / "teacher.pt")
    settings = [f"data.train={train}", f"data.persons={tmp_path / 'persons.csv'}", "data.split=[0.67, 0.33]",
                "model.name=fcnn", "train.epochs=1", "train.batch_size=4", "train.num_threads=1",
                f"out_dir={tmp_path / 'r'}", f"train.teacher={teacher}", f"data.unlabeled={csv}", "train.distill_weight=0"]
    with pytest.warns(UserWarning, match=r"no face found \(or framed\) in 1 of 7 photos"):
        summary = fit(load_config(None, settings), progress=False)
    data = summary["data"]
    validation_people = (12 - (data["train"] - data["unlabeled"]["used"])) // 2  # two faces a person
    assert validation_people >= 1
    assert data["unlabeled"]["left_out_validation_people"] == validation_people  # one photo each
    assert data["unlabeled"]["used"] == 6 - validation_people and data["unlabeled"]["no_face_found"] == 1
    # the mean-face teacher agrees with itself everywhere: every point of every used photo is a label
    assert data["unlabeled"]["pseudo_labelled_points"] == 15 * data["unlabeled"]["used"]
    assert "teacher_kept" not in summary  # weight 0: no targets on the batches, only the photos' labels
    with pytest.warns(UserWarning, match="no face found"):  # resumed: the same faces, so the same digest
        resumed = fit(load_config(None, [*settings[:4], "train.epochs=2", *settings[5:]]), resume=True, progress=False)
    assert resumed["epochs"] == 2
    (tmp_path / "unlabeled.csv").unlink()  # rebuilding the validation split does not need the extra faces
    assert main(["evaluate", "--model", str(tmp_path / "r" / "best.pt"), "--split", "val", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["rows"] == 2 * validation_people


def test_validation_faces_without_persons_or_the_same_pictures_are_kept_out(tmp_path):
    from facekeypoints.data import read

    teacher = str(mean_face_checkpoint(tmp_path / "teacher.pt"))
    csv = _photos(tmp_path, {"a1.jpg": "Ada"})
    nameless = replace(_people("x"), person=[None])
    with pytest.raises(ValueError, match="some validation faces have no person .* cannot be told apart"):
        unlabeled_faces(csv, teacher=teacher, schema="kaggle15", size=96, frame="none", unseen=[nameless],
                        by_person=True, progress=False)
    crops = _unlabelled_crops(tmp_path / "crops.csv")  # no persons: a row split
    shown = read(str(crops)).subset([2])  # one of them is also a validation picture
    faces, report = unlabeled_faces(str(crops), teacher=teacher, schema="kaggle15", size=96, frame="none",
                                    unseen=[replace(shown, person=[None])], by_person=False, progress=False)
    assert report["left_out_validation_pictures"] == 1 and report["used"] == 3
    assert not any(np.array_equal(image, shown.images[0]) for image in faces.images)


def test_unreadable_photos_labelled_files_and_training_faces_are_said(tmp_path):
    from facekeypoints.data import read

    teacher = str(mean_face_checkpoint(tmp_path / "teacher.pt"))
    csv = _photos(tmp_path, {"a1.jpg": "Ada", "a2.jpg": "Ada"})
    (tmp_path / "images" / "a2.jpg").write_text("not a photo")
    with open(csv, "a") as f:
        f.write("gone.jpg,Ada\n")
    for _ in range(2):  # framed, then from the cache: the same reasons both times
        with pytest.warns(UserWarning, match=r"2 of 3 photos cannot be read, not used: a2.jpg \(.*\); gone.jpg \("):
            faces, report = unlabeled_faces(csv, teacher=teacher, schema="kaggle15", size=96, frame="none",
                                            unseen=[_people()], by_person=True, progress=False)
        assert (report["unreadable"], report["no_face_found"], report["used"]) == (2, 0, 1)
    (tmp_path / "blank.csv").write_text("image,person\na1.jpg,Ada\na2.jpg,\n")
    with pytest.raises(ValueError, match=r"1 of its 2 faces have no person \(rows 3\)"):
        unlabeled_faces(str(tmp_path / "blank.csv"), teacher=teacher, schema="kaggle15", size=96, frame="none",
                        unseen=[_people()], by_person=True, progress=False)
    crops = write_kaggle_csv(make_faces(4, missing=False), tmp_path / "crops.csv")  # labelled, no persons
    training = read(str(crops)).subset([0, 1])
    with pytest.warns(UserWarning) as said:
        faces, report = unlabeled_faces(str(crops), teacher=teacher, schema="kaggle15", size=96, frame="none",
                                        unseen=[_people()], by_person=False, progress=False, known=training)
    messages = " | ".join(str(w.message) for w in said)
    assert "holds 60 labelled points, which are not used" in messages
    assert "2 of its faces are training faces already (the same pixels), left out" in messages
    assert report["left_out_training_pictures"] == 2 and report["used"] == 2
    with pytest.raises(ValueError, match="data.unlabeled is data.train"):
        load_config(None, [f"data.train={crops}", f"data.unlabeled={crops}", f"train.teacher={teacher}"])


def test_a_missing_unlabelled_file_is_named_with_its_setting(tmp_path, capsys):
    teacher = mean_face_checkpoint(tmp_path / "teacher.pt")
    code = main(["train", "--set", f"train.teacher={teacher}", "--set", f"data.unlabeled={tmp_path / 'gone.csv'}",
                 "--set", f"out_dir={tmp_path / 'r'}"])
    assert code == 2 and f"data.unlabeled {tmp_path / 'gone.csv'}: no such file or folder" in capsys.readouterr().err
