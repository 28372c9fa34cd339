"""``KeypointDetector``: faces and their keypoints in photos, arrays and videos.

One front door over a face detector, the framing of each face exactly as the model's training
crops (see :mod:`facekeypoints.infer.framing`) and a model backend (torch or ONNX Runtime).

Examples
--------
>>> from facekeypoints import KeypointDetector                          # doctest: +SKIP
>>> det = KeypointDetector()       # shipped kaggle15 model, Haar detector  # doctest: +SKIP
>>> result = det("photo.jpg")      # always a Result, maybe with no faces   # doctest: +SKIP
>>> result[0]["nose_tip"], result.keypoints.shape                      # doctest: +SKIP
(array([251.3, 187.9]), (1, 15, 2))
>>> det(frame_bgr, color="bgr")    # OpenCV frames are BGR                 # doctest: +SKIP
>>> KeypointDetector("best.pt", detector=None)(img, boxes=[[40, 30, 140, 130]])  # doctest: +SKIP
>>> results = det.predict_batch(images)   # keypoints batched over all faces  # doctest: +SKIP
"""
from __future__ import annotations

import contextlib
import math
import numbers
import time
import warnings
from collections.abc import Mapping, Set
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from facekeypoints.data import framing
from facekeypoints.data.formats.checks import check_count, check_flags
from facekeypoints.infer.detectors import HaarDetector, check_boxes, make_detector
from facekeypoints.infer.inputs import to_rgb
from facekeypoints.infer.onnx import OnnxRunner, UnreadableModelError, cached_export
from facekeypoints.infer.results import Face, Result
from facekeypoints.infer.video import stream
from facekeypoints.models.device import resolve_device
from facekeypoints.models.predict import TorchRunner, plane, predict_crops, predict_frames
from facekeypoints.models.threads import max_threads
from facekeypoints.models.weights import resolve_checkpoint

__all__ = ["KeypointDetector", "load_runner", "REFINE_PASSES", "REFINE_SETTLED", "REFRAME_MAX_SCALE",
           "REFRAME_MAX_SHIFT"]

# Refinement stops for a face when its frame moves less than REFINE_SETTLED of the crop's side
# between passes, after REFINE_PASSES model passes at most. On ytf68's validation people (140 faces
# found by every box source) 8 passes / 0.03 took 2.6 passes on average and brought the 68-point NME
# of six box sources (Haar, dlib, the points' bounding box, each also jittered by 10%) to within
# 0.55 points of each other; two fixed passes: 3.46 points apart. From the fourth pass on, frames
# come from the mean of the last two passes, which settles faces that swing between two frames
# (the bench frame's face: 5 passes instead of 8) at the same NME (benchmarks/bench_boxes.py).
REFINE_PASSES = 8
REFINE_SETTLED = 0.03
# A re-frame may move and rescale a face's frame, but not far from where its box put it: a weak model's
# face-shaped answer (shape error 0.28) asked each pass for a frame about 6x wider than the last, and eight
# passes put keypoints 10^6 px off a 300-px photo. A pass whose frame's side is more than REFRAME_MAX_SCALE
# times or less than 1/REFRAME_MAX_SCALE of the box's frame, or whose centre lies more than REFRAME_MAX_SHIFT
# of that frame's side from its centre, is not made: the face keeps its last pass. The shipped models on the
# 300-W, AFLW2000 and IMM photos (boxes from labels or Haar) stay within 1.67 times and 0.43 of the side.
REFRAME_MAX_SCALE = 3.0
REFRAME_MAX_SHIFT = 1.0


