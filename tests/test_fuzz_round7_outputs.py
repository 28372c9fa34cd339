"""Round 7 of fresh bad inputs for ``predict``'s outputs: legal file names (up to 255 bytes) whose
temporary or derived output name was too long lost their drawing, or stopped the whole run with an
OSError and left the folder's claim behind; a Kaggle CSV predicted into a folder replaced an
existing ``<stem>_keypoints.csv`` without --overwrite; a photo's drawing and another input's
drawing folder shared a name, found only at write time; ``bench --json -`` wrote a file named
``-``; a Kaggle CSV with ``-o dir.csv/`` got a wrong message and took ``--detector bogus``
silently; an empty input folder exited 0 without a word.

Now temporary names are cut to the file-name limit, an output name that is too long is a failure
of that file found before any work (the others are predicted), any error during the check gives
the claim back, every planned output (a Kaggle CSV's too) is replaced only with --overwrite, no
output file takes the name of an output folder, and the rest is said or refused in one line
(synthetic files only)."""
from __future__ import annotations

import json
import os
from pathlib import Path

import cv2
import pytest
from matplotlib import cbook

from facekeypoints.atomic import atomic_path, check_target, name_problem
from facekeypoints.infer import files as files_module
from facekeypoints.infer.files import predict_paths
from fakes import grace_hopper_copy as photo, make_faces, run_cli, still_clip as clip

GRACE_HOPPER = Path(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))  # 512x600, one face haar finds


def run(argv, capsys) -> tuple[int, str, str]:
    return run_cli(argv, capsys, forbidden=("Traceback", "--debug"))


def kaggle_test_csv(path: Path, rows: int) -> Path:
    """A Kaggle test.csv (ImageId,Image: 96*96 pixels as space-separated text)."""
    images = make_faces(rows).images
    path.write_text("ImageId,Image\n" + "".join(f"{i + 1},{' '.join(map(str, im.reshape(-1)))}\n"
                                                for i, im in enumerate(images)))
    return path


def sources(jsonl: Path) -> list[str]:
    return [json.loads(line)["source"] for line in jsonl.read_text().splitlines()]


def listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


# ---- F1: names that are legal but whose temporary or derived output name is not -----------------------
def test_a_temporary_name_stays_within_the_name_limit(tmp_path):
    target = tmp_path / ("t" * 251 + ".txt")  # 255 bytes: legal, so its ".<name>.<pid>-<n>.tmp" is not
    with atomic_path(target) as tmp:
        assert len(os.fsencode(tmp.name)) <= 255 and tmp.name.startswith(".ttt") and tmp.parent == tmp_path
        tmp.write_text("done")
    assert target.read_text() == "done" and listing(tmp_path) == [target.name]
    accented = tmp_path / ("é" * 126 + ".t")  # 254 bytes, mostly 2-byte characters: cut by characters
    with atomic_path(accented) as tmp:
        assert len(os.fsencode(tmp.name)) <= 255
        tmp.write_text("done")
    assert accented.read_text() == "done"


def test_an_output_name_over_the_limit_is_refused_before_any_work(tmp_path):
    long = tmp_path / ("n" * 252 + ".gif.png")
    assert "260 bytes long, over the 255 bytes" in name_problem(long)
    assert name_problem(tmp_path / ("n" * 251 + ".png")) is None
    with pytest.raises(ValueError, match="bytes long, over the 255 bytes a file name may have"):
        check_target(long)
    assert listing(tmp_path) == []


def test_a_photo_whose_name_is_near_the_limit_is_drawn(tmp_path, det):
    name = "x" * 246 + ".jpg"  # 250 bytes: the drawing keeps it; its temporary name is cut
    folder = tmp_path / "in"
    photo(folder / name), photo(folder / "ok.jpg")
    report = predict_paths(det, [folder], tmp_path / "out", progress=False)
    assert not report.failures, report
    assert listing(tmp_path / "out") == sorted(["ok.jpg", "predictions.jsonl", name])  # no .tmp left behind


def test_a_drawing_name_over_the_limit_fails_that_file_only_and_the_rest_are_written(tmp_path, det, model, capsys):
    folder = tmp_path / "in"
    photo(folder / "ok.jpg")
    gif = folder / ("g" * 248 + ".gif")  # 252 bytes; its drawing x.gif.png would be 256
    cv2.imwrite(str(folder / "g.png"), cv2.imread(str(GRACE_HOPPER)))
    (folder / "g.png").rename(gif)  # a PNG under a .gif name decodes all the same
    out = tmp_path / "out"
    code, _, err = run(["predict", folder, "-o", out, "--model", model, "--quiet"], capsys)
    assert code == 1 and "FAILED 1 files" in err and f"{gif.name}: its output" in err, err
    assert "bytes long, over the 255 bytes a file name may have here; rename the input" in err, err
    assert listing(out) == ["ok.jpg", "predictions.jsonl"]
    assert sources(out / "predictions.jsonl") == [str(folder / "ok.jpg")]
    # --no-draw writes no drawing, so the name is no problem then
    report = predict_paths(det, [folder], tmp_path / "json", draw=False, progress=False)
    assert not report.failures and report.images == 2


