"""Round 18 of the bad-input audit: the service's arguments and the command line.

``create_app`` checks every argument before any model loads, with an error that names it; under
torchrun every ``error:`` line a rank prints carries its rank, argparse's included; ``serve --help``
says an upload is held once; a Ctrl-C while the command's own modules are imported is said as
"interrupted" with exit code 130, and importing the package or the CLI imports little.
"""
from __future__ import annotations

import errno
import os
import subprocess
import sys
import textwrap

import pytest

from facekeypoints import cli
from facekeypoints.atomic import WriteError
from facekeypoints.serve.app import create_app
from fakes import run_cli

SHIPPED = {"kaggle15": "kaggle15"}


@pytest.mark.parametrize(("given", "error", "named"), [
    ({"detector": None}, TypeError, "detector"),
    ({"detector": 3}, TypeError, "detector"),
    ({"workers": "2"}, TypeError, "workers"),
    ({"workers": 1.5}, TypeError, "workers"),
    ({"workers": True}, TypeError, "workers"),
    ({"max_body": 1.5}, TypeError, "max_body"),
    ({"max_uploads": 2.0}, TypeError, "max_uploads"),
    ({"max_uploads": 0}, ValueError, "max_uploads"),
    ({"upload_timeout": "3"}, TypeError, "upload_timeout"),
    ({"upload_timeout": True}, TypeError, "upload_timeout"),
    ({"upload_timeout": float("nan")}, ValueError, "upload_timeout"),
    ({"max_pixels": "5"}, TypeError, "max_pixels"),
    ({"max_pixels": 2.5}, TypeError, "max_pixels"),
    ({"max_pixels": 0}, ValueError, "max_pixels"),
    ({"max_pixels": -5}, ValueError, "max_pixels"),
    ({"models": ["kaggle15"]}, TypeError, "models"),
    ({"models": "kaggle15"}, TypeError, "models"),
    ({"models": {"a": None}}, TypeError, "models"),
    ({"models": {1: "kaggle15"}}, TypeError, "models"),
    ({"models": {" ": "kaggle15"}}, ValueError, "models"),
    ({"models": {}}, ValueError, "models"),
])
def test_create_app_names_a_bad_argument_before_loading_anything(given, error, named):
    with pytest.raises(error, match=rf"\b{named}\b"):
        create_app(**{"models": SHIPPED, **given})


def test_create_app_still_takes_numpy_counts_and_no_pixel_limit():
    import numpy as np

    app = create_app(SHIPPED, detector="HAAR", workers=np.int64(1), max_pixels=None, upload_timeout=2.5)
    assert app.title == "facekeypoints"


def test_the_cli_and_create_app_take_the_same_bounds():
    from facekeypoints.serve.app import MAX_UPLOAD_TIMEOUT, MAX_UPLOADS_LIMIT

    for argument, most in (("max_uploads", MAX_UPLOADS_LIMIT), ("upload_timeout", MAX_UPLOAD_TIMEOUT)):
        option = "--" + argument.replace("_", "-")
        assert getattr(cli.build_parser().parse_args(["serve", option, str(most)]), argument) == most
        with pytest.raises(SystemExit):
            cli.build_parser().parse_args(["serve", option, str(most + 1)])
        with pytest.raises(ValueError, match=argument):
            create_app(SHIPPED, **{argument: most + 1})


# ---- every error line of a rank says its rank ----------------------------------------------------

def _fails_with(err: Exception):
    def command(args):
        raise err
    return command


@pytest.mark.parametrize("rank", ["", "1"])
def test_argparse_errors_carry_the_rank(monkeypatch, capsys, rank):
    monkeypatch.setenv("RANK", rank)
    code, _, err = run_cli(["schemas", "--bogus"], capsys)
    line = err.strip().splitlines()[-1]
    assert code == 2 and line.startswith(f"{f'rank {rank}: ' if rank else ''}facekeypoints schemas: error: "), err
    assert "--bogus" in line


