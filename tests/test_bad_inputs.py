"""A second round of fresh bad inputs (issue 10): each case once ended in a stack trace, a silent
wrong result or lost output; each now ends in a result or in one line naming what is wrong."""
from __future__ import annotations

import gzip
import json
import os
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import scipy.io
import scipy.sparse
from matplotlib import cbook

from facekeypoints.data import DataFormatError, read, read_image
from facekeypoints.data.formats.kaggle import write_kaggle_csv
from facekeypoints.data.pipeline import load_splits
from facekeypoints.infer.bench import demo_frame, write_still_clip
from facekeypoints.settings import SettingsError
from facekeypoints.train.config import load_config
from fakes import make_faces, run_cli

GRACE_HOPPER = Path(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))


def run(argv, capsys) -> tuple[int, str, str]:
    return run_cli(argv, capsys)


# ---- readers -------------------------------------------------------------------------------------
def _ytf68_csv(folder: Path, rows: int = 2) -> Path:
    (folder / "images").mkdir(parents=True)
    header = "image,person," + ",".join(f"x{i},y{i}" for i in range(68))
    rng, lines = np.random.default_rng(0), [header]
    for r in range(rows):
        cv2.imwrite(str(folder / "images" / f"f{r}.jpg"), np.full((120, 100, 3), 128, np.uint8))
        points = rng.uniform(20, 90, 136)
        lines.append(f"f{r}.jpg,person{r}," + ",".join(f"{v:.2f}" for v in points))
    return folder / "train.csv", "\n".join(lines) + "\n"


def test_a_gzipped_ytf68_csv_is_told_from_its_header(tmp_path):
    path, text = _ytf68_csv(tmp_path)
    gz = path.with_suffix(".csv.gz")
    gz.write_bytes(gzip.compress(text.encode()))
    data = read(gz, load_images=False)
    assert data.schema.name == "ibug68" and len(data) == 2


def test_coco_is_recognised_when_its_keys_come_late(tmp_path):
    images = [{"id": i, "file_name": f"{i}.jpg"} for i in range(3000)]  # pushes 'annotations' past 64 KB
    doc = {"images": images, "annotations": [{"image_id": 0, "keypoints": [10, 20, 2] * 68}]}
    path = tmp_path / "late.json"
    path.write_text(json.dumps(doc))
    assert len(read(path, load_images=False)) == 1


def test_a_repeated_coco_image_id_is_an_error(tmp_path):
    doc = {"images": [{"id": 7, "file_name": "a.jpg"}, {"id": 7, "file_name": "b.jpg"}],
           "annotations": [{"image_id": 7, "keypoints": [10, 20, 2] * 68}]}
    path = tmp_path / "dup.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(DataFormatError, match=r"images\[1\] repeats the id 7 of images\[0\]"):
        read(path, load_images=False)


@pytest.mark.parametrize("bbox", [[1, 2, -5, 10], [1, 2, 5, -1]])
def test_a_negative_box_size_is_an_error(tmp_path, bbox):
    doc = {"images": [{"id": 1, "file_name": "a.jpg"}],
           "annotations": [{"image_id": 1, "bbox": bbox, "keypoints": [10, 20, 2] * 68}]}
    path = tmp_path / "neg.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(DataFormatError, match="width and height must be > 0"):
        read(path, load_images=False)


def test_a_zip_that_declares_a_huge_size_is_read_by_what_it_holds(tmp_path):
    faces = make_faces(3)
    path = tmp_path / "training.zip"
    write_kaggle_csv(faces, path)
    raw = bytearray(path.read_bytes())
    # the central directory's "uncompressed size" of the one member: claim 16 TiB
    central = raw.rindex(b"PK\x01\x02")
    raw[central + 24:central + 28] = (0xFFFFFFF0).to_bytes(4, "little")
    path.write_bytes(bytes(raw))
    try:
        data = read(path)
    except DataFormatError as err:  # zipfile may notice the lie itself: then it is named
        assert path.name in str(err)
    else:
        assert len(data) == 3


