"""Stand-in models for tests: checkpoints whose predictions are known exactly."""
import os
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import torch

from facekeypoints.data import KeypointData
from facekeypoints.data.framing import KAGGLE_MEAN_FACE, template
from facekeypoints.models import create_model
from facekeypoints.models.checkpoint import card_for, save_checkpoint
from facekeypoints.models.codecs import encode


def mean_face_checkpoint(path: str | Path, wobble: float = 0.0, seed: int = 0) -> Path:
    """Save an ``fcnn`` kaggle15 checkpoint (small, fast) that predicts the mean Kaggle face in every
    crop plus, with ``wobble`` > 0, a small image-dependent offset (random output weights of that std).

    A stand-in for trained weights: its keypoints are face-shaped, so framing, refinement and
    tracking can be exercised and checked exactly (with ``wobble=0`` a face's keypoints are the
    template mapped back through its frame).
    """
    torch.manual_seed(seed)
    model = create_model("fcnn", schema="kaggle15")
    last = model.head[-1]
    with torch.no_grad():
        torch.nn.init.normal_(last.weight, std=wobble) if wobble > 0 else last.weight.zero_()
        last.bias.copy_(torch.from_numpy(encode(template(96), (96, 96)).reshape(-1).astype(np.float32)))
    save_checkpoint(path, model, card_for(model))
    return Path(path)


class FakeRunner:
    """A runner (see facekeypoints.models.predict) that answers with ``fn(x)`` and keeps ``card``:
    to count model calls or force an answer without touching the prediction path."""

    backend = "fake"

    def __init__(self, card, fn):
        self.card, self.fn, self.source = card, fn, "<fake>"

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.fn(x)


def face68() -> np.ndarray:
    """A plausible 68-point face (x, y) in a 200 x 160 (H x W) photo: alignable, inside the image."""
    t = np.linspace(0, np.pi, 17)
    pts = list(np.c_[80 - 60 * np.cos(t), 100 + 54 * np.sin(t)])
    pts += [(30 + 8 * i, 70) for i in range(5)] + [(90 + 8 * i, 70) for i in range(5)]
    pts += [(80, 80 + 8 * i) for i in range(4)] + [(68 + 6 * i, 118) for i in range(5)]
    eye = [(-12, 0), (-6, -4), (0, -4), (6, 0), (0, 3), (-6, 3)]
    pts += [(55 + dx, 88 + dy) for dx, dy in eye] + [(105 + dx, 88 + dy) for dx, dy in eye]
    pts += [(60 + 40 * i / 11, 140 + 6 * np.sin(np.pi * i / 11)) for i in range(12)]
    pts += [(66 + 28 * i / 7, 142) for i in range(8)]
    return np.asarray(pts, float)


def make_faces(n=32, seed=0, missing=True) -> KeypointData:
    """Faces drawn as bright blobs at jittered Kaggle mean-face positions: learnable in a few steps."""
    rng = np.random.default_rng(seed)
    kp = KAGGLE_MEAN_FACE[None] + rng.normal(0, 3, (n, 1, 2)) + rng.normal(0, 1, (n, 15, 2))
    yy, xx = np.mgrid[0:96, 0:96]
    images = np.full((n, 96, 96), 40.0)
    for i in range(n):
        for x, y in kp[i]:
            images[i] += 200 * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * 1.5**2))
    kp = kp.astype(np.float32)
    if missing:  # Kaggle's usual pattern: most rows keep eye centres, nose tip and bottom lip only
        kp[::2, [2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13]] = np.nan
    return KeypointData.from_arrays("kaggle15", kp, images=np.clip(images, 0, 255).astype(np.uint8))


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bomb(path: Path, width: int = 50000, height: int = 50000) -> Path:
    """A ~100-byte PNG whose header declares ``width`` x ``height`` 8-bit RGB pixels (a decompression bomb)."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB, no interlace
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", zlib.compress(b"\x00"))
                     + _png_chunk(b"IEND", b""))
    return path


def run_cli(argv, capsys, forbidden=("Traceback", "--debug")) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of the CLI; argparse's own exits count as exit codes. Each of
    ``forbidden`` in stderr fails the test: no traceback, no "run with --debug" (an unexpected error)."""
    from facekeypoints.cli import main

    try:
        code = main([str(a) for a in argv])
    except SystemExit as stop:
        code = stop.code
    out, err = capsys.readouterr()
    assert not any(word in err for word in forbidden), err
    return code, out, err


def grace_hopper_copy(path: Path) -> Path:
    """matplotlib's Grace Hopper photo (512x600, one face Haar finds) copied to ``path``."""
    import shutil

    from matplotlib import cbook

    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False), path)
    return path


def still_clip(path: Path, frames: int = 3) -> Path:
    """A short 160x120 video of the demo frame (one face) at ``path``."""
    import cv2

    from facekeypoints.infer.bench import demo_frame, write_still_clip

    path.parent.mkdir(parents=True, exist_ok=True)
    return write_still_clip(path, cv2.resize(demo_frame(), (160, 120)), frames=frames)


TINY_TRAINING = ["model.name=fcnn", "train.epochs=1", "train.batch_size=8", "train.num_threads=1", "train.device=cpu",
                 "data.split=[0.75, 0.25]"]  # a training of seconds


