"""Round 5 of fresh bad inputs for ``facekeypoints predict``: each case once aborted a folder, lost
or overwrote results, or said the wrong thing; each now ends in results for every readable input and
a line naming what is wrong (the auditor's repro scripts used IMM photos; these are synthetic).
"""
from __future__ import annotations

import builtins
import errno
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from matplotlib import cbook

from facekeypoints.infer.outputs import open_sink
from facekeypoints.infer.results import Result
from facekeypoints.models.checkpoint import load_model, save_checkpoint
from fakes import make_faces, run_cli

GRACE_HOPPER = Path(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))  # 512x600, one face haar finds


def run(argv, capsys) -> tuple[int, str, str]:
    return run_cli(argv, capsys, forbidden=("Traceback", "--debug for"))


@pytest.fixture(scope="module")
def nan_model(tmp_path_factory, model) -> Path:
    """A diverged checkpoint: every keypoint it gives is NaN (the mean-face model with NaN biases)."""
    net, card = load_model(model)
    with torch.no_grad():
        net.head[-1].bias.fill_(float("nan"))
    path = tmp_path_factory.mktemp("ckpt") / "nan.pt"
    save_checkpoint(path, net, card)
    return path


def ffmpeg() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def ffmpeg_clip(path: Path, *args: str, frames: int = 5) -> Path:
    """A small clip of the Grace Hopper photo (160x184, the face haar finds) made by the ffmpeg binary."""
    subprocess.run([ffmpeg(), "-hide_banner", "-loglevel", "error", "-y", "-loop", "1", "-i", str(GRACE_HOPPER),
                    "-frames:v", str(frames), *args, str(path)], check=True, timeout=60)
    return path


def sources(jsonl: Path) -> list[str]:
    return [json.loads(line)["source"] for line in jsonl.read_text().splitlines()]


