"""``facekeypoints bench``: latency, throughput, per-frame time and video jitter of a model.

Measures, after warm-up, with the given number of threads:
- the keypoint model alone in torch and ONNX Runtime: ms per face at batch 1, faces/s at a large batch;
- a 640 x 480 frame (matplotlib's grace_hopper.jpg letterboxed): Haar detection + keypoints (with
  refinement), ms per frame;
- jitter on a still face: mean frame-to-frame keypoint motion over a clip of the same photo with
  pixel noise, with and without One Euro smoothing.

Examples
--------
>>> report = run_bench(random_model="keypoint_net", threads=2, repeats=20)   # doctest: +SKIP
"""
from __future__ import annotations

import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from facekeypoints.atomic import atomic_path, check_target
from facekeypoints.data.images import read_image
from facekeypoints.infer.inputs import opencv_path
from facekeypoints.infer.predictor import KeypointDetector
from facekeypoints.infer.video import keypoint_jitter
from facekeypoints.models import create_model
from facekeypoints.models.device import resolve_device
from facekeypoints.models.checkpoint import card_for, save_checkpoint

__all__ = ["run_bench", "check_json_out", "bench_frame", "time_runner", "demo_frame", "write_still_clip", "random_checkpoint"]


def demo_frame(size: tuple[int, int] = (480, 640)) -> np.ndarray:
    """grace_hopper.jpg scaled to fit ``size`` = (H, W) and centred on black: (H, W, 3) uint8 RGB."""
    from matplotlib import cbook

    path = cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    photo = read_image(path)
    h, w = size
    s = min(h / photo.shape[0], w / photo.shape[1])
    small = cv2.resize(photo, (round(photo.shape[1] * s), round(photo.shape[0] * s)), interpolation=cv2.INTER_AREA)
    frame = np.zeros((h, w, 3), np.uint8)
    y, x = (h - small.shape[0]) // 2, (w - small.shape[1]) // 2
    frame[y:y + small.shape[0], x:x + small.shape[1]] = small
    return frame


def write_still_clip(path: str | Path, image: np.ndarray, frames: int = 60, noise: float = 3.0, fps: float = 30.0,
                     seed: int = 0) -> Path:
    """Write ``frames`` copies of ``image`` (H, W, 3) RGB, each with Gaussian pixel noise of std
    ``noise``, as an MJPG .avi (or mp4v .mp4 by suffix): a still face whose keypoints should not move."""
    path = Path(path)
    codec = "mp4v" if path.suffix.lower() == ".mp4" else "MJPG"
    writer = cv2.VideoWriter(opencv_path(path), cv2.VideoWriter_fourcc(*codec), fps, (image.shape[1], image.shape[0]))
    if not writer.isOpened():
        raise OSError(f"{path}: OpenCV cannot write {codec} video here")
    rng = np.random.default_rng(seed)
    bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR).astype(np.float32)
    for _ in range(frames):
        writer.write(np.clip(bgr + rng.normal(0, noise, bgr.shape), 0, 255).astype(np.uint8))
    writer.release()
    return path


def random_checkpoint(name: str, path: str | Path, schema: str = "kaggle15") -> Path:
    """Save a randomly initialised registered model as a checkpoint (for speed measurements only)."""
    torch.manual_seed(0)
    model = create_model(name, schema=schema)
    for p in model.parameters():  # some families start with a zero output layer; speed does not care
        if p.dim() > 1 and not p.any():
            torch.nn.init.normal_(p, std=0.01)
    save_checkpoint(path, model, card_for(model))
    return Path(path)


def _median_ms(fn, repeats: int, warmup: int) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def time_runner(runner, batch: int, repeats: int, warmup: int = 5) -> float:
    """Median ms of one ``runner`` call on a random (batch, C, S, S) input."""
    card = runner.card
    x = np.random.default_rng(0).random((batch, card.in_channels, card.input_size, card.input_size), dtype=np.float32)
    return _median_ms(lambda: runner(x), repeats, warmup)


def bench_frame(detector, frame: np.ndarray, repeats: int, warmup: int = 3) -> dict:
    """Median ms per frame of detection alone and of ``detector(frame)`` (detection + keypoints); a
    whole-photo model (framing resize) searches no faces: its detection is 0."""
    found = detector(frame)
    total = _median_ms(lambda: detector(frame), repeats, warmup)
    if detector.framing == "resize":  # the frame is its one face; find_faces would ask for boxes
        return {"faces": len(found), "detection_ms": 0.0, "frame_ms": total}
    detection = _median_ms(lambda: detector.find_faces(frame), repeats, warmup)
    return {"faces": len(found), "detection_ms": detection, "frame_ms": total}


def _jitter(detector, frames: int) -> dict:
    settle = 10  # frames the tracker needs to go from the detector's box to a steady crop
    with tempfile.TemporaryDirectory() as tmp:
        clip = write_still_clip(Path(tmp) / "still.avi", demo_frame(), frames=frames + settle)
        raw = keypoint_jitter(list(detector.stream(clip, smooth=False))[settle:])
        smooth = keypoint_jitter(list(detector.stream(clip, smooth=True))[settle:])
    # NaN when no two consecutive frames held exactly one face: not measured, so None (null in JSON)
    return {"frames": frames, "settle_frames_skipped": settle, "noise_std": 3.0,
            "jitter_px_raw": None if np.isnan(raw) else raw, "jitter_px_smoothed": None if np.isnan(smooth) else smooth}


