"""Round 5 of fresh bad inputs for inference and the Python API: each case once ended in a raw
library error naming no file, a silent wrong result (a black 12-bit PGM, a white 16-bit PIL image,
NaN keypoints) or a run over 1 GB; each now ends in a result, a warning or a message naming what is
wrong (the auditor's repro scripts built the same inputs from ../shared/data; these are synthetic).
"""
from __future__ import annotations

import copy
import json
import math
import warnings

import cv2
import numpy as np
import onnx
import pytest
import torch
from PIL import Image

from facekeypoints import KeypointDetector
from facekeypoints.cli import main
from facekeypoints.data import DataFormatError
from facekeypoints.data.images import OVER_LIMIT, read_image
from facekeypoints.infer import bench
from facekeypoints.infer.detectors import CnnDetector, HaarDetector
from facekeypoints.infer.inputs import to_rgb
from facekeypoints.infer.onnx import CARD_KEY, OnnxRunner, export_onnx
from facekeypoints.schema import load_schema
from fakes import mean_face_checkpoint


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    folder = tmp_path_factory.mktemp("round5api")
    return export_onnx(mean_face_checkpoint(folder / "mean.pt"), folder / "mean.onnx")


@pytest.fixture(scope="module")
def detector(exported):
    return KeypointDetector(exported)


# ---- A: an edited model card is checked against the graph when the file is opened ----------------

def _card_edit(change):
    def edit(model):
        for entry in model.metadata_props:
            if entry.key == CARD_KEY:
                card = json.loads(entry.value)
                change(card)
                entry.value = json.dumps(card)
    return edit


def _size(card, n):
    card["input_size"] = card["preprocess"]["size"] = n


def _channels(card):
    card["in_channels"] = card["preprocess"]["channels"] = 3


def _fixed_batch(model):
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 1


@pytest.mark.parametrize("edit, message", [
    (_card_edit(lambda c: _size(c, 20000)), r"input is \(N, 1, 20000, 20000\) but the graph takes \(N, 1, 96, 96\)"),
    (_card_edit(lambda c: _size(c, 64)), r"input is \(N, 1, 64, 64\) but the graph takes \(N, 1, 96, 96\)"),
    (_card_edit(_channels), r"input is \(N, 3, 96, 96\) but the graph takes \(N, 1, 96, 96\)"),
    (_card_edit(lambda c: c.update(schema=load_schema("ibug68").to_dict())),
     r"schema ibug68 has 68 keypoints, so the output should be \(N, 68, 2\), but the graph gives \(N, 15, 2\)"),
    (_fixed_batch, r"fixed batch of 1 .*dynamic batch axis"),
])
def test_an_onnx_card_that_disagrees_with_its_graph_is_named_when_opened(tmp_path, exported, edit, message):
    model = copy.deepcopy(onnx.load(str(exported)))
    edit(model)
    onnx.save(model, str(tmp_path / "edited.onnx"))
    with pytest.raises(ValueError, match=r"edited\.onnx: .*" + message):
        OnnxRunner(tmp_path / "edited.onnx")
    with pytest.raises(ValueError, match=r"edited\.onnx: "):  # the front door too, before any image is cut
        KeypointDetector(tmp_path / "edited.onnx")


# ---- B: bench with an ONNX model, and strict JSON -------------------------------------------------

def test_bench_of_an_onnx_model_times_onnx_only_and_writes_null_for_unmeasured_jitter(tmp_path, exported,
                                                                                       monkeypatch):
    monkeypatch.setattr(bench, "keypoint_jitter", lambda results: float("nan"))  # no pair of one-face frames
    lines = []
    report = bench.run_bench(exported, threads=1, batch=2, repeats=1, jitter_frames=2,
                             json_out=tmp_path / "b.json", echo=lines.append)
    assert set(report["backends"]) == {"onnx"}
    assert any("torch  model: skipped (the model is an ONNX file" in line for line in lines)
    assert any("not measured" in line for line in lines) and not any("nan" in line for line in lines)
    text = (tmp_path / "b.json").read_text()
    written = json.loads(text, parse_constant=lambda c: pytest.fail(f"bare {c} in the JSON"))
    assert written["jitter"]["jitter_px_raw"] is None and written["jitter"]["jitter_px_smoothed"] is None


def test_bench_refuses_a_one_frame_jitter_clip_before_measuring(tmp_path, capsys):
    with pytest.raises(ValueError, match="--jitter-frames must be 0 .* or at least 2, got 1"):
        bench.run_bench(jitter_frames=1, echo=pytest.fail)
    assert main(["bench", "--jitter-frames", "1", "--json", str(tmp_path / "b.json")]) == 2
    assert "at least 2" in capsys.readouterr().err and not (tmp_path / "b.json").exists()


# ---- C: PGM/PPM scaled by their maxval ------------------------------------------------------------

