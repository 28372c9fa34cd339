"""Round 20: long work that is stopped from outside stops whole, and what it loads stays small."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie nobody has reaped yet has ended)."""
    try:
        state = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in state


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the parent-death signal is Linux's prctl")
def test_a_killed_bench_train_takes_its_training_workers_with_it(tmp_path):
    """bench_train trains in a process pool; killing the benchmark (kill, timeout) left its workers training
    on unseen, and a second benchmark then trained beside them. Its pool initializer makes them stop too."""
    started = tmp_path / "worker.pid"
    script = tmp_path / "bench.py"
    script.write_text(f"""
import os, sys, time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
sys.path.insert(0, {str(ROOT / "benchmarks")!r})
import bench_train

def work(path):
    with open(path + ".tmp", "w") as f:
        f.write(str(os.getpid()))
    os.replace(path + ".tmp", path)
    time.sleep(120)

if __name__ == "__main__":
    with ProcessPoolExecutor(1, mp_context=get_context("spawn"), initializer=bench_train._stop_with,
                             initargs=(os.getpid(),)) as pool:
        pool.submit(work, sys.argv[1]).result()
""")
    bench = subprocess.Popen([sys.executable, str(script), str(started)], cwd=tmp_path)
    try:
        deadline = time.monotonic() + 60
        while not started.exists():
            assert bench.poll() is None and time.monotonic() < deadline, "the worker never started"
            time.sleep(0.1)
        worker = int(started.read_text())
        assert _alive(worker)
        bench.send_signal(signal.SIGKILL)  # no handler of the benchmark's own can run
        bench.wait(10)
        deadline = time.monotonic() + 15
        while _alive(worker) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _alive(worker), "the worker outlived the killed benchmark"
    finally:
        bench.kill()
        if started.exists() and _alive(pid := int(started.read_text())):
            os.kill(pid, signal.SIGKILL)


def _interlaced_clip(photo: Path, out: Path, frames: int = 4) -> Path:
    """An interlaced H.264 MP4 (top field first) of ``photo``, made with imageio-ffmpeg's ffmpeg."""
    import imageio_ffmpeg

    out.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-nostdin", "-y", "-loop", "1", "-i",
                    str(photo), "-frames:v", str(frames), "-r", "10", "-vf", "scale=256:300", "-c:v", "libx264",
                    "-flags", "+ildct+ilme", "-x264opts", "tff=1", "-pix_fmt", "yuv420p", str(out)], check=True)
    return out


def test_an_interlaced_video_is_read_by_ffmpeg_and_its_faces_found(tmp_path, model, capsys):
    """OpenCV's build hands interlaced H.264 to a scaler that refuses it and returns black frames: predict
    found 0 faces and exited 0. Such a video is now read through FFmpeg's own program, deinterlaced."""
    from facekeypoints.infer.video import _interlaced, open_video
    from fakes import grace_hopper_copy, run_cli

    clip = _interlaced_clip(grace_hopper_copy(tmp_path / "grace.jpg"), tmp_path / "in" / "tv.mp4")
    assert _interlaced(str(clip))
    capture, _, fps = open_video(clip)
    try:
        ok, frame = capture.read()
        assert ok and frame.shape == (300, 256, 3) and fps == 10.0
        assert frame.mean() > 40  # a picture, not the black frame OpenCV's reader gave
    finally:
        capture.release()
    code, out, err = run_cli(["predict", tmp_path / "in", "--model", model, "-o", tmp_path / "out", "--quiet"], capsys)
    assert code == 0, err
    rows = [json.loads(line) for line in (tmp_path / "out" / "tv.jsonl").read_text().splitlines()]
    assert [row["frame"] for row in rows] == [0, 1, 2, 3]
    assert all(len(row["faces"]) == 1 for row in rows), rows
    assert (tmp_path / "out" / "tv_keypoints.mp4").stat().st_size > 0


def test_a_progressive_video_is_still_read_by_opencv(tmp_path):
    from facekeypoints.infer.video import _interlaced, open_video
    from fakes import still_clip

    clip = still_clip(tmp_path / "clip.mp4")
    assert not _interlaced(str(clip))
    capture, _, _ = open_video(clip)
    try:
        assert type(capture).__name__ == "VideoCapture"
    finally:
        capture.release()