def test_empty_datasets_are_one_clear_error(tmp_path):
    xml = tmp_path / "empty.xml"
    xml.write_text("<?xml version='1.0'?>\n<dataset><images></images></dataset>\n")
    with pytest.raises(DataFormatError, match="empty.xml: no faces$"):
        read(xml)
    folder = tmp_path / "pts"
    folder.mkdir()
    (folder / "a.pts").write_text("version: 1\nn_points: 3\n{\n1 2\n3 4\n5 6\n}\n")
    with pytest.raises(DataFormatError, match=r"no faces; 1 skipped as bad: .*a.pts"):
        read(folder, skip_bad=True)


def test_mat_files_load_only_a_small_dense_pt3d_68(tmp_path):
    sparse = tmp_path / "sparse.mat"
    scipy.io.savemat(sparse, {"pt3d_68": scipy.sparse.csr_matrix(np.ones((3, 68)))})
    with pytest.raises(DataFormatError, match=r"expected a \(3, 68\) array, got shape \(3, 68\) \(sparse data; save it dense\)"):
        read(sparse, load_images=False)
    wrong = tmp_path / "wrong.mat"
    scipy.io.savemat(wrong, {"pt3d_68": np.ones((3, 5000))})
    with pytest.raises(DataFormatError, match=r"shape \(3, 5000\)"):
        read(wrong, load_images=False)


@pytest.mark.parametrize("text, field", [("6_6.5", "left_eye_center_x"), ("\u0661\u0662", "left_eye_center_x")])
def test_numbers_python_reads_but_files_do_not_mean_are_refused(tmp_path, text, field):
    faces = make_faces(2, missing=False)
    path = tmp_path / "t.csv"
    write_kaggle_csv(faces, path)
    lines = path.read_text().splitlines()
    cells = lines[1].split(",")
    cells[0] = text
    path.write_text("\n".join([lines[0], ",".join(cells), *lines[2:]]) + "\n")
    with pytest.raises(DataFormatError, match=f"row 1, field '{field}': not a number"):
        read(path)


def test_image_ids_with_digit_separators_are_refused(tmp_path, capsys):
    faces = make_faces(2)
    test = tmp_path / "test.csv"
    pixels = [" ".join(map(str, im.ravel())) for im in faces.images]
    test.write_text(f"ImageId,Image\n1_0,{pixels[0]}\n10,{pixels[1]}\n")
    code, out, err = run(["predict", test, "-o", tmp_path / "k.csv"], capsys)
    assert code == 1 and "row 1, field 'ImageId': not an integer: '1_0'" in err
    assert (tmp_path / "k.csv").read_text().splitlines()[1].startswith("10,")  # the good row is kept


def test_two_different_68_point_groups_are_not_guessed_between(tmp_path):
    points = np.random.default_rng(0).uniform(10, 90, (68, 2)).tolist()
    doc = {"groups": {"a": {"landmarks": {"points": points}}, "b": {"landmarks": {"points": [[0, 0]] * 68}}}}
    path = tmp_path / "two.ljson"
    path.write_text(json.dumps(doc))
    with pytest.raises(DataFormatError, match=r"several different 68-point groups \(\['a', 'b'\]\)"):
        read(path, load_images=False)
    doc["groups"]["b"] = doc["groups"]["a"]  # the same points twice are no ambiguity
    path.write_text(json.dumps(doc))
    assert len(read(path, load_images=False)) == 1


def test_a_repeated_pts_header_key_is_an_error(tmp_path):
    body = "\n".join(f"{x} {x}" for x in range(10, 78))
    path = tmp_path / "a.pts"
    path.write_text(f"version: 1\nn_points: 68\nn_points: 3\n{{\n{body}\n}}\n")
    with pytest.raises(DataFormatError, match="line 3: 'n_points' is given twice"):
        read(path, load_images=False)


def test_a_pipe_is_named_as_such(tmp_path):
    fifo = tmp_path / "data.csv"
    os.mkfifo(fifo)
    with pytest.raises(DataFormatError, match="not a regular file"):
        read(fifo)


@pytest.mark.parametrize("content, message", [(b"\xef\xbb\xbf", "empty file"),
                                              (b"\n\nImage\n", "the first line is empty")])
