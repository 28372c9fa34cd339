"""Round 10 of the CLI audit: options that were accepted and then ignored (evaluate --device with an
.onnx model, export --format pt --opset/--device, predict --no-draw/--overwrite with a file output,
cnn --min-face under 8), models --size below a family's smallest input, and help text."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

from fakes import grace_hopper_copy, run_cli


@pytest.fixture(scope="module")
def onnx_model(model, tmp_path_factory):
    from facekeypoints.infer.onnx import export_onnx

    return export_onnx(model, tmp_path_factory.mktemp("onnx") / "mean.onnx")


# ---- 1. evaluate --device with an .onnx model ------------------------------------------------------
@pytest.mark.parametrize("device", ["cuda", "cuda:1", "mps"])
@pytest.mark.parametrize("split", [False, True])
def test_evaluate_onnx_refuses_a_gpu_device(onnx_model, tiny_csv, capsys, device, split):
    where = ["--split", "val"] if split else [tiny_csv]
    code, out, err = run_cli(["evaluate", *where, "--model", onnx_model, "--device", device], capsys)
    assert code == 2, err
    assert f"--device {device}: an .onnx model runs in ONNX Runtime on the CPU; pass the .pt checkpoint" in err


def test_evaluate_onnx_refuses_a_bogus_device(onnx_model, tiny_csv, capsys):
    code, out, err = run_cli(["evaluate", tiny_csv, "--model", onnx_model, "--device", "bogus"], capsys)
    assert code == 2 and "device 'bogus' is not one of" in err, err


def test_evaluate_onnx_on_the_cpu_still_scores(onnx_model, tiny_csv, capsys):
    code, out, err = run_cli(["evaluate", tiny_csv, "--model", onnx_model, "--device", "cpu"], capsys)
    assert code == 0 and "rmse" in out, err


# ---- 2. export --format pt with --opset / --device ---------------------------------------------------
@pytest.mark.parametrize("flags, said", [(["--opset", "13"], "--opset applies to --format onnx"),
                                         (["--device", "cpu"], "--device applies to --format onnx"),
                                         (["--opset", "17", "--device", "cuda"], "--opset and --device apply to")])
def test_export_pt_refuses_onnx_options(model, tmp_path, capsys, flags, said):
    code, out, err = run_cli(["export", "--model", model, "--format", "pt", "-o", tmp_path / "m.pt", *flags], capsys)
    assert code == 2 and said in err, err
    assert not (tmp_path / "m.pt").exists()


def test_export_pt_without_onnx_options_still_writes(model, tmp_path, capsys):
    code, out, err = run_cli(["export", "--model", model, "--format", "pt", "-o", tmp_path / "m.pt"], capsys)
    assert code == 0 and (tmp_path / "m.pt").is_file(), err


# ---- 7. export -o NAME.onnx/ ---------------------------------------------------------------------------
def test_export_trailing_slash_is_a_folder_not_a_file(model, tmp_path, capsys):
    code, out, err = run_cli(["export", "--model", model, "-o", f"{tmp_path / 'dir.onnx'}/"], capsys)
    assert code == 2 and "a folder (it ends with /)" in err, err
    assert not (tmp_path / "dir.onnx").exists()


# ---- 3, 4. the cnn detector's --min-face and its search-limit warning -------------------------------------
def test_cnn_min_face_under_8_is_refused(model, tmp_path, capsys):
    photo = grace_hopper_copy(tmp_path / "photo.jpg")
    code, out, err = run_cli(["predict", photo, "--model", model, "--detector", "cnn", "--min-face", "5",
                              "-o", tmp_path / "out/"], capsys)
    assert code == 2 and "--min-face must be at least 8 pixels, got 5" in err, err


def test_cnn_detector_refuses_min_face_under_8():
    from facekeypoints.infer.detectors import CnnDetector

    with pytest.raises(ValueError, match="min_face must be at least 8 pixels, got 7"):
        CnnDetector(min_face=7)
    CnnDetector(min_face=8)  # 16 px / 2x: the smallest the search can honour


def test_cnn_warning_names_max_side_when_min_face_was_not_given(monkeypatch):
    from facekeypoints.infer.detectors import CnnDetector

    monkeypatch.setattr(CnnDetector, "MAX_SEARCH_PIXELS", 10_000)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        CnnDetector(max_side=480).detect(np.zeros((200, 200, 3), np.uint8))
    said = " ".join(str(w.message) for w in caught)
    assert "max_side 480 would need" in said and "min_face None" not in said, said


def test_cnn_warning_names_min_face_when_it_set_the_search(monkeypatch):
    from facekeypoints.infer.detectors import CnnDetector

    monkeypatch.setattr(CnnDetector, "MAX_SEARCH_PIXELS", 10_000)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        CnnDetector(max_side=16, min_face=10, coarse=None).detect(np.zeros((200, 200, 3), np.uint8))
    said = " ".join(str(w.message) for w in caught)
    assert "min_face 10 would need" in said, said


# ---- 5. models --size below a family's smallest input -----------------------------------------------------
def test_models_named_refuses_a_size_too_small(capsys):
    code, out, err = run_cli(["models", "simple_cnn", "--size", "8"], capsys)
    assert code == 2 and "--size 8: simple_cnn needs at least 16 pixels" in err, err


def test_models_all_lists_those_that_fit(capsys):
    code, out, err = run_cli(["models", "--size", "8"], capsys)
    assert code == 0, err
    assert "fcnn" in out and "simple_cnn" not in out
    assert "simple_cnn 16" in err and "face_cnn 32" in err


@pytest.mark.parametrize("name", ["cnn7m", "densenet121_tl", "face_cnn", "resnet50_aa", "simple_cnn", "resnet18"])
def test_min_input_sizes_are_each_familys_smallest(name):
    from facekeypoints.models import model_info
    from facekeypoints.models.registry import MIN_INPUT_SIZES

    least = MIN_INPUT_SIZES[name]
    assert model_info(name, input_size=least)["input_size"] == least
    with pytest.raises(ValueError, match=f"input_size {least - 1}: {name} needs at least {least} pixels"):
        model_info(name, input_size=least - 1)


# ---- 6. predict --no-draw / --overwrite with a file or stdout output ---------------------------------------
@pytest.mark.parametrize("target", ["out.csv", "out.jsonl", "out.json", "-"])
@pytest.mark.parametrize("flag, said", [("--no-draw", "--no-draw applies to a folder output"),
                                        ("--overwrite", "--overwrite applies to a folder output")])
def test_predict_file_output_refuses_folder_options(model, tmp_path, capsys, target, flag, said):
    photo = grace_hopper_copy(tmp_path / "photo.jpg")
    out = target if target == "-" else tmp_path / target
    code, stdout, err = run_cli(["predict", photo, "--model", model, "-o", out, flag], capsys)
    assert code == 2 and said in err, err
    assert target == "-" or not out.exists()


def test_predict_kaggle_csv_to_a_file_refuses_overwrite(model, tiny_csv, tmp_path, capsys):
    code, out, err = run_cli(["predict", tiny_csv, "--model", model, "-o", tmp_path / "k.csv", "--overwrite"], capsys)
    assert code == 2 and "--overwrite applies to a folder output" in err, err


# ---- 7. help text and grammar --------------------------------------------------------------------------
def test_evaluate_one_photo_option_says_applies(tiny_csv, model, tmp_path, capsys):
    code, out, err = run_cli(["evaluate", tiny_csv, "--model", model, "--report", tmp_path / "rep"], capsys)
    assert code == 2 and "--report applies to photo datasets" in err, err


def test_data_verify_help_has_its_own_examples(capsys):
    code, out, err = run_cli(["data", "verify", "--help"], capsys)
    assert code == 0 and "data verify" in out and "data info" not in out


def test_data_convert_size_help_says_96_only(capsys):
    code, out, err = run_cli(["data", "convert", "--help"], capsys)
    assert code == 0 and "96 only" in " ".join(out.split())
