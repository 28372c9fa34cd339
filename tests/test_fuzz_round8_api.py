"""Round 8 of fresh bad arguments for the Python API and ``predict`` on a Kaggle CSV.

F9: ``predict_crops`` of (2, 0, 0) crops was a ZeroDivisionError; a folder given as the model
(``model=`` or ``--model``) or to ``stream()`` was "no such model/video file" (it exists, as a
folder); ``model=""`` was ". : no such model file"; ``threads=0`` with the torch backend was
torch's RuntimeError without the argument's name.
F10: ``KeypointDetector`` coerced its arguments: ``rotate_tta=True`` was 1 degree,
``mirror_tta="no"`` and ``refine="False"`` were True, ``threads=-1``, ``"2"`` and ``1.5`` passed
with the ONNX backend, ``batch_size=True`` was 1. Now flags must be bools, ``threads`` and
``batch_size`` whole numbers >= 1, ``rotate_tta`` a real number (not a bool), each checked before the
model is read and refused naming the argument (TypeError for the type, ValueError for the value).
F11: ``predict k.csv`` (a Kaggle CSV) ignored ``--max-pixels``, ``--no-draw`` and ``--no-refine``
and exited 0; they are now refused where and as ``--detector``/``--min-face``/``--max-side`` are,
only when given (defaults are None/False); ``--batch-size`` applies (faces per model call), and the
photo path keeps its defaults (16 images, 100 MP).
F12: a quoted Image field (``"1 2 3 ..."``, valid CSV) was refused with ``'"' at character 1 is not
a digit or a space``; one pair of surrounding double quotes is now stripped from every field (Image,
ImageId, coordinates), and a stray quote's message says what a quoted field needs.
(Synthetic inputs only.)"""
from __future__ import annotations

import numpy as np
import pytest

from facekeypoints.data.formats.kaggle import read_kaggle_csv, write_kaggle_csv
from facekeypoints.data.images import MAX_PIXELS
from facekeypoints.infer import files as files_module
from facekeypoints.infer import kaggle as kaggle_module
from facekeypoints.infer.predictor import KeypointDetector, load_runner
from facekeypoints.infer.video import open_video
from facekeypoints.models.predict import TorchRunner
from facekeypoints.models.weights import resolve_checkpoint
from fakes import make_faces, mean_face_checkpoint, png_bomb, run_cli


def run(argv, capsys) -> tuple[int, str, str]:
    return run_cli(argv, capsys, forbidden=("Traceback", "--debug"))


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return mean_face_checkpoint(tmp_path_factory.mktemp("ckpt") / "mean.pt")


@pytest.fixture(scope="module")
def det(model) -> KeypointDetector:
    return KeypointDetector(model, backend="torch", threads=1)


def kaggle_test_csv(path, rows: int, quote: str = ""):
    """A Kaggle test.csv (ImageId,Image); ``quote`` '"' writes both fields quoted."""
    images = make_faces(rows).images
    q = quote
    path.write_text("ImageId,Image\n" + "".join(f"{q}{i + 1}{q},{q}{' '.join(map(str, im.reshape(-1)))}{q}\n"
                                                for i, im in enumerate(images)))
    return path


# ---- F9: raw or misleading errors --------------------------------------------------------------------------
def test_predict_crops_of_no_pixels_is_a_value_error(det):
    with pytest.raises(ValueError, match=r"crops must be at least 1x1 pixels, got shape \(2, 0, 0\)"):
        det.predict_crops(np.zeros((2, 0, 0), np.uint8))
    assert det.predict_crops(np.zeros((0, 48, 48), np.uint8)).shape == (0, 15, 2)  # no crops: still fine


def test_a_folder_or_an_empty_name_as_the_model_says_so(tmp_path, model):
    with pytest.raises(ValueError, match=f"{tmp_path}: is a folder, not a model file"):
        KeypointDetector(model=tmp_path)
    with pytest.raises(ValueError, match="is a folder, not a model file"):
        resolve_checkpoint(str(tmp_path))
    for empty in ("", "  "):
        with pytest.raises(ValueError, match="model is an empty name"):
            KeypointDetector(model=empty)
    with pytest.raises(TypeError, match="model must be a path .* got int"):
        resolve_checkpoint(3)
    with pytest.raises(FileNotFoundError, match="no such model file"):  # a missing file is still that
        resolve_checkpoint(tmp_path / "gone.pt")
    assert resolve_checkpoint(str(model)) == model

    class Named:  # any os.PathLike names a file, as a Path does
        def __fspath__(self):
            return str(model)

    assert resolve_checkpoint(Named()) == model


def test_a_folder_as_the_cli_model_exits_2_naming_it(tmp_path, capsys):
    csv = kaggle_test_csv(tmp_path / "t.csv", 1)
    code, _, err = run(["predict", csv, "--model", tmp_path, "-o", tmp_path / "k.csv"], capsys)
    assert code == 2 and f"{tmp_path}: is a folder, not a model file" in err, err
    assert not (tmp_path / "k.csv").exists()