def test_csvs_without_a_header_say_so(tmp_path, content, message):
    path = tmp_path / "x.csv"
    path.write_bytes(content)
    with pytest.raises(DataFormatError, match=message):
        read(path)


# ---- images: the pixel limit holds for every file -------------------------------------------------
def _png_with_bad_crc(path: Path, width: int, height: int) -> Path:
    """A valid PNG (small pixels, declared size width x height) whose tEXt chunk has a wrong CRC:
    Pillow refuses its header, OpenCV decodes it."""
    ok, png = cv2.imencode(".png", np.zeros((height, width), np.uint8))
    data = png.tobytes()
    text = b"tEXt" + b"note\x00bad crc"
    chunk = len(text[4:]).to_bytes(4, "big") + text + ((zlib.crc32(text) ^ 1) & 0xFFFFFFFF).to_bytes(4, "big")
    path.write_bytes(data[:33] + chunk + data[33:])  # after the signature and IHDR
    return path


def test_the_pixel_limit_holds_when_pillow_cannot_read_the_header(tmp_path):
    path = _png_with_bad_crc(tmp_path / "crc.png", 300, 200)
    with pytest.raises(DataFormatError, match=r"300x200 = 60000 pixels, over the limit of 1000"):
        read_image(path, max_pixels=1000)
    assert read_image(path).shape == (200, 300, 3)  # under the limit it is read as before


def test_an_image_of_unknown_size_is_not_decoded_under_a_limit(tmp_path):
    path = tmp_path / "x.hdr"
    assert cv2.imwrite(str(path), np.ones((20, 30, 3), np.float32))
    with pytest.raises(DataFormatError, match="cannot decode image: its size cannot be read from its header"):
        read_image(path)
    assert read_image(path, max_pixels=None).shape == (20, 30, 3)


def test_16_bit_images_become_8_bit_rounded(tmp_path):
    path = tmp_path / "deep.png"
    values = np.array([[0, 128, 257, 65535]], np.uint16)
    cv2.imwrite(str(path), values)
    assert read_image(path)[0, :, 0].tolist() == [0, 0, 1, 255]


# ---- predict: every output has a name of its own, every failure a line ---------------------------
def test_no_two_inputs_write_the_same_output(tmp_path, capsys):
    frame = cv2.resize(demo_frame(), (160, 120))
    (tmp_path / "in").mkdir()
    write_still_clip(tmp_path / "in" / "x.avi", frame, frames=3)
    write_still_clip(tmp_path / "in" / "predictions.avi", frame, frames=3)
    gif = tmp_path / "a.gif"
    from PIL import Image

    Image.fromarray(frame).save(gif)
    cv2.imwrite(str(tmp_path / "a.gif.png"), frame)
    cv2.imwrite(str(tmp_path / "in" / "x.pgm"), cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY))
    out = tmp_path / "out"
    code, stdout, _ = run(["predict", tmp_path / "in", gif, tmp_path / "a.gif.png", "-o", out, "--quiet"], capsys)
    assert code == 0
    names = sorted(p.name for p in out.iterdir())
    # a.gif's drawing may not take the name a.gif.png, which the photo a.gif.png draws to itself
    assert names == ["a-2.gif.png", "a.gif.png", "predictions-2.jsonl", "predictions-2_keypoints.mp4",
                     "predictions.jsonl", "x.jsonl", "x.pgm.png", "x_keypoints.mp4"]
    assert f"wrote {len(names)} files" in stdout
    lines = (out / "predictions.jsonl").read_text().splitlines()
    assert len(lines) == 3  # the three photos; each video has its own .jsonl
    assert len((out / "predictions-2.jsonl").read_text().splitlines()) == 3


def test_links_and_pipes_among_the_inputs_are_reported(tmp_path, capsys):
    (tmp_path / "in").mkdir()
    cv2.imwrite(str(tmp_path / "in" / "good.jpg"), cv2.cvtColor(demo_frame(), cv2.COLOR_RGB2BGR))
    (tmp_path / "in" / "gone.jpg").symlink_to(tmp_path / "nowhere.jpg")
    os.mkfifo(tmp_path / "in" / "pipe.jpg")
    code, _, err = run(["predict", tmp_path / "in", "-o", tmp_path / "o.jsonl", "--quiet"], capsys)
    assert code == 1 and "gone.jpg: a broken link" in err and "pipe.jpg: not a regular file" in err
    assert len((tmp_path / "o.jsonl").read_text().splitlines()) == 1