def test_a_video_whose_outputs_are_too_long_fails_alone_and_one_near_the_limit_is_written(tmp_path, det):
    folder = tmp_path / "in"
    photo(folder / "ok.jpg")
    too_long = clip(folder / ("v" * 245 + ".mp4"))  # v..._keypoints.mp4: 259 bytes
    near = clip(folder / ("w" * 240 + ".mp4"))  # w....jsonl 246 and w..._keypoints.mp4 254: fine, temp names cut
    out = tmp_path / "out"
    report = predict_paths(det, [folder], out, progress=False)
    assert [(Path(p).name, "_keypoints.mp4" in why and "bytes long" in why) for p, why in report.failures] == \
        [(too_long.name, True)], report
    assert listing(out) == sorted(["ok.jpg", "predictions.jsonl", near.stem + ".jsonl", near.stem + "_keypoints.mp4"])
    assert len((out / f"{near.stem}.jsonl").read_text().splitlines()) == 3


def test_an_unexpected_error_in_the_check_gives_the_claim_back(tmp_path, det, monkeypatch):
    photo(tmp_path / "in" / "a.jpg")
    out = tmp_path / "out"

    def broken(targets, overwrite):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(files_module, "check_outputs", broken)
    with pytest.raises(OSError, match="Input/output error"):
        predict_paths(det, [tmp_path / "in"], out, progress=False)
    assert listing(out) == []  # no empty predictions.jsonl left to refuse the next run
    monkeypatch.undo()
    report = predict_paths(det, [tmp_path / "in"], out, progress=False)
    assert not report.failures and listing(out) == ["a.jpg", "predictions.jsonl"]


# ---- F2: a Kaggle CSV's output in a folder is replaced only with --overwrite ----------------------------
def test_a_kaggle_csv_into_a_folder_replaces_an_existing_result_only_with_overwrite(tmp_path, model, capsys):
    csv = kaggle_test_csv(tmp_path / "t.csv", 2)
    out = tmp_path / "out"
    out.mkdir()
    (out / "t_keypoints.csv").write_text("MY OWN NOTES\n")
    code, _, err = run(["predict", csv, "-o", f"{out}/", "--model", model], capsys)
    assert code == 2 and "t_keypoints.csv: exists; give --overwrite" in err, err
    assert (out / "t_keypoints.csv").read_text() == "MY OWN NOTES\n"
    code, _, err = run(["predict", csv, "-o", f"{out}/", "--model", model, "--overwrite"], capsys)
    assert code == 0, err
    assert (out / "t_keypoints.csv").read_text().startswith("id,") and listing(out) == ["t_keypoints.csv"]
    # a .csv file named by -o is the user's own choice of file, as for photos: replaced
    code, _, err = run(["predict", csv, "-o", out / "t_keypoints.csv", "--model", model], capsys)
    assert code == 0, err


# ---- F11: a drawing never takes the name of a folder other outputs go into -------------------------------
@pytest.mark.parametrize("folder_first", [False, True])
def test_a_photo_named_like_an_output_folder_is_renamed_before_any_work(tmp_path, det, folder_first):
    single = photo(tmp_path / "X.png")  # upper case: a case-insensitive disk would merge it with x.png/
    other = photo(tmp_path / "in2" / "x.png" / "a.jpg")
    inputs = [tmp_path / "in2", single] if folder_first else [single, tmp_path / "in2"]
    out = tmp_path / "out"
    report = predict_paths(det, inputs, out, progress=False)
    assert not report.failures, report
    assert listing(out) == ["X-2.png", "predictions.jsonl", "x.png", "x.png/a.jpg"]
    assert sorted(sources(out / "predictions.jsonl")) == sorted([str(single), str(other)])


def test_a_video_output_named_like_an_output_folder_is_renamed(tmp_path, det):
    video = clip(tmp_path / "c.mp4")
    photo(tmp_path / "in2" / "c.jsonl" / "a.jpg")
    out = tmp_path / "out"
    report = predict_paths(det, [video, tmp_path / "in2"], out, progress=False)
    assert not report.failures, report
    assert listing(out) == ["c-2.jsonl", "c-2_keypoints.mp4", "c.jsonl", "c.jsonl/a.jpg", "predictions.jsonl"]