def photo_folder(folder: Path, *names: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(GRACE_HOPPER, folder / name)
    return folder


def kaggle_test_csv(path: Path, rows: int) -> Path:
    """A Kaggle test.csv (ImageId,Image: 96*96 pixels as space-separated text)."""
    images = make_faces(rows).images
    path.write_text("ImageId,Image\n" + "".join(f"{i + 1},{' '.join(map(str, im.reshape(-1)))}\n"
                                                for i, im in enumerate(images)))
    return path


# ---- 1, 2: an unreadable file or folder is one failure, not an abort or a silent gap ---------------
def test_a_photo_whose_header_cannot_be_read_is_reported_and_the_others_predicted(tmp_path, model, capsys,
                                                                               monkeypatch):
    """b.jpg cannot be opened (EACCES, as for mode 000 without root's override): image_size in the
    batching and read_image both meet the PermissionError; a.jpg's result is still written."""
    folder = photo_folder(tmp_path / "in", "a.jpg", "b.jpg")
    locked = str(folder / "b.jpg")
    real_open = builtins.open

    def open_unless_locked(file, *args, **kwargs):
        if isinstance(file, (str, os.PathLike)) and os.fspath(file) == locked:
            raise PermissionError(errno.EACCES, "Permission denied", locked)
        return real_open(file, *args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(builtins, "open", open_unless_locked)
        code, out, err = run(["predict", folder, "-o", f"{tmp_path / 'out'}/", "--model", model, "--quiet"], capsys)
    assert code == 1, err
    assert sources(tmp_path / "out" / "predictions.jsonl") == [str(folder / "a.jpg")]
    assert (tmp_path / "out" / "a.jpg").is_file() and not (tmp_path / "out" / "b.jpg").exists()
    failed = err.split("FAILED", 1)[1]
    assert f"{locked}: " in failed and "Permission denied" in failed


def test_a_folder_that_cannot_be_listed_is_reported_and_the_rest_predicted(tmp_path, model, capsys, monkeypatch):
    folder = photo_folder(tmp_path / "in", "a.jpg", "locked/c.jpg")
    locked = os.path.realpath(folder / "locked")
    real_scandir = os.scandir

    def scandir_unless_locked(path="."):
        if os.path.realpath(path) == locked:
            raise PermissionError(errno.EACCES, "Permission denied", os.fspath(path))
        return real_scandir(path)

    with monkeypatch.context() as patch:
        patch.setattr(os, "scandir", scandir_unless_locked)  # what os.walk lists folders with
        code, out, err = run(["predict", folder, "-o", f"{tmp_path / 'out'}/", "--model", model, "--quiet",
                              "--no-draw"], capsys)
    assert code == 1, err
    assert sources(tmp_path / "out" / "predictions.jsonl") == [str(folder / "a.jpg")]
    failure = next(line for line in err.splitlines() if "locked" in line)
    assert "cannot list this folder" in failure and "Permission denied" in failure, err


def _as_unprivileged() -> list[str]:
    """A command prefix that makes mode 000 bite: nothing for a normal user; for root, setpriv
    dropping the capabilities that bypass file permissions."""
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: mode 000 files stay readable")
    return ["setpriv", "--bounding-set", "-dac_override,-dac_read_search"]


def test_mode_000_file_and_folder_for_real(tmp_path, model):
    """The same two cases with real permissions, in a subprocess (the auditor's repros 01 and 02)."""
    folder = photo_folder(tmp_path / "in", "a.jpg", "b.jpg", "locked/c.jpg")
    prefix = _as_unprivileged()
    os.chmod(folder / "b.jpg", 0)
    os.chmod(folder / "locked", 0)
    try:
        proc = subprocess.run([*prefix, sys.executable, "-m", "facekeypoints", "predict", str(folder), "-o",
                               f"{tmp_path / 'out'}/", "--model", str(model), "--quiet"],
                              capture_output=True, text=True, timeout=120)
    finally:
        os.chmod(folder / "locked", 0o755)
        os.chmod(folder / "b.jpg", 0o644)
    if prefix and "setpriv" in proc.stderr:
        pytest.skip(f"setpriv cannot drop capabilities here: {proc.stderr.strip()}")
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert sources(tmp_path / "out" / "predictions.jsonl") == [str(folder / "a.jpg")]
    failed = proc.stderr.split("FAILED", 1)[1]
    assert f"{folder / 'b.jpg'}: " in failed and "Permission denied" in failed, proc.stderr
    assert f"{folder / 'locked'}: cannot list this folder" in failed, proc.stderr


# ---- 3, 4: an earlier run's results are not replaced or re-read ------------------------------------
def test_output_folder_inside_the_input_is_claimed_then_left_out(tmp_path, model, capsys):
    folder = photo_folder(tmp_path / "in", "a.jpg")
    out = folder / "out"
    argv = ["predict", folder, "-o", f"{out}/", "--model", model, "--quiet"]
    assert run(argv, capsys)[0] == 0
    first = (out / "predictions.jsonl").read_bytes()
    assert (out / "a.jpg").is_file()

    code, _, err = run(argv, capsys)
    assert code == 2 and "predictions.jsonl" in err and "--overwrite" in err, err
    assert (out / "predictions.jsonl").read_bytes() == first

    code, stdout, err = run(argv + ["--overwrite"], capsys)
    assert code == 0, err
    assert f"left out: {out} (the output folder)" in stdout and "1 images" in stdout, stdout
    assert sources(out / "predictions.jsonl") == [str(folder / "a.jpg")]  # not its own drawing out/a.jpg
    assert sorted(p.name for p in out.iterdir()) == ["a.jpg", "predictions.jsonl"]


def test_a_second_run_into_one_folder_is_refused_and_the_first_kept(tmp_path, model, capsys):
    first_in, second_in = photo_folder(tmp_path / "A", "a.jpg"), photo_folder(tmp_path / "B", "b.jpg")
    out = tmp_path / "out"
    assert run(["predict", first_in, "-o", f"{out}/", "--model", model, "--quiet"], capsys)[0] == 0
    before = (out / "predictions.jsonl").read_bytes()
    code, _, err = run(["predict", second_in, "-o", f"{out}/", "--model", model, "--quiet"], capsys)
    assert code == 2 and f"{out / 'predictions.jsonl'}: exists" in err and "--overwrite" in err, err
    assert (out / "predictions.jsonl").read_bytes() == before
    assert not (out / "b.jpg").exists()  # refused before any work


def test_a_run_still_going_holds_its_folder(tmp_path):
    """The results file is claimed when the run starts: a second run started meanwhile is refused."""
    first = open_sink(tmp_path / "out")
    assert (tmp_path / "out" / "predictions.jsonl").exists()
    with pytest.raises(ValueError, match="exists .*--overwrite"):
        open_sink(tmp_path / "out")
    first.close(keep=False)  # a run without results gives the name back
    assert not (tmp_path / "out" / "predictions.jsonl").exists()


@pytest.fixture
def broken_jpg(tmp_path) -> Path:
    path = tmp_path / "broken.jpg"
    path.write_bytes(GRACE_HOPPER.read_bytes()[:20000])  # a third of a JPEG: not decodable
    return path


def test_a_run_without_results_leaves_an_earlier_csv_as_it_was(tmp_path, model, broken_jpg, capsys):
    results = tmp_path / "res.csv"
    assert run(["predict", GRACE_HOPPER, "-o", results, "--model", model, "--quiet"], capsys)[0] == 0
    before = results.read_bytes()
    assert before.startswith(b"source,face,")
    code, _, err = run(["predict", broken_jpg, "-o", results, "--model", model, "--quiet"], capsys)
    assert code == 1 and f"{broken_jpg}: cannot decode image" in err, err
    assert results.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_a_run_without_results_leaves_no_results_file_in_a_fresh_folder(tmp_path, model, broken_jpg, capsys):
    out = tmp_path / "fresh"
    code, _, err = run(["predict", broken_jpg, "-o", f"{out}/", "--model", model, "--quiet"], capsys)
    assert code == 1 and str(broken_jpg) in err, err
    assert not out.exists()  # the claim file is given back, and the folder the run made (round 11)


# ---- 5, 6: videos ------------------------------------------------------------------------------------
def test_a_video_drawing_that_would_overwrite_an_input_video_is_refused(tmp_path, model, capsys):
    folder = tmp_path / "vc"
    folder.mkdir()
    ffmpeg_clip(folder / "clip.mp4", "-r", "10", "-vf", "scale=160:184", "-c:v", "libx264", "-pix_fmt", "yuv420p",
                frames=6)
    ffmpeg_clip(folder / "clip_keypoints.mp4", "-vf", "scale=160:184", "-c:v", "mjpeg", "-f", "avi", frames=3)
    before = (folder / "clip_keypoints.mp4").read_bytes()
    code, _, err = run(["predict", folder / "clip.mp4", folder / "clip_keypoints.mp4", "-o", f"{folder}/", "--model", model,
                        "--quiet"], capsys)
    # round 12: an output never takes another input's own name, so clip.mp4's outputs are renamed
    assert code == 0, err
    assert (folder / "clip_keypoints.mp4").read_bytes() == before
    assert len((folder / "clip-2.jsonl").read_text().splitlines()) == 6 and (folder / "clip-2_keypoints.mp4").is_file()
    assert not (folder / "clip.jsonl").exists()
    # the other video is predicted; no image gave a result, so no predictions.jsonl is left claimed
    assert len((folder / "clip_keypoints.jsonl").read_text().splitlines()) == 3
    assert not (folder / "predictions.jsonl").exists()


def test_a_variable_rate_video_whose_frames_reach_its_duration_is_whole(tmp_path, model, capsys):
    """10 frames 0.1 s apart, then 10 frames 3 s apart: the container estimates ~1400 frames from its
    duration and a 25 fps guess, but the last frame reaches that duration, so nothing is missing."""
    clip = ffmpeg_clip(tmp_path / "vfr.mkv", "-vf", "scale=160:184,setpts='if(lt(N,10),N*0.1,N*3)/TB'",
                       "-fps_mode", "vfr", "-c:v", "libx264", "-pix_fmt", "yuv420p", frames=20)
    capture = cv2.VideoCapture(str(clip))
    declared = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    capture.release()
    assert declared > 100, declared  # the premise: the estimate is far above the 20 frames there are
    code, stdout, err = run(["predict", clip, "-o", f"{tmp_path / 'out'}/", "--model", model, "--quiet",
                             "--no-draw"], capsys)
    assert code == 0 and "truncated" not in err + stdout, err
    assert "20 video frames" in stdout
    assert len((tmp_path / "out" / "vfr.jsonl").read_text().splitlines()) == 20


# ---- 7: SIGTERM ends a run as Ctrl-C does ---------------------------------------------------------
def test_sigterm_keeps_the_results_so_far_and_no_temporary_file(tmp_path, model):
    many = tmp_path / "many"
    many.mkdir()
    shutil.copy(GRACE_HOPPER, many / "p000.jpg")
    for i in range(1, 150):  # far more than are done before the signal
        os.link(many / "p000.jpg", many / f"p{i:03d}.jpg")
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "facekeypoints", "predict", str(many), "-o", f"{out}/",
                             "--model", str(model), "--quiet", "--batch-size", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not any(out.glob("p*.jpg")):  # a drawing and its result line are written both or neither
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no drawing within 60 s"
            time.sleep(0.02)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err, err
    lines = (out / "predictions.jsonl").read_text().splitlines()
    assert 1 <= len(lines) < 150
    assert all(json.loads(line)["source"].startswith(str(many)) for line in lines)  # each line whole
    assert [p.name for p in out.iterdir() if p.name.startswith(".")] == []
    # every drawing left is named by a record: none from a face whose result line was not written
    assert sorted(p.name for p in out.glob("p*.jpg")) == sorted(json.loads(line)["drawing"] for line in lines)


def test_a_signal_during_a_drawing_and_its_record_waits_for_both():
    from facekeypoints.infer.files import _signals_held

    def stop(signum, frame):
        raise KeyboardInterrupt

    import threading

    previous = signal.signal(signal.SIGTERM, stop)
    done = []
    other = threading.Event()  # a live second thread, as ONNX Runtime's: the OS may hand it the signal
    threading.Thread(target=other.wait, daemon=True).start()
    try:
        with pytest.raises(KeyboardInterrupt):
            with _signals_held():
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(0.05)  # the handler would run here, between the two writes, were it not held
                done.append("drawing")
                done.append("record")
        assert done == ["drawing", "record"]
    finally:
        other.set()
        signal.signal(signal.SIGTERM, previous)


# ---- 8: a model that gives NaN ------------------------------------------------------------------
def test_non_finite_keypoints_are_reported_per_photo_and_drawn_without_a_crash(tmp_path, nan_model, capsys):
    folder = photo_folder(tmp_path / "df", "p1.jpg", "p2.jpg", "p3.jpg")
    out = tmp_path / "out"
    code, _, err = run(["predict", folder, "-o", f"{out}/", "--model", nan_model, "--quiet"], capsys)
    assert code == 1, err
    lines = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert [d["source"] for d in lines] == [str(folder / f"p{i}.jpg") for i in (1, 2, 3)]
    for d in lines:
        assert len(d["faces"]) == 1
        assert all(p["x"] is None and p["y"] is None for p in d["faces"][0]["keypoints"].values())
    for i in (1, 2, 3):
        failure = next(line for line in err.splitlines() if f"p{i}.jpg:" in line)
        assert "non-finite keypoints" in failure, err
        assert cv2.imread(str(out / f"p{i}.jpg")) is not None  # the drawing (face box) is written


def test_result_draw_skips_points_that_are_not_finite(model):
    from facekeypoints import KeypointDetector

    image = cv2.cvtColor(cv2.imread(str(GRACE_HOPPER)), cv2.COLOR_BGR2RGB)
    result = KeypointDetector(model)(image)
    assert len(result) == 1
    face = result.faces[0]
    face.keypoints[:] = np.nan
    assert isinstance(result, Result) and result.draw(image).shape == image.shape  # all NaN: the box only
    face.keypoints[3:] = 50.0  # some points finite: those are drawn, lines to NaN points are not
    drawn = result.draw(image)
    assert drawn.shape == image.shape and not np.array_equal(drawn, image)


# ---- 9, 10: output names and kinds -------------------------------------------------------------------
def test_kaggle_csv_default_output_names_keep_their_dots(tmp_path, model, capsys):
    out = tmp_path / "out"
    for name, rows in (("test.v1.csv", 3), ("test.v2.csv", 2), (".hidden.csv", 1)):
        csv = kaggle_test_csv(tmp_path / name, rows)
        code, _, err = run(["predict", csv, "-o", f"{out}/", "--model", model], capsys)
        assert code == 0, err
    written = {p.name: len(p.read_text().splitlines()) for p in out.iterdir()}
    assert written == {"test.v1_keypoints.csv": 4, "test.v2_keypoints.csv": 3, ".hidden_keypoints.csv": 2}


def test_an_output_that_is_a_fifo_is_refused_and_left_a_fifo(tmp_path, model, capsys):
    fifo = tmp_path / "results.jsonl"
    os.mkfifo(fifo)
    code, _, err = run(["predict", GRACE_HOPPER, "-o", fifo, "--model", model, "--quiet"], capsys)
    assert code == 2 and f"{fifo}: is not a regular file" in err, err
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.jsonl"]


# ---- 11: messages and input kinds ---------------------------------------------------------------
def test_min_face_on_a_kaggle_csv_says_its_faces_are_framed(tmp_path, model, capsys):
    csv = kaggle_test_csv(tmp_path / "x.csv", 1)
    code, _, err = run(["predict", csv, "--min-face", "30", "-o", tmp_path / "k.csv", "--model", model], capsys)
    assert code == 2 and "a Kaggle CSV's faces are framed already" in err, err
    assert not (tmp_path / "k.csv").exists()


def test_a_photo_folder_named_like_an_archive_is_a_folder(tmp_path, model, capsys):
    folder = photo_folder(tmp_path / "photos.zip", "a.jpg")
    code, _, err = run(["predict", folder, "-o", f"{tmp_path / 'o'}/", "--model", model, "--quiet"], capsys)
    assert code == 0, err
    assert sources(tmp_path / "o" / "predictions.jsonl") == [str(folder / "a.jpg")]


def test_ts_and_3gp_files_are_read_as_videos(tmp_path, model, capsys):
    clip = ffmpeg_clip(tmp_path / "clip.ts", "-vf", "scale=160:184", "-c:v", "libx264", "-f", "mpegts", frames=5)
    shutil.copy(clip, tmp_path / "clip.3gp")  # an MPEG-TS stream under a 3GP name: read by content
    out = tmp_path / "o"
    code, stdout, err = run(["predict", clip, tmp_path / "clip.3gp", "-o", f"{out}/", "--model", model, "--quiet",
                             "--no-draw"], capsys)
    assert code == 0, err
    assert "10 video frames" in stdout, stdout
    for name, video in (("clip.jsonl", clip), ("clip-2.jsonl", tmp_path / "clip.3gp")):
        assert sources(out / name) == [f"{video}#frame={i}" for i in range(5)]


def test_debug_after_the_mode_says_where_it_goes(tmp_path, capsys):
    code, _, err = run(["predict", tmp_path / "x.jpg", "--debug"], capsys)
    assert code == 2 and "--debug" in err and "goes before the mode" in err, err


def test_demo_into_an_existing_file_is_refused_before_any_model_loads(tmp_path, capsys, monkeypatch):
    import facekeypoints.infer.predictor as predictor

    loads = []
    monkeypatch.setattr(predictor, "KeypointDetector", lambda *a, **k: loads.append(a) or pytest.fail("model loaded"))
    target = tmp_path / "a.jpg"
    target.write_bytes(b"not mine to replace")
    code, _, err = run(["demo", "-o", target], capsys)
    assert code == 2 and f"{target}: exists and is not a folder" in err, err
    assert loads == [] and target.read_bytes() == b"not mine to replace"
