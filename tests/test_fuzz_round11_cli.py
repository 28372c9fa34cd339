"""Round 11 of the CLI audit (following the README as a new user): submit with a missing input or
--lookup, data convert --to with a typo, grid's echo of a one-point schema's NME, predict with no
result into a new folder, gpu_smoke.sh without a GPU, README command lines, and --help examples."""
from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from fakes import make_faces, run_cli

ROOT = Path(__file__).resolve().parents[1]


# ---- 1. submit: a missing input or --lookup is named, before any work -------------------------------
@pytest.mark.parametrize("missing", ["input", "lookup"])
def test_submit_names_a_missing_file(tmp_path, tiny_csv, capsys, monkeypatch, missing):
    from facekeypoints.infer import predictor

    def no_model(*args, **kwargs):
        raise AssertionError("the model must not load before the inputs are checked")

    monkeypatch.setattr(predictor, "KeypointDetector", no_model)
    test = tmp_path / "nonexist.zip" if missing == "input" else tiny_csv
    lookup = tmp_path / "nonexist.csv" if missing == "lookup" else tiny_csv
    code, out, err = run_cli(["submit", test, "--lookup", lookup, "-o", tmp_path / "s.csv"], capsys)
    gone = test if missing == "input" else lookup
    assert code == 2 and f"error: {gone}: no such file or folder" in err, err
    assert "Errno" not in err and not (tmp_path / "s.csv").exists()


# ---- 2. data convert --to: an unknown target with the closest name ---------------------------------
def test_data_convert_unknown_target_suggests(tiny_csv, tmp_path, capsys):
    code, out, err = run_cli(["data", "convert", tiny_csv, "--to", "kagle15", "-o", tmp_path / "k.csv"], capsys)
    assert code == 2 and "--to 'kagle15': unknown target; did you mean kaggle15?" in err, err


def test_data_convert_unknown_target_without_a_close_one_lists_schemas(tiny_csv, tmp_path, capsys):
    code, out, err = run_cli(["data", "convert", tiny_csv, "--to", "zzz", "-o", tmp_path / "k.csv"], capsys)
    assert code == 2 and "--to 'zzz': unknown target; schemas: " in err and "kaggle15" in err, err


# ---- 3. grid: a run without an NME (one keypoint) echoes "NME -", as the table ------------------------
def test_grid_echo_says_nme_dash_when_undefined(tmp_path, monkeypatch):
    from facekeypoints.data import write_kaggle_csv
    from facekeypoints.train import grid

    csv = write_kaggle_csv(make_faces(), tmp_path / "training.csv")
    config = tmp_path / "a.yaml"
    config.write_text(f"data: {{train: {csv}, split: [0.75, 0.25]}}\nmodel: {{name: fcnn}}\n"
                      f"train: {{epochs: 1, batch_size: 8, num_threads: 1}}\nout_dir: {tmp_path / 'runs' / 'a'}\n")
    real = grid._run_one

    def one_point(*args, **kwargs):  # a one-point schema's row: NME is NaN
        return real(*args, **kwargs) | {"nme": float("nan")}

    monkeypatch.setattr(grid, "_run_one", one_point)
    lines = []
    grid.run_grid([config], tmp_path / "results.json", progress=False, echo=lines.append)
    assert any(re.search(r"a: RMSE [\d.]+, MAE [\d.]+, NME - in ", line) for line in lines), lines
    assert not any("nan" in line for line in lines), lines


# ---- 4. predict without a result: no empty folder left, and "nothing was written" -----------------
@pytest.mark.parametrize("nested", [False, True])
def test_predict_without_results_leaves_no_new_folder(model, tmp_path, capsys, nested):
    out = tmp_path / ("out3/sub" if nested else "out3")
    code, stdout, err = run_cli(["predict", tmp_path / "nonexist.jpg", "--model", model, "-o", f"{out}/",
                                 "--quiet"], capsys)
    assert code == 1, err
    assert "nothing was written" in err and "results:" not in err + stdout, err
    assert not (tmp_path / "out3").exists()


def test_predict_without_results_keeps_an_existing_folder(model, tmp_path, capsys):
    out = tmp_path / "out3"
    out.mkdir()
    code, stdout, err = run_cli(["predict", tmp_path / "nonexist.jpg", "--model", model, "-o", f"{out}/",
                                 "--quiet"], capsys)
    assert code == 1 and "nothing was written" in err and out.is_dir(), err


# ---- 5. gpu_smoke.sh without a GPU: one line, no traceback -----------------------------------------
def test_gpu_smoke_without_a_gpu_says_so(tmp_path):
    fake = tmp_path / "python"  # an interpreter whose torch sees no GPU, whatever this machine has
    fake.write_text("#!/bin/sh\nexport CUDA_VISIBLE_DEVICES=''\nexec " + f"{ROOT / '.venv/bin/python'}" + ' "$@"\n')
    fake.chmod(0o755)
    run = subprocess.run(["bash", "benchmarks/gpu_smoke.sh"], cwd=ROOT, capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHON": str(fake), "SMOKE_OUT": str(tmp_path / "smoke")})
    assert run.returncode == 1
    assert run.stderr.strip() == "gpu_smoke.sh: no CUDA GPU here; this script needs one", run.stderr
    assert "Traceback" not in run.stderr + run.stdout


# ---- 6. README: the COCO example is a file; predict folders do not collide ------------------------
def test_readme_coco_example_is_a_readable_file(shared_data):
    readme = (ROOT / "README.md").read_text()
    row = next(line for line in readme.splitlines() if line.startswith("| COCO-style keypoint JSON"))
    path = re.search(r"`([^`]+)`", row).group(1)
    assert path.endswith(".json") and (shared_data / path).is_file(), path


def test_readme_predict_lines_have_their_own_output_folders():
    readme = (ROOT / "README.md").read_text()
    for block in re.findall(r"```bash\n(.*?)```", readme, re.S):
        folders = re.findall(r"^facekeypoints predict .*?-o (\S+/)", block, re.M)
        assert len(folders) == len(set(folders)), folders


# ---- 7. every mode's --help has runnable examples ---------------------------------------------------
def _modes():
    from facekeypoints.cli import build_parser

    sub = build_parser()._subparsers._group_actions[0]  # noqa: SLF001
    modes = [[m] for m in sub.choices]
    data = sub.choices["data"]._subparsers._group_actions[0]  # noqa: SLF001
    return modes + [["data", d] for d in data.choices]


@pytest.mark.parametrize("mode", _modes(), ids=" ".join)
def test_every_mode_help_has_examples(mode, capsys):
    code, out, err = run_cli([*mode, "--help"], capsys)
    assert code == 0 and "\nexamples:\n" in out, out
    examples = out.split("\nexamples:\n", 1)[1]
    assert f"facekeypoints {' '.join(mode)}" in examples, examples  # its own mode's lines


def test_predict_help_lists_predict_examples_only(capsys):
    code, out, err = run_cli(["predict", "--help"], capsys)
    examples = out.split("\nexamples:\n", 1)[1]
    assert not re.search(r"facekeypoints (export|bench|demo)", examples), examples


def test_under_torchrun_every_rank_reports_bad_input(tmp_path, capsys, monkeypatch):
    from fakes import run_cli

    for rank in ("1", "0"):
        monkeypatch.setenv("RANK", rank)
        code, _, err = run_cli(["train", "--config", tmp_path / "none.yaml"], capsys)
        assert code == 2 and err.startswith(f"rank {rank}: error: ") and "none.yaml" in err, (rank, err)
