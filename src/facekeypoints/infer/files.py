"""Run a KeypointDetector over files: images, folders, videos and Kaggle CSVs (``facekeypoints predict``).

A file that cannot be read is reported and skipped; the others are still processed, and every
failure is listed in the returned report (the CLI exits non-zero when there is one).

Outputs, under the output folder:
- images: ``predictions.jsonl`` (one ``Result.to_dict()`` per line, in input order) and, unless
  ``draw=False``, each image with faces drawn at the same relative path;
- a video ``clip.mp4``: ``clip.jsonl`` (one line per frame) and ``clip_keypoints.mp4``;

Examples
--------
>>> report = predict_paths(KeypointDetector(), ["photos/"], "out/")     # doctest: +SKIP
>>> print(report)                                                      # doctest: +SKIP
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from facekeypoints.data.images import read_image
from facekeypoints.infer.results import IMAGE_SUFFIXES
from facekeypoints.infer.video import open_video

__all__ = ["predict_paths", "predict_video", "PredictReport", "VIDEO_SUFFIXES", "CSV_SUFFIXES"]

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg")
CSV_SUFFIXES = (".csv", ".zip", ".gz")


@dataclass
class PredictReport:
    """What a run over files did. ``failures`` holds (file, error message) pairs."""

    images: int = 0
    frames: int = 0
    faces: int = 0
    written: list[str] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)  # files in a folder that are not images or videos

    def __str__(self) -> str:
        lines = [f"{self.images} images, {self.frames} video frames, {self.faces} faces; "
                 f"wrote {len(self.written)} files"]
        if self.ignored:
            lines.append(f"ignored {len(self.ignored)} files that are not images or videos: {self.ignored[:5]}"
                         f"{' ...' if len(self.ignored) > 5 else ''}")
        if self.failures:
            lines.append(f"FAILED {len(self.failures)} files:")
            lines += [f"  {path}: {message}" for path, message in self.failures]
        return "\n".join(lines)


def _why(path: Path, err: Exception) -> str:
    """The error message without the leading file name (the report prints the file itself)."""
    message = str(err)
    return message[len(str(path)) + 2:] if message.startswith(f"{path}: ") else message


def _collect(inputs: list[str | Path], report: PredictReport) -> list[tuple[Path, Path]]:
    """(file, output path relative to the output folder) for every image or video in ``inputs``."""
    found = []
    for item in map(Path, inputs):
        if item.is_dir():
            for path in sorted(p for p in item.rglob("*") if p.is_file()):
                if path.suffix.lower() in IMAGE_SUFFIXES + VIDEO_SUFFIXES:
                    found.append((path, path.relative_to(item)))
                else:
                    report.ignored.append(str(path))
        elif item.is_file():
            found.append((item, Path(item.name)))
        else:
            report.failures.append((str(item), "no such file or folder"))
    return found


def predict_paths(detector, inputs: list[str | Path], out_dir: str | Path, *, draw: bool = True,
                  batch_size: int = 16, progress: bool = True) -> PredictReport:
    """Predict every image and video in ``inputs`` (files or folders, searched recursively).

    Images are read ``batch_size`` at a time and go through ``detector.predict_batch``.
    """
    from tqdm import tqdm

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    report = PredictReport()
    files = _collect(inputs, report)
    images = [(p, rel) for p, rel in files if p.suffix.lower() not in VIDEO_SUFFIXES]
    if images:
        jsonl = out_dir / "predictions.jsonl"
        with open(jsonl, "w") as sink, tqdm(total=len(images), desc="images", unit="img", disable=not progress) as bar:
            for start in range(0, len(images), batch_size):
                _predict_images(detector, images[start:start + batch_size], out_dir, draw, sink, report)
                bar.update(len(images[start:start + batch_size]))
        report.written.append(str(jsonl))
    for path, rel in files:
        if path.suffix.lower() in VIDEO_SUFFIXES:
            try:
                predict_video(detector, path, out_dir / rel.parent, draw=draw, progress=progress, report=report)
            except (ValueError, OSError) as err:
                report.failures.append((str(path), _why(path, err)))
    return report


def _predict_images(detector, batch: list[tuple[Path, Path]], out_dir: Path, draw: bool, sink,
                    report: PredictReport) -> None:
    """Read a batch (recording unreadable files), predict it in one call, write JSON lines and drawings."""
    readable, pixels = [], []
    for path, rel in batch:
        try:
            pixels.append(read_image(path))
            readable.append((path, rel))
        except (ValueError, OSError) as err:
            report.failures.append((str(path), _why(path, err)))
    results = detector.predict_batch(pixels) if pixels else []
    for (path, rel), rgb, result in zip(readable, pixels, results):
        result.source = str(path)
        sink.write(json.dumps(result.to_dict()) + "\n")
        report.images += 1
        report.faces += len(result)
        if draw:
            target = out_dir / rel
            if target.resolve() == path.resolve():
                raise ValueError(f"{target}: the output would overwrite the input image; choose another -o folder")
            report.written.append(str(result.save(target, image=rgb)))


def _writer(path: Path, fps: float, size: tuple[int, int]) -> cv2.VideoWriter:
    """An mp4v MPEG-4 writer (OpenCV's bundled FFmpeg has it); errors when OpenCV cannot write."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    if not writer.isOpened():
        raise OSError(f"{path}: OpenCV cannot open an mp4v video writer here")
    return writer


class _KeepFrame:
    """A capture that remembers the last frame it returned, so results can be drawn on it."""

    def __init__(self, capture: cv2.VideoCapture):
        self.capture, self.frame = capture, None

    def read(self):
        ok, self.frame = self.capture.read()
        return ok, self.frame

    def get(self, prop: int) -> float:
        return self.capture.get(prop)

    def isOpened(self) -> bool:  # noqa: N802  (OpenCV's name)
        return self.capture.isOpened()


def predict_video(detector, path: str | Path, out_dir: str | Path, *, draw: bool = True, progress: bool = True,
                  report: PredictReport | None = None, **stream_options) -> PredictReport:
    """Track faces through the video at ``path``; write ``<stem>.jsonl`` and ``<stem>_keypoints.mp4``."""
    from tqdm import tqdm

    report = PredictReport() if report is None else report
    path, out_dir = Path(path), Path(out_dir)
    capture, _, fps = open_video(path)
    out_dir.mkdir(parents=True, exist_ok=True)
    total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) or None
    jsonl, movie = out_dir / f"{path.stem}.jsonl", out_dir / f"{path.stem}_keypoints.mp4"
    source, writer = _KeepFrame(capture), None
    try:
        with open(jsonl, "w") as sink:
            results = tqdm(detector.stream(source, **stream_options), total=total, desc=path.name, unit="frame",
                           disable=not progress)
            for index, result in enumerate(results):
                result.source = f"{path}#frame={index}"
                sink.write(json.dumps(result.to_dict()) + "\n")
                report.frames += 1
                report.faces += len(result)
                if draw:
                    bgr = source.frame
                    writer = writer or _writer(movie, fps, (bgr.shape[1], bgr.shape[0]))
                    writer.write(cv2.cvtColor(result.draw(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)), cv2.COLOR_RGB2BGR))
    finally:
        capture.release()
        if writer is not None:
            writer.release()
    report.written += [str(jsonl)] + ([str(movie)] if writer is not None else [])
    return report