def test_a_face_being_covered_is_not_followed_into_a_shrinking_box():
    """A hand rising over a followed face: its keypoints crowded into the part left uncovered and its box
    shrank frame by frame (180 to 133 px) until the next scheduled detection. A box side more than
    FACE_RESIZED off the last detection's now brings the detector in, which re-finds the face at its size."""
    import cv2
    import numpy as np

    from facekeypoints import KeypointDetector
    from facekeypoints.infer.bench import demo_frame
    from facekeypoints.infer.video import FACE_RESIZED
    from fakes import ListCapture

    image = demo_frame()
    detector = KeypointDetector()
    x0, y0, x1, y1 = (int(v) for v in detector(image)[0].box[:4])
    frames = []
    for k in range(10):
        frame = image.copy()
        if k >= 3:  # skin-coloured, rising over the face by 15% of its height a frame
            top = int(y1 - (k - 2) * (y1 - y0) * 0.15)
            frame[max(top, y0 - 5):y1 + 5, x0 - 5:x1 + 5] = (190, 150, 130)
        frames.append(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    results = list(detector.stream(ListCapture(frames, fps=25.0), redetect_every=10))
    sides = [[float(np.sqrt((f.box[2] - f.box[0]) * (f.box[3] - f.box[1]))) for f in r] for r in results]
    assert len(sides[0]) == 1 and all(len(s) <= 1 for s in sides), sides
    assert all(s >= (1 - FACE_RESIZED) * sides[0][0] for frame in sides for s in frame), sides
    assert not sides[-1], sides  # covered at the end: no face


def _answers(sock) -> list[tuple[int, bytes]]:
    """(status, body) of every answer on ``sock``, read until the server closes it (Content-Length framed)."""
    sock.settimeout(60)
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    answers = []
    while data:
        head, _, rest = data.partition(b"\r\n\r\n")
        length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length"))
        answers.append((int(head.split()[1]), rest[:length]))
        data = rest[length:]
    return answers


def test_pipelined_requests_on_a_half_closed_connection_are_all_answered():
    """A client that sends several requests at once and then half-closes (nc -N) got only the first
    answer; each complete request is now answered, then the connection closed; a last upload cut short
    still gets its 400."""
    import socket

    from matplotlib import cbook

    from facekeypoints.serve.app import create_app
    from fakes import running

    photo = Path(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)).read_bytes()

    def post(body: bytes, length: int | None = None) -> bytes:
        return (b"POST /v1/keypoints HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n"
                % (len(body) if length is None else length)) + body

    app = create_app({"kaggle15": "kaggle15"}, workers=1, upload_timeout=60)
    health = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    with running(app) as port:
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(post(photo) + health + post(photo))
            sock.shutdown(socket.SHUT_WR)
            answers = _answers(sock)
        assert [status for status, _ in answers] == [200, 200, 200], answers
        assert len(json.loads(answers[0][1])["faces"]) == 1 and len(json.loads(answers[2][1])["faces"]) == 1
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(post(photo) + post(photo, length=len(photo) + 100))
            sock.shutdown(socket.SHUT_WR)
            answers = _answers(sock)
        assert [status for status, _ in answers] == [200, 400], answers
        assert b"the upload was cut short" in answers[1][1]


def test_the_drawn_video_keeps_the_source_s_pixel_aspect(tmp_path, model, capsys):
    """An anamorphic video (pixels twice as wide as tall) was drawn with square pixels: players showed
    the drawing squeezed to half the width of the source. The drawing now carries the source's ratio."""
    import imageio_ffmpeg

    from facekeypoints.infer.video import _video_header, pixel_aspect
    from fakes import grace_hopper_copy, run_cli

    photo = grace_hopper_copy(tmp_path / "grace.jpg")
    clip = tmp_path / "in" / "wide.mp4"
    clip.parent.mkdir()
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-nostdin", "-y", "-loop", "1", "-i",
                    str(photo), "-frames:v", "3", "-r", "10", "-vf", "scale=256:300,setsar=2/1", "-c:v", "libx264",
                    "-pix_fmt", "yuv420p", str(clip)], check=True)
    assert str(pixel_aspect(clip)) == "2" and pixel_aspect(photo) is None
    code, _, err = run_cli(["predict", tmp_path / "in", "--model", model, "-o", tmp_path / "out", "--quiet"], capsys)
    assert code == 0, err
    assert "[SAR 2:1 DAR" in _video_header(str(tmp_path / "out" / "wide_keypoints.mp4"))