def test_csv_output_keeps_a_row_for_an_image_without_faces(tmp_path, capsys):
    blank = tmp_path / "blank.jpg"
    cv2.imwrite(str(blank), np.full((120, 160, 3), 200, np.uint8))
    code, _, _ = run(["predict", blank, GRACE_HOPPER, "-o", tmp_path / "o.csv", "--quiet"], capsys)
    rows = (tmp_path / "o.csv").read_text().splitlines()
    assert code == 0 and len(rows) == 3 and rows[1].startswith(f"{blank},,")


def test_outputs_are_checked_before_any_work(tmp_path, capsys):
    faces = make_faces(3)
    train = tmp_path / "train.csv"
    write_kaggle_csv(faces, train)
    (tmp_path / "adir").mkdir()
    cases = [
        (["data", "convert", train, "-o", tmp_path / "adir"], "written as .csv, .csv.gz or .zip"),
        (["data", "convert", train, "-o", tmp_path / "x.csv.bz2"], "written as .csv, .csv.gz or .zip"),
        (["data", "convert", train, "-o", train], "is also an input"),
        (["data", "info", train, "--skip-bad", "--report", tmp_path / "adir"], "is a folder"),
        (["export", "-o", tmp_path / "adir.onnx"], None),
        (["export", "--format", "pt", "-o", tmp_path / "m.pth"], "name it *.pt"),
        (["predict", train, "-o", train], "is also an input"),
        (["predict", GRACE_HOPPER, "--detector", "none", "-o", tmp_path / "o"], "--detector none is for a Kaggle CSV"),
        (["bench", "--repeats", "0"], "must be 1 or more, got 0"),
        (["bench", "--threads", "0"], "must be 1 or more, got 0"),
        (["bench", "--jitter-frames", "-5"], "must be 0 or more, got -5"),
        (["predict", GRACE_HOPPER, "--threads", "-3"], "must be 1 or more, got -3"),
    ]
    (tmp_path / "adir.onnx").mkdir()
    cases[4] = (cases[4][0], "is a folder")
    for argv, message in cases:
        code, _, err = run(argv, capsys)
        assert code == 2 and message in err, (argv, err)
    assert train.read_bytes()  # not overwritten


def test_a_kaggle_csv_can_go_to_standard_output(tmp_path, capsys):
    faces = make_faces(2)
    test = tmp_path / "test.csv"
    pixels = [" ".join(map(str, im.ravel())) for im in faces.images]
    test.write_text(f"ImageId,Image\n1,{pixels[0]}\n2,{pixels[1]}\n")
    code, out, err = run(["predict", test, "-o", "-"], capsys)
    assert code == 0 and out.splitlines()[0].startswith("id,left_eye_center_x") and len(out.splitlines()) == 3
    assert not (Path.cwd() / "-").exists()


def test_a_read_only_output_folder_is_one_line(tmp_path, capsys):
    if os.geteuid() == 0:
        pytest.skip("root writes into read-only folders; the check is os.access, which root passes")
    target = tmp_path / "ro"
    target.mkdir()
    target.chmod(0o500)
    try:
        code, _, err = run(["predict", GRACE_HOPPER, "-o", target, "--quiet"], capsys)
        assert code == 2 and "cannot write in" in err
    finally:
        target.chmod(0o700)


def test_submit_needs_a_test_csv_with_image_ids(tmp_path, capsys):
    train = tmp_path / "train.csv"
    write_kaggle_csv(make_faces(2), train)
    lookup = tmp_path / "lookup.csv"
    lookup.write_text("RowId,ImageId,FeatureName\n1,1,nose_tip_x\n")
    code, _, err = run(["submit", train, "--lookup", lookup, "-o", tmp_path / "s.csv"], capsys)
    assert code == 2 and "field 'ImageId'" in err and not (tmp_path / "s.csv").exists()


