"""``facekeypoints demo``: faces and keypoints on photos that ship with our dependencies, offline.

Photos: matplotlib's ``grace_hopper.jpg`` (a dependency) and scikit-image's astronaut (a dev
extra; skipped with a note when scikit-image is not installed). For each, a drawn image and the
JSON result go to ``demo-output/``, and the faces found and the time per face are printed.

Examples
--------
>>> from facekeypoints.demo import run_demo
>>> results = run_demo("demo-output")          # doctest: +SKIP
grace_hopper: 1 face, 2.1 ms per face (detection 9.8 ms) -> demo-output/grace_hopper.jpg
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from facekeypoints.data.images import read_image

__all__ = ["run_demo", "demo_images"]


def demo_images(echo=print) -> dict[str, np.ndarray]:
    """{name: (H, W, 3) uint8 RGB} of the photos available offline; notes what is missing via ``echo``."""
    from matplotlib import cbook

    images = {}
    path = cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    images["grace_hopper"] = read_image(path)
    try:
        from skimage import data as skdata
    except ImportError:
        echo("note: scikit-image is not installed (pip install 'facekeypoints[dev]'), "
             "so the astronaut photo is skipped")
    else:
        images["astronaut"] = np.ascontiguousarray(skdata.astronaut())
    return images


def run_demo(out_dir: str | Path = "demo-output", *, model: str | Path | None = None, backend: str | None = None,
             echo=print) -> dict:
    """Detect faces and keypoints on the demo photos; write ``<name>.jpg`` (drawn) and ``<name>.json``.

    ``model`` None uses the shipped kaggle15 model. Returns {name: Result}. Each run replaces the
    files a run before it wrote (unlike predict: ``make demo`` runs it again into the same folder),
    and only those: another file of the same name (``-o`` a folder of the user's own photos) is
    refused with a ValueError naming it, before anything is written.
    """
    from facekeypoints.infer.predictor import KeypointDetector

    from facekeypoints.atomic import check_target

    out_dir = check_target(out_dir, folder=True)  # before the model loads: a file there fails at once
    images = demo_images(echo)
    for name in images:
        _check_replaceable(out_dir, name)
    detector = KeypointDetector(model, backend=backend)
    echo(f"model {detector.runner.source} ({detector.card.model}, schema {detector.schema.name}, "
         f"{detector.runner.backend}); detector {type(detector.detector).__name__}")
    results = {}
    for name, image in images.items():
        detector(image)  # warm-up, so the time printed is the steady-state time
        result = detector(image)
        result.source = name
        result.save(out_dir / f"{name}.json")
        result.save(out_dir / f"{name}.jpg", image=image)
        keypoint_ms = sum(v for k, v in result.timings.items() if k != "detection")
        per_face = f"{keypoint_ms / len(result):.1f} ms per face" if len(result) else "no face found"
        echo(f"{name}: {len(result)} face{'s' if len(result) != 1 else ''}, {per_face} "
             f"(detection {result.timings['detection']:.1f} ms) -> {out_dir / (name + '.jpg')}")
        results[name] = result
    return results


def _check_replaceable(out_dir: Path, name: str) -> None:
    """ValueError naming ``<name>.json`` or ``<name>.jpg`` in ``out_dir`` when it exists and is not an
    earlier demo's output: that JSON is a result whose source is ``name``; that drawing has it beside it."""
    record, drawing = out_dir / f"{name}.json", out_dir / f"{name}.jpg"
    if not (record.exists() or drawing.exists()):
        return
    own = False
    if record.is_file():
        try:
            doc = json.loads(record.read_text(encoding="utf-8"))
            own = isinstance(doc, dict) and doc.get("source") == name and isinstance(doc.get("faces"), list)
        except (OSError, ValueError):  # unreadable or not JSON (UnicodeDecodeError is a ValueError): not ours
            own = False
    if not own:
        mine = record if record.exists() else drawing
        why = ("is not a result the demo wrote" if mine == record
               else f"has no {record.name} of an earlier demo beside it")
        raise ValueError(f"{mine}: exists and {why}; the demo replaces only its own earlier outputs "
                         f"({name}.jpg, {name}.json). Move the file or give another -o folder")