def test_a_mirroring_display_matrix_is_applied_as_a_flip(tmp_path, model, capsys):
    """A video whose track header says "show me mirrored" was turned upside down by OpenCV (it applies
    the matrix as a half turn), so faces were missed without a word. It is now read through FFmpeg,
    which applies the flip; a plain half turn is still OpenCV's."""
    import cv2
    import imageio_ffmpeg
    import numpy as np

    from facekeypoints.infer.video import _mirrored, open_video
    from fakes import grace_hopper_copy, run_cli

    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    plain, mirrored, turned = tmp_path / "plain.mp4", tmp_path / "in" / "mirrored.mp4", tmp_path / "turned.mp4"
    mirrored.parent.mkdir()
    subprocess.run([ffmpeg, "-loglevel", "error", "-nostdin", "-y", "-loop", "1", "-i",
                    str(grace_hopper_copy(tmp_path / "grace.jpg")), "-frames:v", "3", "-r", "10", "-vf",
                    "scale=256:300", "-c:v", "libx264", "-pix_fmt", "yuv420p", str(plain)], check=True)
    for flag, out in ((["-display_hflip"], mirrored), (["-display_rotation", "180"], turned)):
        subprocess.run([ffmpeg, "-loglevel", "error", "-nostdin", "-y", *flag, "-i", str(plain), "-c", "copy",
                        str(out)], check=True)
    assert _mirrored(str(mirrored)) and not _mirrored(str(turned)) and not _mirrored(str(plain))
    original = cv2.VideoCapture(str(plain)).read()[1].astype(int)
    capture, _, _ = open_video(mirrored)
    try:
        ok, frame = capture.read()
    finally:
        capture.release()
    assert ok and np.abs(frame - original[:, ::-1]).mean() < 2  # flipped left-right, not turned
    code, _, err = run_cli(["predict", tmp_path / "in", "--model", model, "-o", tmp_path / "out", "--quiet"], capsys)
    assert code == 0, err
    rows = [json.loads(line) for line in (tmp_path / "out" / "mirrored.jsonl").read_text().splitlines()]
    assert len(rows) == 3 and all(len(row["faces"]) == 1 for row in rows), rows


def test_a_detector_with_tighter_boxes_still_lets_faces_be_followed():
    """FACE_RESIZED compares a face's keypoints' box with itself and the detector's box with itself: a
    detector whose boxes are a fifth tighter than its framing expects must not bring the detector in
    on every frame (each size compared with the other kind's would differ by over 15% every time)."""
    import cv2
    import numpy as np

    from facekeypoints import KeypointDetector
    from facekeypoints.infer.bench import demo_frame
    from facekeypoints.infer.detectors import HaarDetector
    from fakes import ListCapture

    class Tight:
        def __init__(self):
            self.haar = HaarDetector()

        def detect(self, image):
            boxes = np.array(self.haar.detect(image), float).reshape(-1, 5)
            centre, half = (boxes[:, :2] + boxes[:, 2:4]) / 2, (boxes[:, 2:4] - boxes[:, :2]) * 0.4
            boxes[:, :2], boxes[:, 2:4] = centre - half, centre + half
            return boxes

    rng = np.random.default_rng(0)
    image = cv2.cvtColor(demo_frame(), cv2.COLOR_RGB2BGR).astype(float)
    frames = [np.clip(image + rng.normal(0, 3, image.shape), 0, 255).astype(np.uint8) for _ in range(12)]
    results = list(KeypointDetector(detector=Tight()).stream(ListCapture(frames), redetect_every=10))
    assert all(len(r) == 1 for r in results)
    followed = [r[0].tracked for r in results]
    assert followed.count(True) >= 9, followed  # detected on frames 0 and 10 only (the schedule)


