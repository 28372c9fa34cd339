"""Round 17 of the bad-input audit: the command line.

An input named like an option (-dash.jpg) is said to be a file; a Ctrl-C while the options are read,
or one that surfaces as another error (an ImportError from a half-imported extension), is said as
"interrupted" with exit code 130; under torchrun every rank says its own error, prefixed with its rank.
"""
from __future__ import annotations

import signal

import pytest

from facekeypoints import cli
from fakes import run_cli


@pytest.mark.parametrize("argv", [["predict", "-dash.jpg"], ["predict", "face.jpg", "-dash.jpg"]])
def test_an_input_named_like_an_option_is_said_to_be_a_file(tmp_path, monkeypatch, capsys, argv):
    monkeypatch.chdir(tmp_path)
    for name in ("-dash.jpg", "face.jpg"):
        (tmp_path / name).write_bytes(b"")
    code, _, err = run_cli(argv, capsys)
    assert code == 2 and "-dash.jpg is a file: write ./-dash.jpg or put -- before the inputs" in err, err
    for fixed in (["predict", "./-dash.jpg"], ["predict", "--", "-dash.jpg"]):  # the two ways out parse
        assert cli._parse(cli.build_parser(), fixed).inputs[-1].endswith("-dash.jpg")


def test_a_mistyped_option_that_is_no_file_gets_no_file_hint(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(["predict", "face.jpg", "--modle", "x"], capsys)
    assert code == 2 and "is a file" not in err and "--model" in err, err


def test_a_ctrl_c_while_the_options_are_read_is_an_interruption(monkeypatch, capsys):
    def interrupted():
        raise KeyboardInterrupt
    monkeypatch.setattr(cli, "build_parser", interrupted)
    code, _, err = run_cli(["schemas"], capsys)
    assert code == 130 and err.strip() == "interrupted", err


def _swallowed_interrupt(args):  # as a half-done import's own error handling does, then a later import fails
    try:
        signal.raise_signal(signal.SIGINT)
    except KeyboardInterrupt:
        pass
    raise ImportError('generic_type: type "GraphOptimizationLevel" is already registered!')


def _error_while_interrupted(args):
    try:
        raise KeyboardInterrupt
    except KeyboardInterrupt:
        raise ImportError("partially initialized module") from None


@pytest.mark.parametrize("command", [_swallowed_interrupt, _error_while_interrupted])
def test_an_error_caused_by_an_interrupt_is_an_interruption(monkeypatch, capsys, command):
    monkeypatch.setattr(cli, "_cmd_schemas", command)
    code, _, err = run_cli(["schemas"], capsys)
    assert code == 130 and err.strip() == "interrupted", err


def test_an_error_without_an_interrupt_is_still_an_error(monkeypatch, capsys):
    def failing(args):
        raise ImportError("no module named onnxruntime")
    monkeypatch.setattr(cli, "_cmd_schemas", failing)
    code, _, err = run_cli(["schemas"], capsys, forbidden=("Traceback",))
    assert code == 1 and "error: ImportError: no module named onnxruntime" in err, err


@pytest.mark.parametrize("rank", ["0", "1"])
def test_every_rank_says_its_own_error(tmp_path, monkeypatch, capsys, rank):
    monkeypatch.setenv("RANK", rank)
    code, _, err = run_cli(["train", "--config", tmp_path / "none.yaml"], capsys)
    assert code == 2 and err.startswith(f"rank {rank}: error: ") and "none.yaml" in err, err