def load_runner(model: str | Path | None = None, backend: str | None = None, device: str = "cpu",
                threads: int | None = None):
    """A backend for ``model``: a checkpoint (.pt), an ONNX file, a shipped model's name ("kaggle15",
    "ibug68"), or None for the shipped kaggle15 model.

    ``backend`` None picks ONNX Runtime on the CPU (about twice as fast as torch for these small
    models, see ``facekeypoints bench``) and torch for other devices. ONNX Runtime with a checkpoint
    exports it once to the cache (``facekeypoints.infer.onnx.cached_export``); if a checkpoint
    cannot be exported and no backend was asked for, torch runs it and a warning says why.
    """
    if backend not in (None, "torch", "onnx"):
        raise ValueError(f"backend must be 'torch' or 'onnx', got {backend!r}")
    check_count("threads", threads, none=True, most=max_threads())  # for both backends, before any model is read
    device = resolve_device(device)
    path = resolve_checkpoint(model)
    if path.suffix.lower() == ".onnx":
        if backend == "torch":
            raise ValueError(f"{path}: an .onnx file runs with backend='onnx'; pass the .pt checkpoint for torch")
        return OnnxRunner(path, threads=threads)
    if backend == "onnx" and device != "cpu":
        raise ValueError(f"the ONNX Runtime backend runs on the CPU; use backend='torch' for device={device!r}")
    if backend == "onnx" or (backend is None and device == "cpu"):
        try:
            exported = cached_export(path)
        except Exception as err:  # an export failure: an explicit request fails, the default falls back
            from facekeypoints.models.checkpoint import CheckpointError  # here, not above: only export needs torch

            if backend == "onnx" or isinstance(err, CheckpointError):  # no checkpoint: torch cannot read it either
                raise
            warnings.warn(f"{path}: ONNX export failed ({type(err).__name__}: {err}); running it with torch",
                          RuntimeWarning, stacklevel=2)
        else:  # outside the try: a bad option or an unloadable export is its own error, not an "export failure"
            try:
                runner = OnnxRunner(exported, threads=threads)
            except UnreadableModelError as err:  # a damaged entry (random bytes, empty): rebuilt, not a dead end
                why = str(err).removeprefix(f"{exported}: ")
                warnings.warn(f"ignoring unreadable cache entry {exported} ({why}); rebuilding it", stacklevel=2)
                runner = OnnxRunner(cached_export(path, rebuild=True), threads=threads)
            runner.source = str(path)  # name the checkpoint the user gave, not its cached export
            return runner
    return TorchRunner.load(path, device=device, threads=threads)


def _check_flag(name: str, value) -> bool:
    """``value`` if it is a bool (numpy's too): "False" or 0 is no flag, and was taken as True or False silently."""
    check_flags(**{name: value})
    return bool(value)


# what box_frame=(dx, dy, side) may be: a frame beyond these shows no face the box found
MAX_FRAME_SHIFT, MIN_FRAME_SIDE, MAX_FRAME_SIDE = 1.0, 0.5, 3.0


def _box_frame(box_frame, detector) -> tuple[float, float, float]:
    """The (dx, dy, side) constants that frame a face from its box (see ``KeypointDetector``)."""
    if box_frame is None:
        return tuple(getattr(detector, "box_frame", framing.BOX_FRAME))
    if isinstance(box_frame, str):
        if box_frame not in framing.BOX_FRAMES:
            raise ValueError(f"box_frame {box_frame!r} is not one of {sorted(framing.BOX_FRAMES)} or (dx, dy, side)")
        return framing.BOX_FRAMES[box_frame]
    try:  # a bool is no number here, as rotate_tta=True is none: one was dropped and the others shifted
        items = tuple(box_frame)
        values = () if any(isinstance(v, (bool, np.bool_)) for v in items) else tuple(float(v) for v in items)
    except (TypeError, ValueError):
        values = ()
    # an infinite side framed every face as the whole plane: all keypoints came out at (0, 0); a side of
    # 1e9 widths put them 1e10 px off the image and 1e-9 on one pixel. The measured sources' constants
    # (framing.BOX_FRAMES) are offsets of at most 0.2 and sides of 1.0-1.2 box widths.
    if len(values) != 3 or not all(map(math.isfinite, values)) or not (
            abs(values[0]) <= MAX_FRAME_SHIFT and abs(values[1]) <= MAX_FRAME_SHIFT
            and MIN_FRAME_SIDE <= values[2] <= MAX_FRAME_SIDE):
        raise ValueError(f"box_frame must be (dx, dy, side), finite numbers with side > 0: the frame's centre "
                         f"dx, dy box widths from the box's (at most {MAX_FRAME_SHIFT:g} either way) and its side "
                         f"in box widths ({MIN_FRAME_SIDE:g} to {MAX_FRAME_SIDE:g}), got {box_frame!r}")
    return values