def _with_cnn(model, threads: int, echo):
    """The model with the face detector of our own, when this install ships it; else None, said."""
    try:
        return KeypointDetector(model, backend="onnx", threads=threads, detector="cnn")
    except ValueError as err:
        echo(f"onnx + cnn detector: left out ({err})")
        return None


def _px(value: float | None) -> str:
    return "not measured (no two consecutive frames with one face)" if value is None else f"{value:.3f} px/frame"


def run_bench(model: str | Path | None = None, *, random_model: str | None = None, threads: int = 2,
              batch: int = 256, repeats: int = 50, jitter_frames: int = 60, json_out: str | Path | None = None,
              device: str = "cpu", echo=print) -> dict:
    """Run every measurement, print a line for each with ``echo``, return them as a dict (and JSON).

    ``device`` other than the CPU times torch there; ONNX Runtime is always timed on the CPU."""
    if jitter_frames == 1:  # jitter is motion between consecutive frames: one frame has none
        raise ValueError("--jitter-frames must be 0 (skip the jitter clip) or at least 2, got 1")
    if json_out is not None:  # before the timings: a bad name fails at once, not minutes later
        check_json_out(json_out, model)
    device = resolve_device(device)
    torch.set_num_threads(threads)
    cv2.setNumThreads(threads)
    with tempfile.TemporaryDirectory() as tmp:
        if random_model:
            model = random_checkpoint(random_model, Path(tmp) / f"{random_model}.pt")
        report = {"model": str(model or "default kaggle15"), "random_weights": bool(random_model),
                  "threads": threads, "device": str(device),  # torch's; ONNX Runtime and detection run on the CPU
                  "cpu": f"{platform.processor() or platform.machine()}, {os.cpu_count()} logical cores visible",
                  "repeats": repeats, "load_average_1min": round(os.getloadavg()[0], 2), "backends": {}}
        echo(f"model {report['model']}{' (random weights)' if random_model else ''}; threads {threads}; "
             f"torch on {report['device']}; cpu {report['cpu']}; load average {report['load_average_1min']} before the run "
             f"(other processes skew timings); median of {repeats} runs after warm-up")
        backends = ("torch", "onnx")
        if model is not None and Path(model).suffix.lower() == ".onnx":  # an export holds no torch weights
            backends = ("onnx",)
            echo("torch  model: skipped (the model is an ONNX file; give its .pt checkpoint to time torch too)")
        for backend in backends:
            det = KeypointDetector(model, backend=backend, threads=threads, device=device if backend == "torch" else "cpu")
            one = time_runner(det.runner, 1, repeats)
            many = time_runner(det.runner, batch, max(3, repeats // 10))
            report["backends"][backend] = {"ms_per_face_batch1": one, f"faces_per_s_batch{batch}": batch / many * 1000}
            one_thread = " (one thread: faster for a single face)" if backend == "onnx" else ""
            echo(f"{backend:6s} model: {one:.3f} ms/face at batch 1{one_thread}, "
                 f"{batch / many * 1000:.0f} faces/s at batch {batch}")
            frame = bench_frame(det, demo_frame(), max(5, repeats // 5))
            report["backends"][backend]["frame_640x480"] = frame
            how = "the whole frame as one face: no face detection" if det.framing == "resize" else \
                f"detection {frame['detection_ms']:.2f} ms, {frame['faces']} face, keypoints with refinement"
            echo(f"{backend:6s} 640x480 frame: {frame['frame_ms']:.2f} ms ({how})")
        if det.framing == "resize":
            echo("onnx + cnn detector: left out (this model frames whole photos; it uses no face detector)")
            with_cnn = None
        else:
            with_cnn = _with_cnn(model, threads, echo)
        if with_cnn is not None:
            frame = bench_frame(with_cnn, demo_frame(), max(5, repeats // 5))
            report["backends"]["onnx"]["frame_640x480_cnn_detector"] = frame
            echo(f"onnx   640x480 frame, cnn detector: {frame['frame_ms']:.2f} ms (detection {frame['detection_ms']:.2f} "
                 f"ms, {frame['faces']} face, keypoints with refinement)")
        if jitter_frames:
            report["jitter"] = _jitter(det, jitter_frames)
            j = report["jitter"]
            echo(f"jitter on a still face ({jitter_frames} frames, noise std 3): "
                 f"{_px(j['jitter_px_raw'])} raw, {_px(j['jitter_px_smoothed'])} with One Euro smoothing")
    if json_out is not None:  # strict JSON: a figure that could not be measured is null, never a bare NaN
        with atomic_path(json_out) as tmp:
            tmp.write_text(json.dumps(report, indent=2, allow_nan=False) + "\n")
    return report


def check_json_out(json_out: str | Path, model: str | Path | None = None) -> None:
    """ValueError unless ``json_out`` can take the figures: a .json file (not a folder, nor a photo or
    model of another kind), writable, and not the ``model`` being timed."""
    if str(json_out).endswith(("/", os.sep)):  # Path() would drop the slash and write a file of that name
        raise ValueError(f"{json_out}: a folder (it ends with /); the figures are one file: name it *.json")
    if Path(json_out).suffix.lower() != ".json":
        raise ValueError(f"{json_out}: the figures are written as JSON; name the file *.json")
    check_target(json_out, inputs=(model,) if model is not None else ())
