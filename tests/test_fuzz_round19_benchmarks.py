"""Round 19: the benchmark scripts refuse bad arguments and outputs in one line, before any work."""
from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _script(name: str):
    """benchmarks/NAME.py as a module (its main() takes argv)."""
    spec = importlib.util.spec_from_file_location(f"round19_{name}", ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _refused(main, argv: list[str], capsys) -> str:
    """The one-line usage error main(argv) ends with (exit status 2)."""
    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err.strip().splitlines()[-1]


@pytest.mark.parametrize("argv, said", [
    (["--batch", "0"], "argument --batch: must be 1 or more, got 0"),
    (["--iters", "0"], "argument --iters: must be 1 or more, got 0"),
    (["--size", "-5"], "argument --size: must be 1 or more, got -5"),
    (["--channels", "0"], "argument --channels: must be 1 or more, got 0"),
    (["--threads", "0"], "argument --threads: must be 1 or more, got 0")])
def test_bench_augment_refuses_counts_below_one(argv, said, capsys):
    assert said in _refused(_script("bench_augment").main, argv, capsys)


def test_bench_augment_refuses_a_folder_as_json_before_timing(tmp_path, capsys):
    bench = _script("bench_augment")
    bench.measure = lambda *a: pytest.fail("timed before checking --json")
    assert str(tmp_path) in _refused(bench.main, ["--json", str(tmp_path)], capsys)


@pytest.mark.parametrize("argv, said", [
    (["--batch", "0"], "argument --batch: must be 1 or more, got 0"),
    (["--seconds", "0"], "argument --seconds: must be more than 0 seconds, got 0"),
    (["--seconds", "nan"], "argument --seconds: must be more than 0 seconds"),
    (["--size", "0"], "argument --size: must be 1 or more"),
    (["--out", "."], "")])
def test_bench_models_refuses_bad_arguments(argv, said, capsys):
    bench = _script("bench_models")
    bench.matmul_peak_gflops = lambda: pytest.fail("timed before checking the arguments")
    assert said in _refused(bench.main, argv, capsys)


@pytest.mark.parametrize("argv, said", [
    (["speed", "--threads", "0"], "argument --threads: must be 1 or more, got 0"),
    (["speed", "--repeats", "0"], "argument --repeats: must be 1 or more, got 0"),
    (["speed", "--model", "nosuch"], "nosuch"),
    (["refine", "--model", "nosuch"], "nosuch")])
def test_bench_infer_refuses_bad_arguments(argv, said, capsys):
    assert said in _refused(_script("bench_infer").main, argv, capsys)


def test_bench_infer_checks_json_first_and_writes_it_whole(tmp_path, capsys, monkeypatch):
    bench = _script("bench_infer")
    monkeypatch.setattr(bench, "run_bench", lambda *a, **k: pytest.fail("timed before checking --json"))
    assert str(tmp_path) in _refused(bench.main, ["speed", "--json", str(tmp_path)], capsys)
    monkeypatch.setattr(bench, "run_bench", lambda *a, **k: {"figure": 1})
    bench.main(["speed", "--json", str(tmp_path / "new" / "x.json")])  # a new folder is made, as the CLI does
    assert json.loads((tmp_path / "new" / "x.json").read_text()) == {"figure": 1}


@pytest.mark.parametrize("argv, said", [
    (["--epochs", "0"], "argument --epochs: must be 1 or more, got 0"),
    (["--epochs", "-3"], "argument --epochs: must be 1 or more, got -3"),
    (["--seeds", "0", "0"], "argument --seeds: each seed once, got 0 0")])
def test_bench_ddp_refuses_before_training(argv, said, capsys, monkeypatch):
    bench = _script("bench_ddp")
    monkeypatch.setattr(bench.subprocess, "run", lambda *a, **k: pytest.fail("trained before checking"))
    assert said in _refused(bench.main, argv, capsys)


def test_bench_ddp_starts_its_runs_afresh_so_it_can_run_again(tmp_path, monkeypatch, capsys):
    bench = _script("bench_ddp")
    commands = []

    def fake_run(command, **kwargs):
        commands.append(command)
        summary = {"best_val_rmse": 2.0, "epochs": 1, "minutes": 0.1}
        return SimpleNamespace(returncode=0, stdout=json.dumps(summary), stderr="")

    monkeypatch.setattr(bench.subprocess, "run", fake_run)
    assert bench.main(["--epochs", "1", "--seeds", "0", "--out", str(tmp_path)]) == 0
    assert len(commands) == 2 and all("--overwrite" in c for c in commands)


@pytest.mark.parametrize("limit, said", [("-1", "argument --limit: must be 0 or more, got -1"),
                                         ("x", "argument --limit: expected an integer")])
def test_calibrate_framing_refuses_a_negative_limit(limit, said, capsys):
    assert said in _refused(_script("calibrate_framing").main, ["--limit", limit], capsys)


def test_calibrate_framing_limit_zero_is_documented_as_all():
    parser_help = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "calibrate_framing.py"), "--help"],
                                 capture_output=True, text=True, check=True).stdout
    assert "(0: all)" in parser_help


def test_bench_load_says_the_readers_error_not_a_traceback(tmp_path):
    not_kaggle = tmp_path / "notes.csv"
    not_kaggle.write_text("# notes\nhello\n")
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_load.py"), "--file", str(not_kaggle)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr and "CalledProcessError" not in done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and str(not_kaggle) in last and "header" in last


def test_bench_load_refuses_its_input_as_json(tmp_path, capsys):
    data = tmp_path / "training.csv"
    data.write_text("x\n")
    assert "training.csv" in _refused(_script("bench_load").main, ["--file", str(data), "--json", str(data)], capsys)


def test_bench_tta_checks_every_checkpoint_before_scoring(tmp_path, capsys, monkeypatch):
    bench = _script("bench_tta")
    good, bad = tmp_path / "good.pt", tmp_path / "bad.pt"
    good.write_bytes(b"x")
    bad.write_bytes(b"not a checkpoint")

    def load(path, threads):
        if Path(path) == bad:
            raise bench.CheckpointError(f"{path}: not a readable facekeypoints checkpoint")
        return SimpleNamespace(card=None)

    monkeypatch.setattr(bench.TorchRunner, "load", load)
    monkeypatch.setattr(bench, "run_split", lambda *a, **k: pytest.fail("scored before checking every checkpoint"))
    said = _refused(bench.main, [str(good), str(bad)], capsys)
    assert f"{bad}: not a readable facekeypoints checkpoint" in said


def test_bench_tta_says_a_real_unreadable_checkpoint_in_one_line(tmp_path, capsys):
    bad = tmp_path / "notes.pt"
    bad.write_text("hello")
    assert str(bad) in _refused(_script("bench_tta").main, [str(bad)], capsys)