@pytest.mark.parametrize("magic, maxval", [(b"P5", 4095), (b"P5", 100), (b"P6", 1000), (b"P2", 4095), (b"P3", 100)])
def test_pgm_and_ppm_are_scaled_by_their_maxval(tmp_path, magic, maxval):
    pattern = np.arange(256).reshape(16, 16)
    channels = 3 if magic in (b"P3", b"P6") else 1
    stored = np.repeat(np.round(pattern / 255 * maxval).astype(int)[..., None], channels, axis=2)
    if magic in (b"P5", b"P6"):
        body = stored.astype(">u2" if maxval > 255 else "u1").tobytes()
    else:
        body = " ".join(map(str, stored.ravel().tolist())).encode() + b"\n"
    path = tmp_path / f"sensor.{'ppm' if channels == 3 else 'pgm'}"
    path.write_bytes(magic + b"\n16 16\n%d\n" % maxval + body)
    image = read_image(path)
    expected = np.round(stored[..., 0] * 255 / maxval)  # a 12-bit 4095 is white, not 16/255 grey
    assert image.shape == (16, 16, 3) and (image == expected[..., None]).all()


# ---- D: multi-page and animated files: the first page or frame, said -----------------------------

def test_a_two_page_tiff_and_a_two_frame_gif_give_the_first_with_a_warning(tmp_path):
    first, second = Image.new("RGB", (20, 10), (200, 30, 30)), Image.new("RGB", (20, 10), (30, 30, 200))
    first.save(tmp_path / "pages.tif", save_all=True, append_images=[second])
    first.save(tmp_path / "anim.gif", save_all=True, append_images=[second], duration=100)
    for name, kind in (("pages.tif", "pages"), ("anim.gif", "frames")):
        with pytest.warns(UserWarning, match=rf"{name}: has 2 {kind}; only the first is used \(split it"):
            image = read_image(tmp_path / name)
        assert abs(image[5, 10].astype(int) - [200, 30, 30]).max() <= 3  # the first page
    first.save(tmp_path / "one.tif")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # one page: nothing to say
        read_image(tmp_path / "one.tif")


# ---- E: PIL images of 16 bits or floats, and NaN pixels -------------------------------------------

def test_16_bit_and_float_pil_images_give_what_the_file_gives_by_path(tmp_path):
    grey = np.random.default_rng(0).integers(0, 256, (12, 16)).astype(np.uint8)
    cv2.imwrite(str(tmp_path / "g16.png"), grey.astype(np.uint16) * 257)
    by_path = read_image(tmp_path / "g16.png")
    with Image.open(tmp_path / "g16.png") as im:
        assert im.mode.startswith("I;16")
        assert (to_rgb(im)[0] == by_path).all()  # not saturated to white
    deep = Image.fromarray(grey.astype(np.int32) * 257, "I")
    with pytest.raises(ValueError, match="no file to say their range"):  # mode "I" in memory: 16-bit or not? (round 8)
        to_rgb(deep)
    assert (to_rgb(deep.convert("I;16"))[0] == by_path).all()  # what the error advises
    assert (to_rgb(Image.fromarray(grey.astype(np.float32) / 255, "F"))[0] == by_path).all()
    with pytest.raises(ValueError, match="PIL image in mode F: float32 pixels outside 0..1"):
        to_rgb(Image.fromarray(grey.astype(np.float32), "F"))


def test_non_finite_pixels_are_refused(tmp_path):
    tensor = torch.full((3, 8, 8), 0.5)
    tensor[0, 1, 1] = float("nan")
    with pytest.raises(ValueError, match="tensor holds NaN or infinite values"):
        to_rgb(tensor)
    tensor[0, 1, 1] = float("inf")
    with pytest.raises(ValueError, match="tensor holds NaN or infinite values"):
        to_rgb(tensor)
    floats = np.full((8, 8, 3), 0.5, np.float32)
    floats[2, 2] = np.nan
    cv2.imwrite(str(tmp_path / "nan.tif"), floats)  # Pillow cannot size it: read only without the limit
    with pytest.raises(DataFormatError, match="nan.tif: cannot use image: float32 pixels include NaN"):
        read_image(tmp_path / "nan.tif", max_pixels=None)


# ---- F: the Python API names the bad item and checks its numbers ----------------------------------

def test_predict_batch_names_the_bad_item(detector):
    good = np.zeros((40, 50, 3), np.uint8)
    with pytest.raises(ValueError, match=r"item 1 of 3: an image must be .* got shape \(0, 3\)"):
        detector.predict_batch([good, np.zeros((0, 3), np.uint8), good])
    with pytest.raises(TypeError, match="item 2 of 3: cannot read an image from NoneType"):
        detector.predict_batch([good, good, None])
    with pytest.raises(FileNotFoundError, match="item 0 of 2: .*missing.jpg: no such image file"):
        detector.predict_batch(["missing.jpg", good])
    with pytest.raises(ValueError, match=r"^an image must be"):  # one image: no index to give
        detector(np.zeros((0, 3), np.uint8))


