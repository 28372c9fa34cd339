"""Round 10 faults: kills, interrupts, full disks and closed or full standard output.

Each test failed before its fix: a killed video run left a short but valid clip_keypoints.mp4 under
its final name; an interrupted run said only "interrupted"; a full disk left an empty claim that
refused every re-run ("its previous content is kept", of nothing); an unreadable ONNX cache entry
broke every predict; temporary files of killed runs were never removed; a closed or full stdout
gave an AttributeError or an OSError; a training killed before its first checkpoint was offered
--resume, which then failed on last.pt.
"""
from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from fakes import grace_hopper_copy, run_cli, still_clip, tiny_config

from facekeypoints.atomic import WriteError, atomic_path, remove_stale_temporaries
from facekeypoints.infer import files as files_module
from facekeypoints.infer.files import predict_paths, predict_video
from facekeypoints.infer.predictor import KeypointDetector


def _dead_pid() -> int:
    """The pid of a process that has ended (a run killed with SIGKILL)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


# 1. the drawn video: ffmpeg finished the file when its parent was killed, under the final name

def test_the_drawn_video_is_encoded_under_a_hidden_temporary_name_until_it_is_whole(det, tmp_path, monkeypatch):
    clip = still_clip(tmp_path / "in" / "clip.mp4", frames=3)
    out = tmp_path / "out"
    seen = []
    original = files_module.x264_command

    def spy(path, fps, size, **options):
        seen.append(Path(path))
        return original(path, fps, size, **options)

    write = files_module._H264Writer.write

    def write_and_look(self, rgb):  # what a SIGKILL now would leave: no file under the final name
        assert not (out / "clip_keypoints.mp4").exists()
        write(self, rgb)

    monkeypatch.setattr(files_module, "x264_command", spy)
    monkeypatch.setattr(files_module._H264Writer, "write", write_and_look)
    predict_video(det, clip, out, progress=False)
    assert len(seen) == 1 and seen[0].parent == out and seen[0].name.startswith(".clip_keypoints.mp4.")
    assert seen[0].name.endswith(".tmp") and not seen[0].exists()
    assert (out / "clip_keypoints.mp4").stat().st_size > 0
    assert sorted(p.name for p in out.iterdir()) == ["clip.jsonl", "clip_keypoints.mp4"]


def test_a_failed_video_leaves_no_temporary_file_and_keeps_an_earlier_video(det, tmp_path, monkeypatch):
    clip = still_clip(tmp_path / "in" / "clip.mp4", frames=3)
    out = tmp_path / "out"
    out.mkdir()
    (out / "clip_keypoints.mp4").write_bytes(b"earlier")

    def broken(self, rgb):
        raise WriteError(errno.ENOSPC, "disk full")

    monkeypatch.setattr(files_module._H264Writer, "write", broken)
    with pytest.raises(WriteError):
        predict_video(det, clip, out, progress=False, overwrite=True)
    assert (out / "clip_keypoints.mp4").read_bytes() == b"earlier"
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]


# 2. an interrupted run: its finished results are kept (README), and said to be partial

def _interrupt_second_batch(monkeypatch):
    calls = []
    original = KeypointDetector.predict_batch

    def predict_batch(self, images, **kw):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return original(self, images, **kw)

    monkeypatch.setattr(KeypointDetector, "predict_batch", predict_batch)


@pytest.mark.parametrize("name", ["out.csv", "out.jsonl", "folder"])
def test_an_interrupted_predict_says_its_results_are_partial(model, tmp_path, monkeypatch, capsys, name):
    photos = tmp_path / "photos"
    for i in range(3):
        grace_hopper_copy(photos / f"{i}.jpg")
    _interrupt_second_batch(monkeypatch)
    target = tmp_path / name
    no_draw = ["--no-draw"] if name == "folder" else []  # a file output is never drawn (refused there)
    code, _, err = run_cli(["predict", photos, "-o", target, "--model", model, "--batch-size", 1, "--quiet",
                            *no_draw, "--backend", "torch"], capsys)
    written = target / "predictions.jsonl" if name == "folder" else target
    assert code == 130
    assert f"interrupted: results for 1 of 3 inputs written to {written} (partial)" in err
    assert written.is_file()
    if name != "out.csv":
        assert len(written.read_text().splitlines()) == 1
    monkeypatch.undo()
    code, _, err = run_cli(["predict", photos, "-o", target, "--model", model, "--quiet", *no_draw,
                            "--backend", "torch"], capsys)
    if code:  # a re-run refused because of the partial file says how to replace it
        assert "--overwrite" in err, err


def test_an_interrupted_predict_to_standard_output_says_so(model, tmp_path, monkeypatch, capsys):
    photos = tmp_path / "photos"
    for i in range(2):
        grace_hopper_copy(photos / f"{i}.jpg")
    _interrupt_second_batch(monkeypatch)
    code, out, err = run_cli(["predict", photos, "-o", "-", "--model", model, "--batch-size", 1, "--quiet",
                              "--backend", "torch"], capsys)
    assert code == 130 and len(out.splitlines()) == 1
    assert "interrupted: results for 1 of 2 inputs written to standard output (partial)" in err


def test_an_interrupt_before_any_result_says_nothing_was_written(det, tmp_path, monkeypatch):
    grace_hopper_copy(tmp_path / "photos" / "a.jpg")

    def stop(self, images, **kw):
        raise KeyboardInterrupt

    monkeypatch.setattr(KeypointDetector, "predict_batch", stop)
    with pytest.raises(KeyboardInterrupt) as caught:
        predict_paths(det, [tmp_path / "photos"], tmp_path / "out", progress=False)
    assert caught.value.partial == f"nothing was written to {tmp_path / 'out' / 'predictions.jsonl'}"
    assert not (tmp_path / "out" / "predictions.jsonl").exists()  # the claim was given back


# 3. a full disk (EFBIG, ENOSPC): the claim is given back, and nothing said to be kept

def _full_disk(monkeypatch, error=errno.EFBIG):
    from facekeypoints.infer import outputs

    original = outputs._Sink.write

    class Full:  # the file's stream, whose flush fails as on a full disk
        def __init__(self, stream):
            self.stream = stream

        def write(self, text):
            return self.stream.write(text)

        def flush(self):
            raise OSError(error, os.strerror(error))

        def close(self):
            self.stream.close()

    def write(self, result, extra=None):
        if self.path is not None and not isinstance(self.stream, Full):
            self.stream = Full(self.stream)
        return original(self, result, extra)

    monkeypatch.setattr(outputs._Sink, "write", write)


def test_a_full_disk_gives_back_the_folders_claim_and_says_nothing_was_written(model, tmp_path, monkeypatch,
                                                                               capsys):
    grace_hopper_copy(tmp_path / "photos" / "a.jpg")
    _full_disk(monkeypatch)
    out = tmp_path / "out"
    code, _, err = run_cli(["predict", tmp_path / "photos", "-o", out, "--model", model, "--quiet", "--no-draw",
                            "--backend", "torch"], capsys)
    assert code == 1
    assert f"error: {out / 'predictions.jsonl'}: could not be written (File too large); nothing was written" in err
    assert "previous content" not in err
    assert not (out / "predictions.jsonl").exists()  # the empty claim refused every re-run
    assert not out.exists()  # the folder this run made holds nothing, so it is removed too (round 11)
    monkeypatch.undo()
    code, _, err = run_cli(["predict", tmp_path / "photos", "-o", out, "--model", model, "--quiet", "--no-draw",
                            "--backend", "torch"], capsys)
    assert code == 0, err


def test_a_full_disk_under_a_file_output_keeps_the_earlier_file(model, tmp_path, monkeypatch, capsys):
    grace_hopper_copy(tmp_path / "photos" / "a.jpg")
    target = tmp_path / "out.jsonl"
    target.write_text("earlier\n")
    _full_disk(monkeypatch, errno.ENOSPC)
    code, _, err = run_cli(["predict", tmp_path / "photos", "-o", target, "--model", model, "--quiet",
                            "--backend", "torch"], capsys)  # a file output is replaced without --overwrite
    assert code == 1 and "its previous content is kept" in err, err
    assert target.read_text() == "earlier\n"


def test_a_claimed_atomic_write_that_fails_removes_the_claim(tmp_path):
    path = tmp_path / "predictions.jsonl"
    path.touch()
    with pytest.raises(WriteError, match="nothing was written"):
        with atomic_path(path, claimed=True):
            raise OSError(errno.EFBIG, "File too large")
    assert not path.exists()


def test_a_failed_claimed_write_leaves_a_file_another_run_put_in_its_place(tmp_path):
    path = tmp_path / "predictions.jsonl"
    path.touch()
    with pytest.raises(WriteError, match="its previous content is kept"):
        with atomic_path(path, claimed=True):
            other = tmp_path / "other.jsonl"
            other.write_text("another run's results\n")
            os.replace(other, path)  # predict --overwrite, meanwhile
            raise OSError(errno.EFBIG, "File too large")
    assert path.read_text() == "another run's results\n"


def test_a_real_file_size_limit_gives_back_the_claim(model, tmp_path):
    for i in range(3):
        grace_hopper_copy(tmp_path / "photos" / f"{i}.jpg")
    script = ("import resource, sys; resource.setrlimit(resource.RLIMIT_FSIZE, (600, 600));"
              "from facekeypoints.cli import main; sys.exit(main(sys.argv[1:]))")
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, "-c", script, "predict", str(tmp_path / "photos"), "-o", str(out),
                           "--model", str(model), "--quiet", "--no-draw", "--backend", "torch"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stderr
    assert "nothing was written" in done.stderr and "previous content" not in done.stderr
    assert not (out / "predictions.jsonl").exists()


# 4. an unreadable ONNX cache entry is rebuilt, with a warning

@pytest.mark.parametrize("content", [b"", os.urandom(200)])
def test_an_unreadable_onnx_cache_entry_is_rebuilt(model, tmp_path, monkeypatch, content):
    from facekeypoints.infer.onnx import cached_export

    monkeypatch.setenv("FACEKEYPOINTS_CACHE", str(tmp_path / "cache"))
    entry = cached_export(model)
    entry.write_bytes(content)
    with pytest.warns(UserWarning, match=rf"ignoring unreadable cache entry {entry} .*; rebuilding it"):
        runner = KeypointDetector(model, backend="onnx").runner
    assert runner.source == str(model) and entry.stat().st_size > 1000
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        KeypointDetector(model, backend="onnx")  # the rebuilt entry loads without a word


# 5. temporary files of killed runs are removed by a later run into the same folder, and nothing else

def test_a_later_run_removes_only_temporary_files_of_dead_processes(det, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    dead, alive = _dead_pid(), os.getpid()
    stale = [out / f".long.jsonl.{dead}-3.tmp", out / f".long_keypoints.mp4.{dead}-0.tmp"]
    kept = [out / f".x.jsonl.{alive}-99.tmp", out / f"long.jsonl.{dead}-3.tmp", out / f".notes.{dead}.tmp",
            out / f".x.{dead}-1.tmp.bak", out / "my.tmp"]
    for p in stale + kept:
        p.write_text("x")
    (out / f".dir.{dead}-1.tmp").mkdir()  # a folder of that name is not ours
    grace_hopper_copy(tmp_path / "photos" / "a.jpg")
    predict_paths(det, [tmp_path / "photos"], out, progress=False, draw=False)
    assert not any(p.exists() for p in stale)
    assert all(p.exists() for p in kept) and (out / f".dir.{dead}-1.tmp").is_dir()


def test_remove_stale_temporaries_skips_links_and_a_missing_folder(tmp_path):
    dead = _dead_pid()
    target = tmp_path / "precious"
    target.write_text("x")
    (tmp_path / f".a.{dead}-0.tmp").symlink_to(target)
    assert remove_stale_temporaries(tmp_path / "missing") == []
    assert remove_stale_temporaries(tmp_path) == []
    assert target.exists()


def test_a_video_run_removes_a_killed_runs_temporary_video(det, tmp_path):
    clip = still_clip(tmp_path / "in" / "clip.mp4", frames=2)
    out = tmp_path / "out"
    out.mkdir()
    left = out / f".clip_keypoints.mp4.{_dead_pid()}-0.tmp"
    left.write_bytes(b"a short video ffmpeg finished")
    predict_video(det, clip, out, progress=False)
    assert not left.exists() and (out / "clip_keypoints.mp4").is_file()


# 6. a closed standard output: said, before any work

@pytest.mark.parametrize("argv", [["schemas"], ["predict", "x.jpg", "-o", "-"]])
def test_a_closed_standard_output_is_refused(argv, monkeypatch, capsys):
    monkeypatch.setattr(sys, "stdout", None)
    code, _, err = run_cli(argv, capsys)
    assert code == 2 and "error: standard output is closed; nothing was written" in err


# 7. a full standard output: said as such, not as an OSError

def test_a_full_standard_output_is_said_plainly():
    done = subprocess.run([sys.executable, "-m", "facekeypoints.cli", "schemas"], stdout=open("/dev/full", "w"),
                          stderr=subprocess.PIPE, text=True, timeout=120)
    assert done.returncode == 1
    assert done.stderr.strip() == "error: standard output: no space left on device", done.stderr


# 8. a training stopped before its first checkpoint: --overwrite, not --resume

def _before_first_checkpoint(out: Path) -> None:
    (out / "tensorboard").mkdir(parents=True)
    (out / "config.json").write_text(json.dumps({"config": {}}))
    (out / ".training.lock").write_text(f"{_dead_pid()}\n")  # the killed run's, taken over


@pytest.mark.parametrize("resume", [False, True])
def test_a_run_without_a_checkpoint_is_not_offered_resume(tiny_csv, tmp_path, resume):
    from facekeypoints.train.loop import fit

    out = tmp_path / "run"
    _before_first_checkpoint(out)
    with pytest.raises(ValueError) as caught:
        fit(tiny_config(tiny_csv, out), resume=resume, progress=False)
    message = str(caught.value)
    assert message.startswith(f"{out}: holds no checkpoint yet (the run stopped before its first epoch ended")
    assert "start it again with --overwrite" in message and "--resume" not in message
    assert not (out / ".training.lock").exists()  # the dead run's lock was taken over, and ours given back


def test_a_run_without_a_checkpoint_starts_again_with_overwrite(tiny_csv, tmp_path):
    from facekeypoints.train.loop import fit

    out = tmp_path / "run"
    _before_first_checkpoint(out)
    fit(tiny_config(tiny_csv, out), overwrite=True, progress=False)
    assert (out / "last.pt").is_file()