def tiny_config(csv_path, out, *extra):
    """A config training ``TINY_TRAINING`` on ``csv_path`` into ``out``, with ``extra`` --set overrides."""
    from facekeypoints.train.config import load_config

    return load_config(None, [f"data.train={csv_path}", f"out_dir={out}", *overrides(TINY_TRAINING, extra)])


def overrides(base, extra) -> list[str]:
    """``base`` then ``extra`` key=value overrides, an extra replacing the base item of its key: a
    setting given twice with two values is refused by load_config."""
    given = {item.split("=", 1)[0].strip() for item in extra}
    return [item for item in base if item.split("=", 1)[0].strip() not in given] + list(extra)


def points68(rng, w: int, h: int) -> np.ndarray:
    """68 distinct points well inside a w x h image."""
    return rng.uniform((0.2 * w, 0.2 * h), (0.8 * w, 0.8 * h), (68, 2)).round(2)


def ytf68_csv(folder: Path, rows: int = 3, *, empty_rows=(), text_rows=()) -> Path:
    """``folder/train.csv`` in the ytf68 layout with ``rows`` faces (images under images/train/);
    ``empty_rows`` (0-based) have every coordinate empty (cannot be aligned), ``text_rows`` hold
    'abc' in x0 (bad rows)."""
    import cv2

    (folder / "images" / "train").mkdir(parents=True)
    rng = np.random.default_rng(1)
    lines = ["image,person," + ",".join(f"x{i},y{i}" for i in range(68))]
    for r in range(rows):
        cv2.imwrite(str(folder / "images" / "train" / f"face{r}.png"), rng.integers(0, 256, (90, 80, 3), np.uint8))
        cells = [f"{v:.2f}" for v in (face68() * (0.5, 0.45) + rng.uniform(-1, 1, (68, 2))).reshape(-1)]
        if r in empty_rows:
            cells = [""] * 136
        if r in text_rows:
            cells[0] = "abc"
        lines.append(f"train/face{r}.png,Person_{r}," + ",".join(cells))
    (folder / "train.csv").write_text("\n".join(lines) + "\n")
    return folder / "train.csv"


def link_or_skip(target, link: Path, *, hard: bool = False) -> None:
    """A symbolic (or ``hard``) link at ``link`` to ``target``; the test is skipped where the disk has none."""
    import pytest

    try:
        (os.link if hard else os.symlink)(target, link)
    except (OSError, NotImplementedError):
        pytest.skip(f"{'hard' if hard else 'symbolic'} links are not available here")


def running(app, *, details: bool = False, **options):
    """Context manager: ``app`` served by uvicorn as ``facekeypoints serve`` runs it (``server(app,
    **options)``), on a free loopback port, in a thread; yields the port (with ``details``: the port,
    the server and its thread) and stops the server on exit."""
    import contextlib
    import threading
    import time

    from facekeypoints.serve.server import bind, server

    @contextlib.contextmanager
    def serving():
        sock = bind("127.0.0.1", 0)
        instance = server(app, **options)
        thread = threading.Thread(target=instance.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        for _ in range(200):
            if instance.started:
                break
            time.sleep(0.05)
        try:
            yield (sock.getsockname()[1], instance, thread) if details else sock.getsockname()[1]
        finally:
            instance.should_exit = True
            thread.join(timeout=15)
            sock.close()

    return serving()


class ListCapture:
    """The capture protocol ``stream()`` documents (read, get, isOpened) over a list of BGR frames;
    ``times`` (ms) answer CAP_PROP_POS_MSEC for the frame just read."""
    name = "capture"

    def __init__(self, frames, times=None, fps=25.0):
        self.frames, self.times, self.fps, self.i = frames, times, fps, 0

    def read(self):
        if self.i >= len(self.frames):
            return False, None
        self.i += 1
        return True, self.frames[self.i - 1].copy()

    def get(self, prop):
        if prop == cv2.CAP_PROP_POS_MSEC and self.times is not None:
            return self.times[self.i - 1]
        return self.fps if prop == cv2.CAP_PROP_FPS else 0.0

    def isOpened(self):  # noqa: N802
        return True


def kaggle_pixels(seed: int) -> str:
    """A Kaggle CSV's Image text: 96 x 96 random grey levels, one image per seed."""
    return " ".join(map(str, np.random.default_rng(seed).integers(0, 256, 96 * 96)))


def kaggle_training_csv(path: Path, images: list[str]) -> Path:
    """training.csv with every coordinate at 40 and the given Image texts, one row each."""
    from facekeypoints.schema import load_schema

    columns = load_schema("kaggle15").columns()
    lines = [",".join(columns + ["Image"])] + [",".join(["40.0"] * 30 + [image]) for image in images]
    path.write_text("\n".join(lines) + "\n", newline="")
    return path


class LabelEcho:
    """Stands in for a 68-point KeypointDetector in evaluate_photos: predicts ``points`` (68, 2)
    wherever it is asked."""

    def __init__(self, points):
        from types import SimpleNamespace

        from facekeypoints.schema import load_schema

        self.points, self.schema, self.runner = points, load_schema("ibug68"), SimpleNamespace(source="stand-in")

    def __call__(self, image, boxes=None):
        from types import SimpleNamespace

        return SimpleNamespace(keypoints=self.points[None].copy())