def test_evaluate_refuses_unlabelled_files(tmp_path, capsys):
    faces = make_faces(2)
    test = tmp_path / "test.csv"
    pixels = [" ".join(map(str, im.ravel())) for im in faces.images]
    test.write_text(f"ImageId,Image\n1,{pixels[0]}\n2,{pixels[1]}\n")
    code, _, err = run(["evaluate", test], capsys)
    assert code == 2 and "has no keypoint labels" in err


# ---- training configs ----------------------------------------------------------------------------
def test_yaml_numbers_and_repeated_keys(tmp_path):
    assert load_config(None, ["train.lr=1e-3"]).train.lr == 0.001
    config = tmp_path / "dup.yaml"
    config.write_text("train: {epochs: 1}\nmodel: {name: simple_cnn}\ntrain: {epochs: 60}\n")
    with pytest.raises(SettingsError, match=r"dup.yaml: not valid YAML: line 3, column 1: key 'train' appears twice"):
        load_config(config)
    with pytest.raises(SettingsError, match=r"override 'train.lr=\[1': not valid YAML: line 1, column 3"):
        load_config(None, ["train.lr=[1"])
    with pytest.raises(SettingsError, match="good.jpg: not a YAML text file"):
        load_config(_copy(GRACE_HOPPER, tmp_path / "good.jpg"))


def _copy(src: Path, dst: Path) -> Path:
    dst.write_bytes(src.read_bytes())
    return dst


@pytest.mark.parametrize("override, message", [
    ("train.lr=.inf", "train.lr: expected a finite number, got inf"),
    ("augment.scale=[1.0, .inf]", r"augment.scale\[1\]: expected a finite number"),
    ("train.batch_size=010", None),  # YAML 1.2: ten, not octal eight
    ("out_dir=''", "out_dir: empty"),
    ("model.options={channels: [0, 16, 32, 64]}", "channel counts must be whole numbers >= 1"),
])
def test_configs_that_cannot_train_fail_when_they_load(override, message):
    if message is None:
        assert load_config(None, [override]).train.batch_size == 10
        return
    with pytest.raises(SettingsError, match=message):
        load_config(None, [override])


def test_training_that_diverges_stops_and_says_so(tmp_path, capsys):
    data = tmp_path / "train.csv"
    write_kaggle_csv(make_faces(24), data)
    config = tmp_path / "tiny.yaml"
    config.write_text(f"data: {{train: {data}, split: [0.75, 0.25], missing: mask}}\nmodel: {{name: simple_cnn}}\n"
                      "train: {epochs: 6, batch_size: 8, lr: 1.0e+12, device: cpu}\n")
    code, out, err = run(["train", "--config", config, "--out", tmp_path / "run", "--quiet"], capsys)
    assert out, err
    summary = json.loads(out)
    assert code == 1 and summary["stop_reason"] == "diverged" and summary["epochs"] < 6
    assert "diverged" in err
    best = tmp_path / "run" / "best.pt"
    if best.exists():  # only an epoch with a finite validation RMSE may be the best
        assert np.isfinite(summary["best_val_rmse"])


def test_the_imm_split_names_a_person_that_is_no_number(tmp_path):
    path, text = _ytf68_csv(tmp_path)
    path.write_text(text)
    cfg = load_config(None, [f"data.train={path}", "data.split=imm", "data.frame=resize"])
    with pytest.raises(ValueError, match="the imm split needs IMM's numbered persons .* got person 'person0'"):
        load_splits(cfg.data, 96)


# ---- round 3 ---------------------------------------------------------------------------------------
def test_ytf68_unlabeled_csv_reads_with_missing_keypoints(tmp_path):
    path, _ = _ytf68_csv(tmp_path)
    path.write_text("image,person\nf0.jpg,person0\nf1.jpg,person1\n")
    data = read(path, load_images=False)
    assert len(data) == 2 and np.isnan(data.keypoints).all()