def test_a_closed_stdout_is_said_with_the_rank(monkeypatch, capsys):
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setattr(sys, "stdout", None)
    code, _, err = run_cli(["schemas"], capsys)
    assert code == 2 and err.startswith("rank 3: error: standard output is closed"), err


def test_a_write_error_is_said_with_the_rank(monkeypatch, capsys):
    monkeypatch.setenv("RANK", "2")
    monkeypatch.setattr(cli, "_cmd_schemas", _fails_with(WriteError(errno.ENOSPC, "out.csv: no space left")))
    code, _, err = run_cli(["schemas"], capsys)
    assert code == 1 and err.strip() == "rank 2: error: out.csv: no space left", err


def test_a_full_stdout_is_said_with_the_rank(monkeypatch, capsys):
    monkeypatch.setenv("RANK", "2")
    monkeypatch.setattr(cli, "_cmd_schemas", _fails_with(OSError(errno.ENOSPC, "No space left on device")))
    monkeypatch.setattr(cli, "_stdout_failed", lambda err: True)
    code, _, err = run_cli(["schemas"], capsys)
    assert code == 1 and err.strip() == "rank 2: error: standard output: no space left on device", err


def test_trains_no_finite_epoch_is_said_with_the_rank(tmp_path, monkeypatch, capsys):
    import facekeypoints.train.loop as loop

    monkeypatch.setenv("RANK", "0")
    monkeypatch.setattr(cli, "_check_data_paths", lambda cfg, config: None)
    monkeypatch.setattr(loop, "fit", lambda cfg, **kwargs: {"rank": 0, "stop_reason": "done", "best_epoch": None,
                                                            "out_dir": str(tmp_path)})
    code, _, err = run_cli(["train", "--out", tmp_path], capsys)
    assert code == 1 and err.startswith("rank 0: error: no validated epoch gave a finite RMSE"), err


# ---- serve --help ----------------------------------------------------------------------------------

def test_serve_help_says_an_upload_is_held_once(capsys):
    code, out, _ = run_cli(["serve", "--help"], capsys)
    words = " ".join(out.split())
    assert code == 0 and "twice" not in words and "max-uploads x max-body bytes on top of the models" in words, words


# ---- Ctrl-C while the command starts -----------------------------------------------------------------

# A stand-in for the console script (.venv/bin/facekeypoints) that sends itself SIGINT while cli.py's own
# imports run (as facekeypoints.atomic is imported): as a Ctrl-C in the first tenth of a second does.
_STARTER = """
import os, signal, sys

class SignalOnImport:
    def find_spec(self, name, path=None, target=None):
        if name == "facekeypoints.atomic":
            os.kill(os.getpid(), signal.SIGINT)
        return None

sys.meta_path.insert(0, SignalOnImport())
"""
_CONSOLE_SCRIPT = _STARTER + """
from facekeypoints.cli import main
sys.exit(main())
"""
_PYTHON_M = _STARTER + """
import runpy
runpy.run_module("facekeypoints", run_name="__main__", alter_sys=True)
"""


@pytest.mark.parametrize("script", [_CONSOLE_SCRIPT, _PYTHON_M], ids=["console-script", "python-m"])
def test_a_ctrl_c_while_the_command_imports_is_an_interruption(tmp_path, script):
    starter = tmp_path / "facekeypoints"  # the console script's name: how cli.py knows it is the command
    starter.write_text(textwrap.dedent(script))
    done = subprocess.run([sys.executable, starter, "schemas"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 130 and done.stderr.strip() == "interrupted" and done.stdout == "", done


def test_importing_the_cli_imports_little_and_leaves_signals_alone():
    probe = ("import signal, sys, facekeypoints.cli, facekeypoints; "
             "print(sorted(m for m in ('numpy', 'yaml', 'torch', 'cv2') if m in sys.modules), "
             "signal.getsignal(signal.SIGINT) is signal.default_int_handler, facekeypoints.load_schema('nose1').name)")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONWARNINGS": "error"})
    assert done.returncode == 0 and done.stdout.split() == ["[]", "True", "nose1"], done
