"""Round 6 of fresh bad inputs for ``predict`` and the inference API: each case once replaced a file
without --overwrite, found a bad output place midway, or answered odd input with nonsense or an
OpenCV assertion; each now fails at once with a line naming what is wrong (synthetic files only).
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from matplotlib import cbook
from PIL import Image

from facekeypoints.infer.files import predict_paths, predict_video
from facekeypoints.infer.predictor import KeypointDetector
from facekeypoints.infer.results import IMAGE_SUFFIXES
from fakes import run_cli, still_clip as clip

GRACE_HOPPER = Path(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))  # 512x600, one face haar finds


def run(argv, capsys) -> tuple[int, str, str]:
    return run_cli(argv, capsys, forbidden=("Traceback",))


def photo(path: Path, other: bool = False) -> Path:
    """Grace Hopper, or (``other``) a grey picture: two photos whose bytes differ."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if other:
        cv2.imwrite(str(path), np.full((40, 50, 3), 90, np.uint8))
    else:
        shutil.copy(GRACE_HOPPER, path)
    return path


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# ---- 4, 5, 6, 8: a folder run replaces nothing without --overwrite, and checks its places first -----
def test_a_video_only_run_holds_its_folder(tmp_path, model, capsys):
    out = tmp_path / "out"
    argv = ["-o", f"{out}/", "--model", model, "--quiet"]
    assert run(["predict", clip(tmp_path / "clip.avi"), *argv], capsys)[0] == 0
    before = snapshot(out)
    assert sorted(before) == ["clip.jsonl", "clip_keypoints.mp4"]  # no image: no predictions.jsonl

    second = clip(tmp_path / "other" / "clip.avi", frames=2)
    code, _, err = run(["predict", second, *argv], capsys)
    assert code == 2 and f"{out / 'clip.jsonl'}: exists" in err and "--overwrite" in err, err
    assert snapshot(out) == before

    assert run(["predict", second, *argv, "--overwrite"], capsys)[0] == 0
    assert len((out / "clip.jsonl").read_text().splitlines()) == 2


def test_a_folder_where_a_drawing_goes_fails_before_any_frame(tmp_path, model, capsys):
    out = tmp_path / "out"
    (out / "clip_keypoints.mp4").mkdir(parents=True)
    for extra in ([], ["--overwrite"]):  # --overwrite replaces files, never a folder
        code, _, err = run(["predict", clip(tmp_path / "clip.avi"), "-o", out, "--model", model, "--quiet", *extra],
                           capsys)
        assert code == 2 and f"{out / 'clip_keypoints.mp4'}: is a folder" in err, err
        assert sorted(p.name for p in out.iterdir()) == ["clip_keypoints.mp4"]  # the claim is given back


def test_a_photo_in_the_output_subfolder_is_not_replaced(tmp_path, model, capsys):
    photo(tmp_path / "ph2" / "a.jpg")
    kept = photo(tmp_path / "ph2" / "sub" / "a.jpg", other=True).read_bytes()
    argv = ["predict", tmp_path / "ph2", "-o", tmp_path / "ph2" / "sub", "--model", model, "--quiet"]
    code, _, err = run(argv, capsys)
    assert code == 2 and f"{tmp_path / 'ph2' / 'sub' / 'a.jpg'}: exists" in err, err
    assert (tmp_path / "ph2" / "sub" / "a.jpg").read_bytes() == kept
    assert not (tmp_path / "ph2" / "sub" / "predictions.jsonl").exists()

    code, stdout, _ = run(argv + ["--overwrite"], capsys)  # --overwrite means replace
    assert code == 0 and "(the output folder)" in stdout
    assert (tmp_path / "ph2" / "sub" / "a.jpg").read_bytes() != kept


def test_a_file_in_the_output_folder_is_not_replaced_by_a_drawing(tmp_path, model, capsys):
    photo(tmp_path / "par" / "new" / "x.jpg")
    kept = photo(tmp_path / "par" / "x.jpg", other=True).read_bytes()
    code, _, err = run(["predict", tmp_path / "par" / "new", "-o", tmp_path / "par", "--model", model, "--quiet"],
                       capsys)
    assert code == 2 and f"{tmp_path / 'par' / 'x.jpg'}: exists" in err, err
    assert (tmp_path / "par" / "x.jpg").read_bytes() == kept


# ---- 7: a file output that is an input ------------------------------------------------------------
def test_a_results_file_that_is_also_an_input_is_refused(tmp_path, model, capsys):
    results = tmp_path / "results.jsonl"
    results.write_text('{"old": "precious results"}\n')
    code, _, err = run(["predict", photo(tmp_path / "face.jpg"), results, "-o", results, "--model", model,
                        "--quiet"], capsys)
    assert code == 2 and f"{results}: is also an input" in err, err
    assert results.read_text() == '{"old": "precious results"}\n'