@pytest.mark.parametrize("line, interlaced", [
    ("h264 (High), yuv420p(top first), 720x576 [SAR 16:15 DAR 4:3]", True),
    ("dvvideo, yuv411p(bottom first), 720x480", True),
    ("mpeg2video (Main), yuv420p(tv, top coded first (swapped)), 720x576", True),
    ("h264, yuv420p(tv, bt709, bottom coded first (swapped)), 1920x1080", True),
    ("h264 (High), yuv420p(tv, progressive), 1920x1080", False),
    ("h264 (High), yuv420p, 640x480", False)])
def test_every_field_order_ffmpeg_names_counts_as_interlaced(line, interlaced, monkeypatch):
    import facekeypoints.infer.video as video

    monkeypatch.setattr(video, "_video_header", lambda path: line)
    assert video._interlaced("x.mp4") is interlaced


def test_the_service_says_which_faces_were_not_searched_when_it_finds_none():
    """The default detectors shrink a photo before searching it: in a 4000 px photo the Haar detector
    cannot find faces under 400 px. An answer with no face now says so, with the size for that image."""
    import cv2
    import numpy as np
    from fastapi.testclient import TestClient

    from facekeypoints.infer.detectors import CnnDetector, HaarDetector
    from facekeypoints.serve.app import create_app

    assert HaarDetector().smallest_face((3000, 4000, 3)) == pytest.approx(400)
    assert HaarDetector(min_face=40).smallest_face((3000, 4000)) == pytest.approx(40)
    assert CnnDetector().smallest_face((3000, 4000, 3)) == pytest.approx(16 * 4000 / 480)
    blank = cv2.imencode(".png", np.full((3000, 4000, 3), 128, np.uint8))[1].tobytes()
    answer = TestClient(create_app({"kaggle15": "kaggle15"}, workers=1)).post(
        "/v1/keypoints", content=blank, headers={"content-type": "image/png"})
    assert answer.status_code == 200 and answer.json()["faces"] == [], answer.text
    assert any("faces under 400 px are not searched in this 4000x3000 image" in note
               for note in answer.json()["notes"]), answer.json()


def test_predict_says_which_faces_were_not_searched_in_photos_without_a_face(tmp_path, model, capsys):
    """A phone photo whose face is under 400 px gave "0 faces" and nothing else: the default detector
    shrinks a 4000 px photo to 240 px before it searches. The summary now says so, and how to search."""
    import cv2
    import numpy as np

    from fakes import grace_hopper_copy, run_cli

    folder = tmp_path / "in"
    grace_hopper_copy(folder / "face.jpg")
    cv2.imwrite(str(folder / "big.png"), np.full((3000, 4000, 3), 128, np.uint8))
    cv2.imwrite(str(folder / "small.png"), np.full((300, 400, 3), 128, np.uint8))
    code, out, err = run_cli(["predict", folder, "--model", model, "-o", tmp_path / "out", "--quiet"], capsys)
    assert code == 0, err
    said = out + err
    assert "no face found in 2 images; faces under 40 to 400 px (by the image's size) were not searched in them" \
        in said and "--min-face PX" in said, said
    code, out, err = run_cli(["predict", folder / "face.jpg", "--model", model, "-o", tmp_path / "out2", "--quiet"],
                             capsys)
    assert code == 0 and "no face found" not in out + err


def test_a_tilde_name_of_no_user_is_a_plain_missing_file(tmp_path, model, capsys):
    """Hypothesis found it: "~0" (a ~user of no such user) raised pathlib's "Could not determine home
    directory" from every path a user gives; it now stays as written, as a shell leaves it."""
    from facekeypoints import KeypointDetector
    from facekeypoints.data.dataset import user_path
    from fakes import run_cli

    assert str(user_path("~nosuchuser0/x.jpg")) == "~nosuchuser0/x.jpg"
    with pytest.raises((FileNotFoundError, ValueError), match="~nosuchuser0"):
        KeypointDetector(model, detector=None)("~nosuchuser0")
    code, _, err = run_cli(["predict", "~nosuchuser0/x.jpg", "--model", model, "-o", tmp_path / "out"], capsys)
    assert code != 0 and "~nosuchuser0/x.jpg" in err, err