def test_dlib_boxes_marked_ignore_are_not_faces(tmp_path):
    cv2.imwrite(str(tmp_path / "a.jpg"), np.zeros((50, 50, 3), np.uint8))
    parts = "".join(f"<part name='{i:02d}' x='{10 + i % 20}' y='{10 + i // 20}'/>" for i in range(68))
    (tmp_path / "f.xml").write_text(
        "<?xml version='1.0'?>\n<dataset><images><image file='a.jpg'>"
        f"<box top='5' left='5' width='30' height='30'>{parts}</box>"
        "<box top='1' left='1' width='9' height='9' ignore='1'/></image></images></dataset>\n")
    assert len(read(tmp_path / "f.xml", load_images=False)) == 1


def test_data_info_needs_no_pixels(tmp_path, capsys):
    body = "\n".join(f"{x} {x}" for x in range(10, 78))
    (tmp_path / "lonely.pts").write_text(f"version: 1\nn_points: 68\n{{\n{body}\n}}\n")  # its photo is missing
    code, out, _ = run(["data", "info", tmp_path / "lonely.pts"], capsys)
    assert code == 0 and "rows            1" in out


@pytest.mark.parametrize("dtype, message", [(np.int16, "int16 pixels have no standard brightness range"),
                                            (np.float32, "float32 pixels outside 0..1")])
def test_tiffs_without_a_standard_range_are_refused(tmp_path, dtype, message):
    path = tmp_path / "x.tif"
    assert cv2.imwrite(str(path), np.full((40, 30, 3), 200, dtype))
    with pytest.raises(DataFormatError, match=message):
        read_image(path, max_pixels=None)


def test_transparent_pixels_blend_over_white_exactly(tmp_path):
    bgra = np.zeros((3, 4, 4), np.uint8)
    bgra[..., 0], bgra[..., 3] = 100, [[0], [128], [255]]
    path = tmp_path / "a.png"
    cv2.imwrite(str(path), bgra)
    rgb = read_image(path)
    alpha = bgra[..., 3].astype(float) / 255
    expected = np.round(100 * alpha + 255 * (1 - alpha))  # the blue channel
    assert np.abs(rgb[..., 2].astype(int) - expected).max() <= 1 and (rgb[0] == 255).all()


def test_a_huge_csv_header_line_is_refused_early(tmp_path):
    path = tmp_path / "bomb.csv.gz"
    path.write_bytes(gzip.compress(b"a" * (3 << 20)))
    with pytest.raises(DataFormatError, match="the first line is over 1048576 bytes"):
        read(path)


def test_trailing_blank_lines_cost_nothing(tmp_path):
    path, text = _ytf68_csv(tmp_path)
    gz = path.with_suffix(".csv.gz")
    gz.write_bytes(gzip.compress(text.encode() + b"\n" * 2_000_000))
    assert len(read(gz, load_images=False)) == 2


def test_output_names_and_folders(tmp_path, capsys):
    inputs = tmp_path / "in" / "predictions.jsonl"  # an input folder named like the results file
    inputs.mkdir(parents=True)
    cv2.imwrite(str(inputs / "a.jpg"), cv2.cvtColor(demo_frame(), cv2.COLOR_RGB2BGR))
    code, _, _ = run(["predict", tmp_path / "in", "-o", tmp_path / "out", "--quiet"], capsys)
    assert code == 0 and (tmp_path / "out" / "predictions.jsonl").is_file()
    assert (tmp_path / "out" / "predictions.jsonl-2" / "a.jpg").is_file()
    code, _, _ = run(["predict", GRACE_HOPPER, "-o", f"{tmp_path}/dotted.json/", "--quiet"], capsys)
    assert code == 0 and (tmp_path / "dotted.json" / "predictions.jsonl").is_file()  # a trailing / is a folder


@pytest.mark.parametrize("argv, message", [
    (["export", "--opset", "28", "-o", "{tmp}/m.onnx"], "give 9..20"),
    (["bench", "--model", "kaggle15", "--random", "keypoint_net"], "give one"),
    (["train-detector", "--minutes", "inf"], "finite number"),
    (["train-detector", "--imm", ""], "--imm is empty"),
    (["train", "--config", "{tmp}/empty.yaml"], "the config file is empty"),
    (["evaluate", "{tmp}/x.pts", "--boxes", "viola"], "--boxes 'viola' is not one of labels"),
])
def test_round_three_options_are_checked(argv, message, tmp_path, capsys):
    (tmp_path / "empty.yaml").write_text("")
    body = "\n".join(f"{x} {x}" for x in range(10, 78))
    (tmp_path / "x.pts").write_text(f"version: 1\nn_points: 68\n{{\n{body}\n}}\n")
    cv2.imwrite(str(tmp_path / "x.jpg"), np.zeros((100, 100, 3), np.uint8))
    code, _, err = run([part.format(tmp=tmp_path) for part in argv], capsys)
    assert code == 2 and message in err, err