# ---- L1: bench --json - writes to standard output ---------------------------------------------------------
def test_bench_json_dash_writes_the_json_to_standard_output(tmp_path, capsys, monkeypatch):
    import facekeypoints.infer.bench as bench

    def fake_run_bench(model=None, *, json_out=None, echo=print, **options):
        assert json_out is None  # not a file named "-"
        echo("torch  model: 1.000 ms/face at batch 1")
        return {"model": "default kaggle15", "backends": {"torch": {"ms_per_face_batch1": 1.0}}}

    monkeypatch.setattr(bench, "run_bench", fake_run_bench)
    monkeypatch.chdir(tmp_path)
    code, out, err = run(["bench", "--json", "-", "--repeats", "1"], capsys)
    assert code == 0 and json.loads(out)["backends"]["torch"]["ms_per_face_batch1"] == 1.0, (out, err)
    assert "ms/face at batch 1" in err and listing(tmp_path) == []


# ---- L2: a Kaggle CSV's -o and detector options ----------------------------------------------------------
def test_a_kaggle_csv_takes_a_dotted_folder_with_a_trailing_slash(tmp_path, model, capsys):
    csv = kaggle_test_csv(tmp_path / "t.csv", 2)
    code, _, err = run(["predict", csv, "-o", f"{tmp_path / 'dir.csv'}/", "--model", model], capsys)
    assert code == 0, err
    assert listing(tmp_path / "dir.csv") == ["t_keypoints.csv"]
    code, _, err = run(["predict", csv, "-o", tmp_path / "k.txt", "--model", model], capsys)
    assert code == 2 and "into a folder (end its name with / if it has a dot)" in err, err
    code, _, err = run(["predict", csv, "-o", tmp_path / "k.json", "--model", model], capsys)
    assert code == 2 and "written as a .csv file" in err, err
    assert not (tmp_path / "k.txt").exists() and not (tmp_path / "k.json").exists()


@pytest.mark.parametrize("options, message", [
    (["--detector", "bogus"], "--detector bogus: not a face detector; choose from haar, dlib, cnn, none"),
    (["--detector", "haar"], "--detector haar: for the face search in photos and videos; a Kaggle CSV's faces"),
    (["--detector", "cnn", "--min-face", "20"], "--detector cnn and --min-face: for the face search"),
    (["--max-side", "100"], "--max-side: for the face search in photos and videos"),
])
def test_face_search_options_with_a_kaggle_csv_are_refused_alike(tmp_path, model, capsys, options, message):
    csv = kaggle_test_csv(tmp_path / "t.csv", 1)
    code, _, err = run(["predict", csv, "-o", tmp_path / "k.csv", "--model", model, *options], capsys)
    assert code == 2 and message in err, err
    assert not (tmp_path / "k.csv").exists()


def test_detector_none_with_a_kaggle_csv_and_a_bad_name_with_photos(tmp_path, model, capsys):
    csv = kaggle_test_csv(tmp_path / "t.csv", 1)
    code, _, err = run(["predict", csv, "-o", tmp_path / "k.csv", "--model", model, "--detector", "NONE"], capsys)
    assert code == 0 and (tmp_path / "k.csv").is_file(), err
    code, _, err = run(["predict", GRACE_HOPPER, "-o", "-", "--model", model, "--detector", "har"], capsys)
    assert code == 2 and "not a face detector" in err and "did you mean haar?" in err, err


# ---- L3: an input folder without an image or video is said, and exits 1 ----------------------------------
def test_an_empty_input_folder_is_a_failure_that_says_so(tmp_path, model, capsys):
    (tmp_path / "empty").mkdir()
    (tmp_path / "texts").mkdir()
    (tmp_path / "texts" / "notes.txt").write_text("no image")
    out = tmp_path / "out"
    code, stdout, err = run(["predict", tmp_path / "empty", tmp_path / "texts", "-o", out, "--model", model,
                             "--quiet"], capsys)
    assert code == 1 and "FAILED 2 files" in err, (stdout, err)
    assert f"{tmp_path / 'empty'}: no image or video found in this folder" in err
    assert f"{tmp_path / 'texts'}: no image or video found in this folder" in err and "notes.txt" in err
    assert not out.exists() or listing(out) == []  # no results: no claim left behind
    # beside a photo, the empty folder is one failure and the photo is predicted
    code, _, err = run(["predict", tmp_path / "empty", GRACE_HOPPER, "-o", out, "--model", model, "--quiet"], capsys)
    assert code == 1 and "FAILED 1 files" in err and listing(out) == ["grace_hopper.jpg", "predictions.jsonl"], err