@pytest.mark.parametrize("options, error, message", [
    ({"beta": float("nan")}, ValueError, "finite min_cutoff > 0 .* beta=nan"),
    ({"min_cutoff": float("inf")}, ValueError, "min_cutoff=inf"),
    ({"min_cutoff": 0}, ValueError, "min_cutoff=0"),
    ({"beta": -1}, ValueError, "beta=-1"),
    ({"redetect_every": 2.5}, ValueError, "redetect_every must be a whole number"),
])
def test_stream_checks_its_smoothing_options_at_the_call(detector, options, error, message):
    with pytest.raises(error, match=message):
        detector.stream("never-opened.avi", **options)


def test_stream_of_none_is_a_clear_type_error(detector):
    with pytest.raises(TypeError, match="stream\\(\\) reads a video path or an open cv2.VideoCapture, got NoneType"):
        detector.stream(None)


@pytest.mark.parametrize("box_frame", [(0, 0, float("inf")), (float("nan"), 0, 1.2), (0, 0, 0), (0, 0), 5, ("a", 0, 1)])
def test_box_frame_must_be_finite_with_a_positive_side(exported, box_frame):
    with pytest.raises(ValueError, match="box_frame must be \\(dx, dy, side\\), finite numbers with side > 0"):
        KeypointDetector(exported, box_frame=box_frame)


# ---- G: memory: the decoded size is limited from the header, detectors search a bounded image -----

@pytest.mark.parametrize("name, pixels, what", [
    ("rgb16.png", np.zeros((6, 10, 3), np.uint16), "16-bit RGB"),
    ("rgb16.tif", np.zeros((6, 10, 3), np.uint16), "16-bit RGB"),
    ("rgba8.png", np.zeros((8, 10, 4), np.uint8), "8-bit RGBA"),
    ("grey16.png", np.zeros((6, 10), np.uint16), "16-bit RGB"),  # OpenCV decodes grey as three channels
])
def test_an_image_whose_decoded_pixels_are_too_large_is_refused_from_its_header(tmp_path, name, pixels, what):
    path = tmp_path / name
    cv2.imwrite(str(path), pixels)  # 60 or 80 pixels: under max_pixels=100, over its 300 bytes once decoded
    need = math.ceil(pixels.shape[0] * pixels.shape[1] * (4 if "RGBA" in what else 3) * pixels.itemsize / 3)
    with pytest.raises(DataFormatError, match=rf"{name}: image is 10x{pixels.shape[0]}, decoded as {what}: .* "
                                              rf"max_pixels={need} \(predict's --max-pixels {need}\) reads it") as err:
        read_image(path, max_pixels=100)
    assert OVER_LIMIT in str(err.value)  # the server answers 413 for it, as for too many pixels
    assert read_image(path, max_pixels=need).shape == (pixels.shape[0], 10, 3)
    cv2.imwrite(str(tmp_path / "rgb8.png"), np.zeros((10, 10, 3), np.uint8))
    assert read_image(tmp_path / "rgb8.png", max_pixels=100).shape == (10, 10, 3)  # 8-bit RGB: the pixel limit only


class _Recording:
    """Stands in for an OpenCV cascade: records the size of the image it is asked to search."""

    def __init__(self):
        self.shapes = []

    def detectMultiScale3(self, gray, **options):  # noqa: N802 (OpenCV's name)
        self.shapes.append(gray.shape)
        return (), (), ()


def test_haar_search_with_a_small_min_face_is_bounded_and_says_what_it_cannot_find():
    haar = HaarDetector(min_face=24)
    haar.MAX_SEARCH_PIXELS = 30_000  # a 400x300 image with min_face 24 would be searched whole: 120000
    haar.classifier = _Recording()
    with pytest.warns(RuntimeWarning, match=r"faces under 48 px cannot be found in this 400x300 image \(the haar "
                                            r"detector searches at most 0.03 MP; min_face 24 would need 0.12 MP\)"):
        assert haar.detect(np.zeros((300, 400, 3), np.uint8)).shape == (0, 5)
    assert haar.classifier.shapes == [(150, 200)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # within the bound: nothing to say
        haar.detect(np.zeros((150, 200, 3), np.uint8))


def test_cnn_search_with_a_small_min_face_is_bounded_and_says_what_it_cannot_find():
    cnn = CnnDetector(min_face=16, coarse=None)  # the shipped detector is part of the package: no skip
    cnn.MAX_SEARCH_PIXELS = 30_000
    seen, run = [], cnn.session.run
    cnn.session.run = lambda names, feed: seen.append(feed["image"].shape) or run(names, feed)
    with pytest.warns(RuntimeWarning, match=r"faces under 32 px cannot be found in this 400x300 image \(the cnn "):
        cnn.detect(np.zeros((300, 400, 3), np.uint8))
    assert seen[0][2:] == (160, 208)  # 150x200, padded to multiples of 16