def _check_stream_options(source, options: dict) -> None:
    """Check ``stream``'s arguments at the call, before any frame: NaN passed the One Euro filter's
    checks and made every smoothed keypoint NaN, and a wrong source failed on a missing method."""
    if not isinstance(source, (str, Path)):
        # what open_video and the frame loop call: an object with read() alone failed later on isOpened()
        missing = [m for m in ("read", "isOpened", "get") if not callable(getattr(source, m, None))]
        if missing:
            raise TypeError(f"stream() reads a video path or an open cv2.VideoCapture, got {type(source).__name__} "
                            f"without {', '.join(f'{m}()' for m in missing)}")
    redetect, cutoff, beta = (options.get(k, d) for k, d in (("redetect_every", 10), ("min_cutoff", 1.0),
                                                             ("beta", 5.0)))
    if "smooth" in options:
        _check_flag("smooth", options["smooth"])  # smooth="no" smoothed
    if isinstance(redetect, (bool, np.bool_)) or not isinstance(redetect, numbers.Integral) or redetect < 1:
        raise ValueError(f"redetect_every must be a whole number of frames >= 1, got {redetect!r}")
    if any(isinstance(v, (bool, np.bool_)) for v in (cutoff, beta)) or \
            not all(isinstance(v, numbers.Real) and math.isfinite(v) for v in (cutoff, beta)) or cutoff <= 0 or beta < 0:
        raise ValueError(f"smoothing needs finite min_cutoff > 0 (Hz) and beta >= 0, got min_cutoff={cutoff!r}, "
                         f"beta={beta!r}")


# A face box may stick out of the photo (a face cut by its edge), but one whose side is more than this many
# times the photo's longer side frames a crop in which the photo is a speck: its keypoints are the model's
# mean face, not a measurement ([0, 0, 1e9, 1e9] gave keypoints near 5e8 without a word).
MAX_BOX_SCALE = 10
# A box passed by the caller must be at least this many pixels on each side: a 1e-9 or 0.01 px box framed a
# crop of one blurred pixel and gave the mean face squeezed into it. The detectors look for faces of 8 px at
# the least (haar's min_face floor; the cnn detector is trained on faces from 10 px, haar's boxes are 24 px or
# more), so half that is no face any of them reports; detectors' own boxes are not held to it.
MIN_BOX_SIDE = 4


def _check_box_sizes(boxes: np.ndarray, image_size: tuple[int, int], source: str, given: bool = False) -> np.ndarray:
    """``boxes`` (N, 5), unless a box's side is not finite or over ``MAX_BOX_SCALE`` x the image's longer side,
    or (``given`` by the caller) a side is under ``MIN_BOX_SIDE`` pixels."""
    with np.errstate(over="ignore"):  # 1e308 - (-1e308) is inf: refused below, not warned about
        sides = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
    limit = MAX_BOX_SCALE * max(image_size)
    bad = np.flatnonzero(~(sides <= limit))
    if len(bad):
        h, w = image_size
        raise ValueError(f"{source} row {bad[0]} {boxes[bad[0], :4].tolist()} is {sides[bad[0]]:.3g} px across, over "
                         f"{MAX_BOX_SCALE} times the {w}x{h} image's longer side; a face box frames a face in the image")
    if not given:  # a detector's boxes are never refused for their size
        return boxes
    small = np.flatnonzero(np.minimum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]) < MIN_BOX_SIDE)
    if len(small):
        i = small[0]
        raise ValueError(f"{source} row {i} {boxes[i, :4].tolist()} is {boxes[i, 2] - boxes[i, 0]:.3g} x "
                         f"{boxes[i, 3] - boxes[i, 1]:.3g} px; a face box must be at least {MIN_BOX_SIDE} px on a side")
    return boxes