def test_stream_of_a_folder_or_an_empty_path_says_so(tmp_path, det):
    with pytest.raises(ValueError, match=f"{tmp_path}: is a folder, not a video file"):
        list(det.stream(tmp_path))
    with pytest.raises(ValueError, match="is a folder, not a video file"):
        open_video(str(tmp_path))
    with pytest.raises(ValueError, match="empty path"):
        list(det.stream(""))
    with pytest.raises(FileNotFoundError, match="no such video file"):
        list(det.stream(tmp_path / "gone.mp4"))


def test_stream_flags_and_counts_are_not_coerced(tmp_path, det):
    video = tmp_path / "gone.mp4"
    with pytest.raises(TypeError, match="smooth must be True or False, got str 'no'"):
        det.stream(video, smooth="no")
    with pytest.raises(ValueError, match="redetect_every must be a whole number"):
        det.stream(video, redetect_every=True)
    with pytest.raises(ValueError, match="min_cutoff"):
        det.stream(video, min_cutoff=True)


@pytest.mark.parametrize("backend", ["torch", "onnx"])
@pytest.mark.parametrize("threads, kind", [(0, ValueError), (-1, ValueError), ("2", TypeError), (1.5, TypeError),
                                           (True, TypeError)])
def test_threads_is_a_whole_number_of_at_least_one_for_both_backends(model, backend, threads, kind):
    with pytest.raises(kind, match="threads must be a whole number >= 1"):
        KeypointDetector(model, backend=backend, threads=threads)
    with pytest.raises(kind, match="threads must be a whole number >= 1"):
        load_runner(model, backend, threads=threads)


def test_torch_runner_load_names_threads(model):
    with pytest.raises(ValueError, match="threads must be a whole number >= 1, got 0"):
        TorchRunner.load(model, threads=0)
    with pytest.raises(TypeError, match="threads must be a whole number >= 1 or None, got float"):
        TorchRunner.load(model, threads=2.0)


# ---- F10: KeypointDetector's arguments are not coerced ----------------------------------------------------
@pytest.mark.parametrize("kwargs, kind, message", [
    (dict(rotate_tta=True), TypeError, "rotate_tta must be a number of degrees in \\[0, 90\\), got bool True"),
    (dict(rotate_tta=np.bool_(True)), TypeError, "rotate_tta must be a number"),
    (dict(rotate_tta="4"), TypeError, "rotate_tta must be a number of degrees .* got str"),
    (dict(rotate_tta=float("nan")), ValueError, "rotate_tta must be a number of degrees"),
    (dict(rotate_tta=90), ValueError, "rotate_tta must be a number of degrees"),
    (dict(mirror_tta="no"), TypeError, "mirror_tta must be True or False, got str 'no'"),
    (dict(mirror_tta=1), TypeError, "mirror_tta must be True or False, got int 1"),
    (dict(refine="False"), TypeError, "refine must be True or False, got str 'False'"),
    (dict(refine=None), TypeError, "refine must be True or False, got NoneType"),
    (dict(batch_size=True), TypeError, "batch_size must be a whole number >= 1, got bool True"),
    (dict(batch_size=2.0), TypeError, "batch_size must be a whole number >= 1, got float"),
    (dict(batch_size=0), ValueError, "batch_size must be a whole number >= 1, got 0"),
])
def test_bad_arguments_are_refused_naming_them(model, kwargs, kind, message):
    with pytest.raises(kind, match=message):
        KeypointDetector(model, backend="torch", **kwargs)


def test_arguments_are_checked_before_the_model_is_read(tmp_path):
    with pytest.raises(TypeError, match="refine must be True or False"):
        KeypointDetector(tmp_path / "gone.pt", refine="yes")


def test_numpy_scalars_of_the_right_kind_are_taken(model):
    d = KeypointDetector(model, backend="torch", threads=np.int64(1), batch_size=np.int32(8),
                         rotate_tta=np.float32(2.0), mirror_tta=np.bool_(True), refine=np.bool_(False))
    assert (d.batch_size, d.rotate_tta, d.mirror_tta, d.refine) == (8, 2.0, True, False)
    assert type(d.batch_size) is int and type(d.mirror_tta) is bool and type(d.refine) is bool


# ---- F11: options for photos are refused with a Kaggle CSV, --batch-size applies ---------------------------
@pytest.mark.parametrize("options, message", [
    (["--max-pixels", "1"], "--max-pixels: for photos and videos (a photo's size limit); a Kaggle CSV's faces are "
                            "framed already"),
    (["--max-pixels", "0"], "--max-pixels: for photos and videos"),
    (["--no-draw"], "--no-draw: for photos and videos (drawn copies)"),
    (["--no-refine"], "--no-refine: for photos and videos (re-framing found faces)"),
    (["--max-pixels", "1", "--no-draw", "--no-refine", "--batch-size", "1"],
     "--max-pixels and --no-draw and --no-refine: for photos and videos"),
    (["--min-face", "20", "--no-draw"], "--min-face: for the face search in photos and videos; --no-draw: for photos "
                                        "and videos (drawn copies); a Kaggle CSV's faces are framed already"),
])
def test_photo_options_with_a_kaggle_csv_are_refused(tmp_path, model, capsys, options, message):
    csv = kaggle_test_csv(tmp_path / "t.csv", 1)
    code, _, err = run(["predict", csv, "-o", tmp_path / "k.csv", "--model", model, "--quiet", *options], capsys)
    assert code == 2 and message in err, err
    assert not (tmp_path / "k.csv").exists()