# ---- 10: .jfif and .jpe are JPEGs --------------------------------------------------------------------
def test_jfif_and_jpe_photos_in_a_folder_are_predicted(tmp_path, model, capsys):
    assert {".jfif", ".jpe", ".gif", ".pnm"} <= set(IMAGE_SUFFIXES)
    for name in ("a.jfif", "b.jpe"):
        photo(tmp_path / "jf" / name)
    out = tmp_path / "out"
    code, stdout, _ = run(["predict", tmp_path / "jf", "-o", out, "--model", model, "--quiet"], capsys)
    assert code == 0 and "2 images" in stdout and "ignored" not in stdout, stdout
    assert sorted(p.name for p in out.iterdir()) == ["a.jfif", "b.jpe", "predictions.jsonl"]
    assert cv2.imread(str(out / "a.jfif")) is not None  # a JPEG under its own name


# ---- 15: boxes far larger than the image ------------------------------------------------------------
@pytest.mark.parametrize("box", [[0, 0, 1e300, 1e300], [0, 0, 1e9, 1e9], [-1e6, -1e6, 1e6, 1e6],
                                 [-1e308, -1e308, 1e308, 1e308]])
def test_a_box_far_larger_than_the_image_is_refused(model, box):
    boxless = KeypointDetector(model, backend="torch", detector=None)
    image = np.zeros((60, 80, 3), np.uint8)
    with pytest.raises(ValueError, match=r"boxes for <array 60x80> row 0 .* over 10 times the 80x60 image"):
        boxless(image, boxes=[box])
    assert len(boxless(image, boxes=[[-40, -40, 200, 200]])) == 1  # a face cut by the edges is still one


# ---- 16, 17: a path where a list goes; no out_dir --------------------------------------------------
def test_one_path_where_a_list_goes(tmp_path, det):
    face = photo(tmp_path / "c.jpg")
    report = predict_paths(det, str(face), tmp_path / "o.jsonl", progress=False)
    assert report.images == 1 and not report.failures, report
    assert json.loads((tmp_path / "o.jsonl").read_text())["source"] == str(face)
    with pytest.raises(TypeError, match="takes a list of images, got one str; .*detector\\(image\\)"):
        det.predict_batch(str(face))
    with pytest.raises(TypeError, match="needs out_dir"):
        predict_video(det, clip(tmp_path / "clip.avi"), None, draw=False, progress=False)


# ---- 18, 19: odd images, generators, float frames, PGM ---------------------------------------------
def test_odd_images_are_named_errors_or_read(tmp_path, det):
    with pytest.raises(ValueError, match="PIL image of size 0x0"):
        det(Image.new("RGB", (0, 0)))
    with pytest.raises(ValueError, match=r"empty tensor of shape \(3, 0, 5\)"):
        det(torch.zeros(3, 0, 5))
    face = np.asarray(Image.open(GRACE_HOPPER).convert("RGB"))
    tensor = torch.from_numpy(face.copy()).permute(2, 0, 1)
    assert det(tensor.bfloat16() / 255).image_size == face.shape[:2]  # widened to float32, as the model takes
    assert [len(r) for r in det.predict_batch(x for x in [face, face])] == [1, 1]

    class FloatFrames:  # a capture of the wrong kind of frame
        def read(self):
            return True, np.zeros((60, 80, 3), np.float32)

        def get(self, prop):
            return 0.0

        def isOpened(self):  # noqa: N802
            return True

    with pytest.raises(ValueError, match="<capture> frame 0: numpy images must be uint8"):
        next(det.stream(FloatFrames()))


def test_a_drawing_saves_as_pgm(tmp_path, det):
    face = np.asarray(Image.open(GRACE_HOPPER).convert("RGB"))
    path = det(face).save(tmp_path / "x.pgm", image=face.copy())
    grey = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert grey.shape == face.shape[:2]


def test_a_pil_image_is_turned_by_its_exif_orientation_as_the_file_is(tmp_path):
    from PIL import Image

    from facekeypoints.data.images import read_image
    from facekeypoints.infer.inputs import to_rgb

    upright = Image.new("RGB", (40, 20), (200, 30, 30))
    upright.paste((30, 200, 30), (0, 0, 10, 20))  # a green band on the left
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 clockwise to view"
    path = tmp_path / "side.jpg"
    upright.save(path, exif=exif, quality=95)
    by_path = read_image(path)
    by_pil, _ = to_rgb(Image.open(path))
    assert by_path.shape == by_pil.shape == (40, 20, 3)
    assert np.abs(by_path.astype(int) - by_pil.astype(int)).mean() < 3