def test_predict_names_a_csv_that_is_not_kaggle(tmp_path, capsys):
    path, text = _ytf68_csv(tmp_path)
    path.write_text(text)
    code, _, err = run(["predict", path, "-o", tmp_path / "k.csv"], capsys)
    assert code == 2 and "a ytf68 CSV; predict reads Kaggle CSVs" in err


def test_a_drop_without_fully_labelled_rows_says_so():
    from facekeypoints.data import handle_missing

    with pytest.raises(ValueError, match="none of its 32 rows is; use missing: mask"):
        handle_missing(_partial(), "drop")


def _partial():
    data = make_faces(32, missing=False)
    data.keypoints[:, 0] = np.nan
    return data


# ---- round 4 ---------------------------------------------------------------------------------------
def test_every_dlib_images_block_is_read(tmp_path):
    cv2.imwrite(str(tmp_path / "a.jpg"), np.zeros((50, 50, 3), np.uint8))
    parts = "".join(f"<part name='{i:02d}' x='{10 + i % 20}' y='{10 + i // 20}'/>" for i in range(68))
    block = f"<images><image file='a.jpg'><box top='5' left='5' width='30' height='30'>{parts}</box></image></images>"
    other = block.replace("a.jpg", "b.jpg")  # one image listed in both blocks would count its faces twice: an error
    (tmp_path / "f.xml").write_text(f"<?xml version='1.0'?>\n<dataset>{block}{other}</dataset>\n")
    assert len(read(tmp_path / "f.xml", load_images=False)) == 2


def test_detector_names_and_ports_are_checked_as_typed(capsys):
    code, _, err = run(["predict", GRACE_HOPPER, "--detector", "HAAR", "--min-face", "30", "-o", "-", "--quiet"],
                       capsys)
    assert code == 0, err  # HAAR is haar, sizing options included
    code, _, err = run(["serve", "--port", "70000"], capsys)
    assert code == 2 and "must be 1..65535, got 70000" in err
    code, _, err = run(["serve", "--host", "999.1.1.1"], capsys)
    assert code == 2 and "--host '999.1.1.1': not an address" in err
    code, _, err = run(["serve", "--model", "kaggle15", "--model", "kaggle15=ibug68"], capsys)
    assert code == 2 and "the name 'kaggle15' is already served" in err


def test_train_detector_checks_its_paths_before_reading_photos(tmp_path, capsys):
    (tmp_path / "afile").write_text("x")
    code, _, err = run(["train-detector", "--imm", tmp_path / "none", "--minutes", "1"], capsys)
    assert code == 2 and "--imm" in err and "no such file or folder" in err
    code, _, err = run(["train-detector", "--ytf68", tmp_path / "afile", "--imm", tmp_path / "afile",
                        "--out", tmp_path / "afile", "--minutes", "1"], capsys)
    assert code == 2 and "afile: exists and is not a folder" in err


def test_dlib_searches_a_large_photo_shrunk_and_answers_in_its_pixels():
    pytest.importorskip("dlib")
    from facekeypoints.infer.detectors import DlibDetector

    photo = read_image(GRACE_HOPPER)
    big = cv2.resize(photo, (photo.shape[1] * 4, photo.shape[0] * 4))  # 2048 x 2400: over max_side 1280
    small_boxes = DlibDetector(upsample=0).detect(photo)
    big_boxes = DlibDetector(upsample=0, max_side=1280).detect(big)
    assert len(small_boxes) == len(big_boxes) == 1
    assert np.allclose(big_boxes[0, :4] / 4, small_boxes[0, :4], atol=12)  # the same face, in the big photo's pixels