def test_batch_size_applies_to_a_kaggle_csv_as_faces_per_model_call(tmp_path, model, capsys, monkeypatch):
    csv = kaggle_test_csv(tmp_path / "t.csv", 3)
    seen, real = [], kaggle_module.predict_kaggle_csv

    def spy(detector, *args, **kwargs):
        seen.append(detector.batch_size)
        return real(detector, *args, **kwargs)

    monkeypatch.setattr(kaggle_module, "predict_kaggle_csv", spy)
    code, _, err = run(["predict", csv, "-o", tmp_path / "a.csv", "--model", model, "--batch-size", "2"], capsys)
    assert code == 0, err
    code, _, err = run(["predict", csv, "-o", tmp_path / "b.csv", "--model", model], capsys)
    assert code == 0, err
    assert seen == [2, 64]  # given: applied; not given: the detector's own default
    assert (tmp_path / "a.csv").read_text() == (tmp_path / "b.csv").read_text()


def test_the_photo_path_keeps_its_defaults(tmp_path, model, capsys, monkeypatch):
    seen = []
    monkeypatch.setattr(files_module, "predict_paths", lambda *a, **kw: seen.append(kw) or files_module.PredictReport())
    png = png_bomb(tmp_path / "a.png", 20, 20)
    for options in ([], ["--max-pixels", "0", "--batch-size", "3"], ["--max-pixels", "500"]):
        run(["predict", png, "-o", tmp_path / "out.jsonl", "--model", model, *options], capsys)
    assert [(kw["batch_size"], kw["max_pixels"]) for kw in seen] == [(16, MAX_PIXELS), (3, None), (16, 500)]


def test_the_default_pixel_limit_still_refuses_a_huge_photo(tmp_path, model, capsys):
    code, _, err = run(["predict", png_bomb(tmp_path / "big.png"), "-o", tmp_path / "out.jsonl", "--model", model,
                        "--quiet"], capsys)
    assert code == 1 and "over the limit of 100000000 pixels" in err, err


# ---- F12: quoted fields in a Kaggle CSV ------------------------------------------------------------------
def test_a_quoted_image_field_reads_as_the_unquoted_one(tmp_path):
    plain = kaggle_test_csv(tmp_path / "plain.csv", 3)
    quoted = kaggle_test_csv(tmp_path / "quoted.csv", 3, quote='"')
    a, b = read_kaggle_csv(plain, use_cache=False), read_kaggle_csv(quoted, use_cache=False)
    assert np.array_equal(a.images, b.images) and a.ids == b.ids == ["1", "2", "3"]


def test_quoted_coordinates_and_a_quoted_empty_cell_in_a_training_csv(tmp_path):
    faces = make_faces(2)
    write_kaggle_csv(faces, tmp_path / "plain.csv")
    header, *rows = (tmp_path / "plain.csv").read_text().splitlines()
    quoted = [",".join(f'"{field}"' for field in row.split(",")) for row in rows]
    (tmp_path / "quoted.csv").write_text("\n".join([header, *quoted]) + "\n")
    a = read_kaggle_csv(tmp_path / "plain.csv", use_cache=False)
    b = read_kaggle_csv(tmp_path / "quoted.csv", use_cache=False)
    assert np.array_equal(a.images, b.images)
    assert np.array_equal(a.keypoints, b.keypoints, equal_nan=True) and np.isnan(b.keypoints).any()


def test_a_stray_quote_or_a_quoted_comma_says_what_a_quoted_field_needs(tmp_path):
    good = kaggle_test_csv(tmp_path / "good.csv", 1)
    line = good.read_text().splitlines()[1]
    (tmp_path / "open.csv").write_text('ImageId,Image\n' + line.replace(",", ',"', 1) + "\n")
    with pytest.raises(ValueError, match=r"row 1: a quoted field is not closed on this line"):
        read_kaggle_csv(tmp_path / "open.csv", use_cache=False)
    (tmp_path / "comma.csv").write_text('ImageId,Image\n"1,2",' + line.split(",", 1)[1] + "\n")
    with pytest.raises(ValueError, match=r"has 3 fields, the header has 2 \(a quoted field holding a comma"):
        read_kaggle_csv(tmp_path / "comma.csv", use_cache=False)


def test_predict_reads_a_quoted_kaggle_csv(tmp_path, model, capsys):
    plain = kaggle_test_csv(tmp_path / "plain.csv", 2)
    quoted = kaggle_test_csv(tmp_path / "quoted.csv", 2, quote='"')
    code, _, err = run(["predict", plain, "-o", tmp_path / "a.csv", "--model", model], capsys)
    assert code == 0, err
    code, _, err = run(["predict", quoted, "-o", tmp_path / "b.csv", "--model", model], capsys)
    assert code == 0, err
    assert (tmp_path / "a.csv").read_text() == (tmp_path / "b.csv").read_text()