def _near_first_frame(first: np.ndarray, new: np.ndarray, size: int) -> np.ndarray:
    """(F,) whether each ``new`` frame keeps near the ``first`` (the box's): side within REFRAME_MAX_SCALE
    times, centre within REFRAME_MAX_SHIFT of the first frame's side (see REFRAME_MAX_SCALE)."""
    centre = np.array([(size - 1) / 2.0, (size - 1) / 2.0, 1.0])
    old, new = (framing.invert(np.asarray(f, np.float64).reshape(-1, 2, 3)) for f in (first, new))
    # image pixels per crop pixel: the inverse frames' scale; NaN or a collapsed frame fails every test
    old_side, new_side = (np.sqrt(np.abs(np.linalg.det(m[:, :, :2]))) * size for m in (old, new))
    shift = np.linalg.norm((new - old) @ centre, axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = new_side / old_side
        return (ratio <= REFRAME_MAX_SCALE) & (ratio >= 1 / REFRAME_MAX_SCALE) & (shift <= REFRAME_MAX_SHIFT * old_side)


def _chosen_detector(detector) -> str:
    """How to name ``detector`` if it was chosen rather than left at the default ("haar", None, or the
    plain HaarDetector object the CLI builds when no option is given); "" when it was not."""
    if detector is None or isinstance(detector, HaarDetector):
        return ""
    if isinstance(detector, str):
        return "" if detector.lower() == "haar" else repr(detector)
    return type(detector).__name__


@contextlib.contextmanager
def _item(i: int, count: int):
    """An error about image ``i`` of a batch of ``count`` says which (``item 1 of 2: x.jpg: no such
    image file``; the error itself names the path, or the array's shape or type)."""
    try:
        yield
    except (TypeError, ValueError, FileNotFoundError) as err:  # which of many images is bad
        if count == 1:
            raise
        kind = next(k for k in (FileNotFoundError, TypeError, ValueError) if isinstance(err, k))
        raise kind(f"item {i} of {count}: {err}") from err


def _elapsed(start: float) -> float:
    return (time.perf_counter() - start) * 1000.0


class KeypointDetector:
    """Find faces and their keypoints.

    Parameters
    ----------
    model : checkpoint path (.pt), exported ONNX path (.onnx), a shipped model's name ("kaggle15":
        15 Kaggle points, "ibug68": 68 iBUG points), or None for the shipped kaggle15 model.
    detector : ``"haar"`` (a key of ``facekeypoints.infer.DETECTORS``), any object with
        ``detect(image_rgb) -> (N, 5)``, or None (then every call passes ``boxes=``).
    backend : "torch" or "onnx"; None: ONNX Runtime on the CPU (checkpoints are exported once, cached),
        torch on other devices.
    device : "cpu" (default), "auto" (the GPU when there is one), "cuda", "cuda:N" or "mps"; a GPU
        runs the model with torch, ONNX Runtime runs on the CPU. A device that is not there is a
        clear ``DeviceError``.
    threads : intra-op threads for the backend, 1..``max_threads()`` (None: the library's default).
    refine : re-frame each face on its prediction and predict again, until the frame settles (at
        most ``REFINE_PASSES`` passes; about 2.6 on average), and average the last two passes:
        reduces the error and makes the result independent of where the box came from (detector,
        jitter, tilt). Only for schemas with Kaggle anchor points (kaggle15, ibug68, imm58).
    batch_size : faces per model call; all faces of a ``predict_batch`` call share the calls.
    mirror_tta : also run every face mirrored and average the two predictions (left/right swapped
        by the schema): about twice the model time, usually a little more accurate.
    rotate_tta : degrees; also run every face turned by +/- this much and average the three looks
        (each mirrored too with ``mirror_tta``): three times the model time. 0 (default) is off;
        4 lowered the shipped kaggle15 model's validation RMSE by about 0.03 px (README).
    box_frame : how a box becomes the face's frame: a key of ``framing.BOX_FRAMES`` (``"haar"``,
        ``"dlib"``, ``"landmarks"``: the bounding box of the face's points) or (dx, dy, side) in
        box widths. None: the detector's own calibration (``detector.box_frame``), else Haar's.

    A model trained on whole photos resized to its input (training ``data.frame: resize``, e.g. the
    IMM nose-tip model of seed 003) sees each whole image the same way: one face per image, box the
    whole image; ``detector``, ``boxes`` and ``refine`` do not apply to it.
    """

    def __init__(self, model: str | Path | None = None, *, detector="haar", backend: str | None = None,
                 device: str = "cpu", threads: int | None = None, refine: bool = True, batch_size: int = 64,
                 mirror_tta: bool = False, rotate_tta: float = 0.0,
                 box_frame: str | tuple[float, float, float] | None = None):
        # the plain arguments are checked before the model is read: a typo fails at once, naming itself
        refine, mirror_tta = _check_flag("refine", refine), _check_flag("mirror_tta", mirror_tta)
        if isinstance(rotate_tta, (bool, np.bool_)) or not isinstance(rotate_tta, numbers.Real):  # True was 1 degree
            raise TypeError(f"rotate_tta must be a number of degrees in [0, 90), got {type(rotate_tta).__name__} "
                            f"{rotate_tta!r}")
        if not 0 <= rotate_tta < 90:  # NaN fails too
            raise ValueError(f"rotate_tta must be a number of degrees in [0, 90), got {rotate_tta!r}")
        self.batch_size = check_count("batch_size", batch_size)
        self.runner = load_runner(model, backend, device, threads)
        self.card = self.runner.card
        self.schema, self.input_size, self.framing = self.card.schema, self.card.input_size, self.card.framing
        self.mirror_tta = mirror_tta
        self.rotate_tta = float(rotate_tta)
        if self.framing == "resize" and _chosen_detector(detector):  # was dropped without a word
            warnings.warn(f"{self.runner.source}: a {self.schema.name} model trained on whole photos frames each whole "
                          f"image as one face and uses no face detector; detector={_chosen_detector(detector)} is "
                          "not used", UserWarning, stacklevel=2)
        self.detector = make_detector(detector) if self.framing == "kaggle" else None
        self.box_frame = _box_frame(box_frame, self.detector)
        self.alignable = framing.can_refine(self.schema)  # keypoints give a frame (refinement, tracking)
        self.refine = refine and self.alignable and self.framing == "kaggle"

    def __repr__(self) -> str:
        return (f"KeypointDetector(model={self.runner.source!r}, backend={self.runner.backend!r}, "
                f"schema={self.schema.name!r}, detector={type(self.detector).__name__}, refine={self.refine}, "
                f"mirror_tta={self.mirror_tta}, rotate_tta={self.rotate_tta:g})")

    def __call__(self, image, *, boxes=None, color: str = "rgb") -> Result:
        """One image (path, (H, W[, 3]) uint8 array, PIL image or tensor) -> Result.

        ``boxes``: (N, 4) or (N, 5) faces to use instead of running the detector.
        """
        return self.predict_batch([image], boxes=None if boxes is None else [boxes], color=color)[0]

    def predict_batch(self, images: Sequence, *, boxes: Sequence | None = None, color: str = "rgb") -> list[Result]:
        """Many images -> one Result each. Faces are detected per image, then the keypoint stage runs
        on the faces of all images together, ``batch_size`` faces per model call.

        ``images`` is a list (any iterable, a generator included, is read into one); a single path
        or PIL image is a TypeError, since its characters or rows are no images: call the detector on it.

        All or nothing: one bad image (unreadable, of a kind not taken, bad ``boxes``) raises, naming
        it (``item i of N``), and no Result is returned; every image is read before any face is
        searched for, and the model runs only after every search, so no keypoints are thrown away.
        To go on past bad images, call the detector on each, or use ``predict_paths``, which reports
        each bad file and predicts the rest.
        """
        if isinstance(images, (str, bytes, Path)) or type(images).__module__.startswith("PIL."):
            raise TypeError(f"predict_batch() takes a list of images, got one {type(images).__name__}; "
                            "for one image call the detector itself: detector(image)")
        shape = getattr(images, "shape", None)
        # An array is a batch along its first axis; (H, W) or (H, W, 1|3|4) (a tensor's (1|3|4, H, W))
        # is far likelier one image than rows of grey images, so it is refused rather than read row by row.
        tensor = type(images).__module__.startswith("torch")
        if shape is not None and (len(shape) == 2 or (len(shape) == 3 and (shape[0] if tensor else shape[-1]) in (1, 3, 4))):
            raise TypeError(f"predict_batch() takes a list of images or an (N, H, W[, C]) array, got one array "
                            f"of shape {tuple(shape)} that looks like a single image; for one image call the "
                            "detector itself: detector(image), or pass [image]")
        for name, value in (("images", images), ("boxes=", boxes)):  # a dict's keys were read as paths
            if isinstance(value, (Mapping, Set)):
                why = "its keys would be read" if isinstance(value, Mapping) else "it has no order to keep"
                raise TypeError(f"predict_batch() {name} takes a list, got a {type(value).__name__} ({why}); pass a "
                                "list, e.g. list(d.values())")
        images = images if isinstance(images, Sequence) or shape is not None else list(images)
        boxes = boxes if boxes is None or isinstance(boxes, Sequence) or hasattr(boxes, "shape") else list(boxes)
        if boxes is not None and len(boxes) != len(images):
            raise ValueError(f"boxes= has {len(boxes)} entries for {len(images)} images")
        if self.framing == "resize" and boxes is not None and any(b is not None for b in boxes):
            warnings.warn(f"{self.runner.source}: a {self.schema.name} model trained on whole photos frames each whole "
                          "image as one face; boxes= is not used", UserWarning, stacklevel=2)  # was ignored silently
        rgbs, sources, found, detect_ms = [], [], [], []
        for i, image in enumerate(images):  # every image read first: a bad one fails before any face search
            with _item(i, len(images)):
                rgb, source = to_rgb(image, color)
            rgbs.append(rgb)
            sources.append(source)
        for i, (rgb, source) in enumerate(zip(rgbs, sources)):
            start = time.perf_counter()
            with _item(i, len(images)):
                if self.framing == "resize":  # the whole photo is the face, as in training
                    found.append(np.array([[0.0, 0.0, rgb.shape[1], rgb.shape[0], 1.0]]))
                else:
                    found.append(self.find_faces(rgb, None if boxes is None else boxes[i], source))
            detect_ms.append(_elapsed(start))
        owners = np.repeat(np.arange(len(found)), [len(b) for b in found]).astype(int)
        all_boxes = np.concatenate(found) if found else np.zeros((0, 5))
        if self.framing == "resize":
            frames = np.array([framing.resize_frame(im.shape[:2], self.input_size) for im in rgbs]).reshape(-1, 2, 3)
        else:
            frames = np.array([framing.frame_from_box(b, self.input_size, self.box_frame)
                               for b in all_boxes]).reshape(-1, 2, 3)
        timings = {"preprocess": 0.0, "model": 0.0, "postprocess": 0.0}
        keypoints = self.locate(rgbs, owners, frames, timings)
        share = {k: v / max(1, len(images)) for k, v in timings.items()}
        return [Result(image_size=rgb.shape[:2], faces=self._faces(all_boxes[owners == i], keypoints[owners == i]),
                       schema=self.schema, timings={"detection": detect_ms[i], **share}, source=sources[i],
                       color="bgr" if color == "bgr" and isinstance(images[i], np.ndarray) else "rgb")
                for i, rgb in enumerate(rgbs)]

    def _faces(self, boxes: np.ndarray, keypoints: np.ndarray) -> list[Face]:
        """(N, 5) boxes and (N, K, 2) keypoints -> Faces (no keypoint scores: the models predict none)."""
        return [Face(box=b[:4].copy(), box_score=float(b[4]), keypoints=k, scores=None, schema=self.schema)
                for b, k in zip(boxes, keypoints)]

    def find_faces(self, rgb: np.ndarray, given=None, source: str = "image") -> np.ndarray:
        """(N, 5) faces x1, y1, x2, y2, score in one (H, W, 3) RGB image: ``given`` (checked), else the detector's."""
        if given is not None:
            boxes, source = given, f"boxes for {source}"
        elif self.detector is None:
            raise ValueError("this KeypointDetector has detector=None: pass boxes= with each image")
        else:
            boxes, source = self.detector.detect(rgb), f"{type(self.detector).__name__}.detect() on {source}"
        return _check_box_sizes(check_boxes(boxes, source=source, image_size=rgb.shape[:2]), rgb.shape[:2], source,
                                given=given is not None)

    def locate(self, images: Sequence[np.ndarray], owners: np.ndarray, frames: np.ndarray,
               timings: dict | None = None, refine: bool | None = None) -> np.ndarray:
        """Keypoints of faces framed by ``frames`` (F, 2, 3); face f lies in ``images[owners[f]]``
        ((H, W, 3) RGB uint8). Returns (F, K, 2) original-image pixels. With refinement each face
        is predicted again in the frame its keypoints give while they are face-shaped, until that
        frame settles, and its last two predictions are averaged."""
        timings = {} if timings is None else timings
        planes = {int(i): self._plane(images[int(i)]) for i in np.unique(owners)}
        keypoints = self._predict_frames(planes, owners, frames, timings)
        if not (self.refine if refine is None else refine):
            return keypoints
        # Refinement (see REFINE_PASSES): a box is only a first guess; from a loose one the first
        # pass is pulled toward the mean face and each pass moves partway, so faces are re-framed
        # until their frame settles, and the answer is the mean of their last two passes.
        previous = keypoints.copy()
        made_in = np.array(frames, np.float64).reshape(-1, 2, 3)  # the frame of each face's last pass
        active = np.ones(len(keypoints), bool)
        for step in range(REFINE_PASSES - 1):
            start = time.perf_counter()
            # from the fourth refinement on, frame on the mean of the last two passes: framing on the
            # last alone can swing between two frames about 5% of the crop apart and never settle
            basis = keypoints if step < 3 else 0.5 * (previous + keypoints)
            better, error = framing.frames_from_keypoints(basis, self.schema, self.input_size)
            active &= error <= framing.MAX_SHAPE_ERROR  # not face-shaped: nothing to frame on
            if step:  # settled: the last pass's keypoints ask for the frame it was made in
                active &= framing.frame_shift(made_in, better, self.input_size) >= REFINE_SETTLED
            active &= _near_first_frame(frames, better, self.input_size)
            timings["postprocess"] = timings.get("postprocess", 0.0) + _elapsed(start)
            if not active.any():
                break
            idx = np.flatnonzero(active)
            previous[idx] = keypoints[idx]
            keypoints[idx] = self._predict_frames(planes, owners[idx], better[idx], timings)
            made_in[idx] = better[idx]
        return 0.5 * (previous + keypoints)

    def _plane(self, image: np.ndarray) -> np.ndarray:
        return plane(image, self.card.in_channels)

    def _predict_frames(self, planes: dict, owners: np.ndarray, frames: np.ndarray, timings: dict) -> np.ndarray:
        """(F, 2, 3) frames -> (F, K, 2) original pixels, through the one prediction path."""
        return predict_frames(self.runner, planes, owners, frames, mirror=self.mirror_tta, rotate=self.rotate_tta,
                              batch_size=self.batch_size, timings=timings)

    def predict_crops(self, crops: np.ndarray) -> np.ndarray:
        """Faces already framed like the training data (e.g. Kaggle CSV images): (N, H, H[, 3]) uint8
        -> (N, K, 2) keypoints in the crops' pixels. Crops of another size than the model's input
        are rescaled; no detector and no refinement are involved."""
        return predict_crops(self.runner, crops, mirror=self.mirror_tta, rotate=self.rotate_tta,
                             batch_size=self.batch_size)

    def stream(self, source, **options) -> Iterator[Result]:
        """Results frame by frame for a video file or ``cv2.VideoCapture``.

        See :func:`facekeypoints.infer.video.stream` for the options (redetect_every, smooth, ...).
        """
        _check_stream_options(source, options)
        return stream(self, source, **options)
