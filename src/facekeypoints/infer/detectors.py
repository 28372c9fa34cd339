"""Face detectors: anything with ``detect(image_rgb) -> (N, 5)`` boxes plugs into KeypointDetector.

Detectors live in a plain dict, ``DETECTORS`` (name -> class); there is no registry machinery.
The default, ``"haar"``, is OpenCV's frontal-face Haar cascade, which the opencv-python 4.x wheels
ship in ``cv2.data.haarcascades``: it runs offline with no downloaded weights.

Examples
--------
>>> import numpy as np
>>> det = make_detector("haar")
>>> det.detect(np.zeros((120, 160, 3), np.uint8)).shape   # a black image has no face
(0, 5)
>>> class Fixed:                                          # any object with detect() is a detector
...     def detect(self, image):
...         return np.array([[10, 10, 90, 90, 1.0]])
>>> make_detector(Fixed()).detect(None).shape
(1, 5)
"""
from __future__ import annotations

import difflib
import math
import threading
import warnings
from pathlib import Path
from typing import Protocol, runtime_checkable

import cv2
import numpy as np

from facekeypoints.data.framing import BOX_FRAMES
from facekeypoints.data.preprocess import DETECTOR_STRIDE, detector_input
from facekeypoints.infer.onnx import CARD_KEY, DETECTOR_OUTPUTS, open_session

__all__ = ["FaceDetector", "HaarDetector", "DlibDetector", "CnnDetector", "DETECTORS", "make_detector", "check_boxes", "unsearched_note",
           "decode_centers", "shipped_detector"]


@runtime_checkable
class FaceDetector(Protocol):
    """The detector protocol: ``detect`` takes one (H, W, 3) uint8 RGB image and returns an (N, 5)
    float array of faces, one row ``x1, y1, x2, y2, score`` each, in that image's pixels."""

    def detect(self, image: np.ndarray) -> np.ndarray: ...


class HaarDetector:
    """OpenCV's Viola-Jones frontal-face cascade (``haarcascade_frontalface_default.xml``).

    The image is converted to grayscale and shrunk so its longer side is at most ``max_side``
    pixels before the search (the cascade's cost grows with the pixel count), and the boxes are
    scaled back. Faces smaller than about 24 / s pixels in the original (24 is the cascade's
    window, s the shrink factor) are therefore not found: 64 px in a 640 x 480 frame, more in a
    large photo. ``min_face`` (pixels) limits the shrink to 24 / min_face, so faces down to that
    size are searched in any photo (slower on large ones), up to ``MAX_SEARCH_PIXELS`` searched:
    beyond that, a warning gives the smallest face it can find in that photo.

    Defaults, measured on the 3045 ytf68 images and a 640 x 480 frame on 2 cores
    (benchmarks/calibrate_framing.py): (max_side, scale_factor, min_neighbors) = (240, 1.2, 3)
    misses 75 faces and gives several boxes on 82 images, at 10 ms per frame; (320, 1.1, 5) misses
    49 and doubles 87, at 23 ms; (240, 1.2, 5) misses 172. The coarser scale steps cost little
    keypoint accuracy because refinement re-frames every face on its keypoints.

    The score is OpenCV's ``levelWeights`` from ``detectMultiScale3``: the summed response of the
    cascade's last stage. Larger is surer; it is not a probability (typical faces score 2 to 10).
    """

    WINDOW = 24  # the cascade's smallest face, in pixels of the image it searches
    # detectMultiScale3 holds about 31 bytes per searched pixel (its scale pyramid's integral images):
    # peak RSS 0.15 GB at 2000x1500, 0.44 GB at 4000x3000, 0.97 GB at 6400x4800 (scale steps 1.2,
    # 43 MB of it Python and OpenCV), so a 48 MP photo with min_face 24 took a predict run to
    # 1.81 GB. 8 MP (about 0.3 GB) keeps a run on a 100 MP photo under 1 GB.
    MAX_SEARCH_PIXELS = 8_000_000
    box_frame = BOX_FRAMES["haar"]  # how its boxes frame a face (measured; see facekeypoints.data.framing)

    def __init__(self, max_side: int = 240, scale_factor: float = 1.2, min_neighbors: int = 3,
                 cascade: str | Path | None = None, min_face: int | None = None):
        path = Path(cascade) if cascade else Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: Haar cascade file not found (opencv-python 4.x wheels ship it in "
                                    "cv2.data.haarcascades; OpenCV 5 wheels do not)")
        self.classifier = cv2.CascadeClassifier(str(path))
        if self.classifier.empty():
            raise ValueError(f"{path}: OpenCV could not load this Haar cascade")
        if max_side < 48:
            raise ValueError(f"max_side must be at least 48 pixels, got {max_side}")
        if min_face is not None and min_face < 8:
            raise ValueError(f"min_face must be at least 8 pixels, got {min_face}")
        if not scale_factor > 1.0 or min_neighbors < 0:
            raise ValueError(f"scale_factor must be > 1 and min_neighbors >= 0, got {scale_factor}, {min_neighbors}")
        self.max_side, self.scale_factor, self.min_neighbors = int(max_side), float(scale_factor), int(min_neighbors)
        self.min_face = None if min_face is None else int(min_face)
        # one search at a time: a CascadeClassifier shared by threads gave other images' faces and
        # OpenCV assertion errors (one KeypointDetector called from a thread pool)
        self._lock = threading.Lock()

    def _scale(self, shape: tuple[int, int]) -> tuple[float, float]:
        """(used, wanted): how much the image is shrunk before the search: to a longer side of
        ``max_side``, but with ``min_face`` set never so far that faces of that many pixels drop below
        the window; and never to more than ``MAX_SEARCH_PIXELS`` (``detect`` warns when that binds)."""
        scale = min(1.0, self.max_side / max(shape))
        wanted = scale if self.min_face is None else max(scale, min(1.0, self.WINDOW / self.min_face))
        return min(wanted, math.sqrt(self.MAX_SEARCH_PIXELS / (shape[0] * shape[1]))), wanted

    def smallest_face(self, shape: tuple[int, ...]) -> float:
        """The side in pixels below which faces are not searched in an image of ``shape`` (H, W, ...)."""
        return self.WINDOW / self._scale(shape[:2])[0]

    def detect(self, image: np.ndarray) -> np.ndarray:
        """(H, W, 3) uint8 RGB or (H, W) gray -> (N, 5) float64 ``x1, y1, x2, y2, score``, best first."""
        image = _checked_image(image, self)
        gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image
        scale, wanted = self._scale(gray.shape[:2])
        if scale < wanted:  # the option that asked for the larger search: min_face only when it set the scale
            by_face = self.min_face is not None and min(1.0, self.max_side / max(gray.shape[:2])) < wanted
            asked = f"min_face {self.min_face}" if by_face else f"max_side {self.max_side}"
            _warn_search_limit("haar", gray.shape[:2], self.WINDOW / scale, self.MAX_SEARCH_PIXELS, asked, wanted)
        if scale < 1.0:
            size = (max(1, round(gray.shape[1] * scale)), max(1, round(gray.shape[0] * scale)))
            gray = cv2.resize(gray, size, interpolation=cv2.INTER_AREA)
        with self._lock:
            rects, _, weights = self.classifier.detectMultiScale3(
                gray, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors, outputRejectLevels=True)
        if len(rects) == 0:
            return np.zeros((0, 5))
        rects = np.asarray(rects, np.float64).reshape(-1, 4)
        out = np.empty((len(rects), 5))
        out[:, 0:2] = rects[:, 0:2] / scale  # OpenCV rectangle convention: x2 = x + w
        out[:, 2:4] = (rects[:, 0:2] + rects[:, 2:4]) / scale
        out[:, 4] = np.asarray(weights, np.float64).reshape(-1)
        return out[np.argsort(-out[:, 4], kind="stable")]


class DlibDetector:
    """dlib's HOG + linear SVM frontal face detector (``dlib.get_frontal_face_detector``), an
    optional extra: ``pip install 'facekeypoints[dlib]'`` (the dlib-bin wheel; it runs offline).

    ``upsample`` doubles the image that many times first, to find faces under about 80 px (dlib's
    window) at 4x the cost per step. An image whose longer side exceeds ``max_side`` is shrunk to
    it first (dlib works on its own full-size copies: a 45 MP photo upsampled took 2.2 GB); faces
    under about 40 / s pixels (s the shrink) are then missed. Scores are the SVM's margins: larger
    is surer.
    """

    box_frame = BOX_FRAMES["dlib"]  # its boxes are smaller and lower than Haar's (measured)

    def __init__(self, upsample: int = 1, max_side: int = 1280):
        try:
            import dlib
        except ImportError:
            raise ImportError("the 'dlib' face detector needs dlib: pip install 'facekeypoints[dlib]' "
                              "(installs the dlib-bin wheel)") from None
        if upsample < 0:
            raise ValueError(f"upsample must be >= 0, got {upsample}")
        if max_side < 16:
            raise ValueError(f"max_side must be >= 16, got {max_side}")
        self._detector, self.upsample, self.max_side = dlib.get_frontal_face_detector(), int(upsample), int(max_side)
        self._lock = threading.Lock()  # dlib's object_detector is not safe to share between threads (its docs)

    def detect(self, image: np.ndarray) -> np.ndarray:
        """(H, W, 3) uint8 RGB or (H, W) gray -> (N, 5) float64 ``x1, y1, x2, y2, score``, best first."""
        image = _checked_image(image, self)
        scale = min(1.0, self.max_side / max(image.shape[:2]))
        if scale < 1.0:
            image = cv2.resize(image, (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale))),
                               interpolation=cv2.INTER_AREA)
        with self._lock:
            rects, scores, _ = self._detector.run(np.ascontiguousarray(image), self.upsample, 0.0)
        if not rects:
            return np.zeros((0, 5))
        # dlib's right and bottom are inclusive pixels; ours are OpenCV's x + width
        out = np.array([[r.left(), r.top(), r.right() + 1, r.bottom() + 1, s] for r, s in zip(rects, scores)], float)
        out[:, :4] /= scale
        return out[np.argsort(-out[:, 4], kind="stable")]


class CnnDetector:
    """Our own face detector: the small CenterNet-style network of
    ``facekeypoints.models.face_detector``, trained here on mosaics of labelled photos
    (``facekeypoints train-detector``), run with ONNX Runtime on the CPU.

    The image is scaled so its longer side is ``max_side`` pixels (at most 2x up), and searched
    again at the ``coarse`` side for large faces; faces are the heatmap's local maxima above ``threshold`` (a probability), their
    boxes read from the size and offset maps, duplicates removed at IoU 0.4. Faces smaller than
    about ``SMALLEST`` pixels at that scale are missed; ``min_face`` (pixels in the original) scales
    a large photo up enough to find faces that small (slower). Boxes follow the
    landmarks' bounding-box convention it was trained on, so it frames faces as ``"landmarks"``.
    ``model``: an exported ``face_detector.onnx``; None: the one shipped in the package.
    """

    SMALLEST = 16  # face width in input pixels below which recall falls (trained on faces from 10 px)
    # The network holds about 45 bytes per searched pixel (peak RSS 0.26 GB at 2000x1333, 0.49 GB at
    # 3464x2309, 0.11 GB of it Python and ONNX Runtime); a 48 MP photo searched whole (min_face 16)
    # took a predict run to 2.44 GB. 6 MP (about 0.27 GB) keeps a run on a 100 MP photo under 1 GB.
    MAX_SEARCH_PIXELS = 6_000_000
    box_frame = BOX_FRAMES["landmarks"]

    def __init__(self, model: str | Path | None = None, max_side: int = 480, threshold: float = 0.5,
                 threads: int | None = 1, min_face: int | None = None, coarse: int | None = 240):
        path = Path(model) if model is not None else shipped_detector()
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no face detector model here (train one with "
                                    "`facekeypoints train-detector`, or choose the haar detector)")
        if max_side < 16 or not 0 < threshold < 1 or (coarse is not None and coarse < 16):
            raise ValueError(f"max_side and coarse must be >= 16 and threshold in (0, 1), got {max_side}, "
                             f"{coarse} and {threshold}")
        # under 8 px a face would need the image upscaled past the 2x the search allows (SMALLEST / 2): refused,
        # as the Haar detector refuses it, rather than searched for faces of 8 px and up without a word
        if min_face is not None and min_face < self.SMALLEST // 2:
            raise ValueError(f"min_face must be at least {self.SMALLEST // 2} pixels, got {min_face}")
        self.session = open_session(path, threads)
        _check_detector_graph(self.session, path)
        self.max_side, self.threshold, self.min_face = int(max_side), float(threshold), min_face
        self.coarse = None if coarse is None else int(coarse)

    def detect(self, image: np.ndarray) -> np.ndarray:
        """(H, W, 3) uint8 RGB or (H, W) gray -> (N, 5) float64 ``x1, y1, x2, y2, score``, best first.

        Searched at ``max_side`` (small faces), and again at the ``coarse`` side for faces that
        fill much of the picture (trained on faces up to about 150 px, the network misses larger
        ones); the two lists are merged by non-maximum suppression."""
        image = _checked_image(image, self)
        rgb = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB) if image.ndim == 2 else image
        h, w = rgb.shape[:2]
        fine, scale, by_face = self._scale((h, w))
        scales = [fine]
        if scales[0] < min(scale, 2.0):  # the option that asked for the larger search, as Haar names it
            asked = f"min_face {self.min_face}" if by_face else f"max_side {self.max_side}"
            _warn_search_limit("cnn", (h, w), self.SMALLEST / scales[0], self.MAX_SEARCH_PIXELS, asked,
                               min(scale, 2.0))
        if self.coarse is not None and self.coarse / max(h, w) < 0.75 * scales[0]:
            scales.append(self.coarse / max(h, w))
        return _suppress(np.concatenate([self._search(rgb, s) for s in scales]), self.threshold)

    def _scale(self, shape: tuple[int, int]) -> tuple[float, float, bool]:
        """(used, wanted, whether min_face set it): the scale of the fine search, up to 2x, bounded by
        ``MAX_SEARCH_PIXELS`` (``detect`` warns when that binds)."""
        h, w = shape
        scale = self.max_side / max(h, w)
        by_face = self.min_face is not None and self.SMALLEST / self.min_face > scale  # min_face sets the scale
        if by_face:
            scale = self.SMALLEST / self.min_face
        return min(scale, 2.0, math.sqrt(self.MAX_SEARCH_PIXELS / (h * w))), scale, by_face

    def smallest_face(self, shape: tuple[int, ...]) -> float:
        """The side in pixels below which faces are missed in an image of ``shape`` (H, W, ...)."""
        return self.SMALLEST / self._scale(tuple(shape[:2]))[0]

    def _search(self, rgb: np.ndarray, scale: float) -> np.ndarray:
        """Boxes found with the image scaled by ``scale`` (padded to a multiple of 16), in its pixels."""
        h, w = rgb.shape[:2]
        sw, sh = max(1, round(w * scale)), max(1, round(h * scale))
        small = cv2.resize(rgb, (sw, sh), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        pw, ph = -(-sw // 16) * 16, -(-sh // 16) * 16
        x = np.zeros((1, 3, ph, pw), np.float32)
        x[0, :, :sh, :sw] = detector_input(small[None])[0]
        heat, size, offset = self.session.run(None, {"image": x})
        boxes = decode_centers(heat[0, 0], size[0], offset[0], self.threshold, DETECTOR_STRIDE)
        boxes[:, :4] /= scale
        return boxes


def unsearched_note(detector, shape: tuple[int, ...]) -> tuple[str, float] | None:
    """Why ``detector`` may have found no face in an image of ``shape``, from its ``smallest_face``:
    ("tiny", px) when the image is smaller than the smallest face it finds at all, ("shrunk", px) when
    it shrank the image so that faces under px were not searched, None when it searched it whole (or
    cannot say: a detector without ``smallest_face``)."""
    if getattr(detector, "smallest_face", None) is None:
        return None
    px = float(detector.smallest_face(shape))
    if px >= min(shape[:2]):
        return "tiny", px
    native = getattr(detector, "WINDOW", getattr(detector, "SMALLEST", 0))  # its smallest face at full size
    return ("shrunk", px) if px > native + 0.5 else None


def _checked_image(image, detector) -> np.ndarray:
    """``image`` if it is what a detector's ``detect`` takes: a non-empty uint8 array, (H, W) grey or
    (H, W, 3) RGB; anything else is a TypeError or ValueError saying what to pass (OpenCV's and
    dlib's errors named no argument, and the cnn detector found 0 faces in a float image in 0..1)."""
    name = f"{type(detector).__name__}.detect(image)"
    if not isinstance(image, np.ndarray):
        raise TypeError(f"{name} takes the pixels, a uint8 numpy array (H, W) or (H, W, 3) RGB, got "
                        f"{type(image).__name__} {str(image)[:100]!r}: read a file with "
                        "facekeypoints.data.images.read_image, a PIL image with np.asarray(img.convert('RGB'))")
    if image.dtype != np.uint8:
        raise ValueError(f"{name} takes a uint8 image (0..255), got {image.dtype}; a float image in 0..1 is "
                         "(image * 255).round().astype(np.uint8)")
    if not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 3)) or image.size == 0:
        raise ValueError(f"{name} takes a non-empty image of shape (H, W) or (H, W, 3), got {image.shape} "
                         "(channels first? image.transpose(1, 2, 0))")
    return image


def _warn_search_limit(name: str, shape: tuple[int, int], smallest: float, limit: int, asked: str,
                       wanted: float) -> None:
    """Say that a detector searched a smaller image than asked (to bound its memory), and so which faces
    it cannot find in this one: they are not dropped silently."""
    h, w = shape
    warnings.warn(f"faces under {math.ceil(smallest)} px cannot be found in this {w}x{h} image (the {name} detector "
                  f"searches at most {limit / 1e6:.3g} MP; {asked} would need {w * h * wanted ** 2 / 1e6:.3g} MP): "
                  "crop it around the faces to find smaller ones", RuntimeWarning, stacklevel=3)


def decode_centers(heat: np.ndarray, size: np.ndarray, offset: np.ndarray, threshold: float,
                   stride: int) -> np.ndarray:
    """A CenterNet output -> (N, 5) boxes in input pixels, best first: the heatmap's (h, w) logits'
    3 x 3 local maxima above ``threshold`` (as a probability), sizes exp(size) cells, centres at
    cell + offset. Neighbouring peaks of one large face are left to ``_suppress``, which
    ``CnnDetector.detect`` runs once over every scale's boxes."""
    prob = 1.0 / (1.0 + np.exp(-heat.astype(np.float32)))
    peaks = (prob >= cv2.dilate(prob, np.ones((3, 3), np.uint8))) & (prob > threshold)
    ys, xs = np.nonzero(peaks)
    cx, cy = (xs + offset[0, ys, xs]) * stride, (ys + offset[1, ys, xs]) * stride
    bw, bh = np.exp(size[0, ys, xs]) * stride, np.exp(size[1, ys, xs]) * stride
    out = np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2, prob[ys, xs]], axis=1).astype(np.float64)
    return out[np.argsort(-out[:, 4], kind="stable")]


def _suppress(boxes: np.ndarray, threshold: float) -> np.ndarray:
    """(N, 5) boxes without those overlapping a better one at IoU > 0.4 (OpenCV's NMS), best first."""
    if not len(boxes):
        return np.zeros((0, 5))
    keep = cv2.dnn.NMSBoxes(np.c_[boxes[:, :2], boxes[:, 2:4] - boxes[:, :2]].tolist(), boxes[:, 4].tolist(),
                            threshold, 0.4)
    boxes = boxes[np.asarray(keep, int).reshape(-1)]
    return boxes[np.argsort(-boxes[:, 4], kind="stable")]


def _check_detector_graph(session, path: Path) -> None:
    """Refuse an ONNX file that is not a face detector's export before any image: a keypoint model failed
    at the first search with ONNX Runtime's shape error."""
    outputs = [o.name for o in session.get_outputs()]
    if outputs == DETECTOR_OUTPUTS:
        return
    card = session.get_modelmeta().custom_metadata_map.get(CARD_KEY)
    what = "a facekeypoints keypoint model" if card else f"a model with outputs {outputs}"
    raise ValueError(f"{path}: {what}, not a face detector (outputs {', '.join(DETECTOR_OUTPUTS)}, written by "
                     "facekeypoints train-detector as face_detector.onnx)")


def shipped_detector() -> Path:
    """Where the package's own face detector (ONNX) is installed."""
    from importlib import resources

    return Path(str(resources.files("facekeypoints").joinpath("weights", "face_detector.onnx")))


DETECTORS: dict[str, type] = {"haar": HaarDetector, "dlib": DlibDetector, "cnn": CnnDetector}


def make_detector(detector) -> FaceDetector | None:
    """A registered name (``"haar"``), an object with ``detect``, or None (boxes given per call)."""
    if detector is None:
        return None
    if isinstance(detector, str):
        detector = detector.lower()  # --detector HAAR means haar
        if detector not in DETECTORS:
            close = difflib.get_close_matches(detector, list(DETECTORS), n=2)
            hint = f"; did you mean {close}?" if close else ""
            raise ValueError(f"unknown face detector {detector!r}{hint}; known: {sorted(DETECTORS)} (from Python, "
                             "also an object with detect(image) -> (N, 5), or None with boxes= on each call)")
        try:
            return DETECTORS[detector]()
        except (ImportError, FileNotFoundError) as err:  # an extra not installed, weights not there: say what to do
            raise ValueError(str(err)) from None
    if isinstance(detector, type):  # DETECTORS["haar"]: its detect() failed at the first photo, missing "image"
        raise TypeError(f"detector {detector.__name__} is a class; pass an instance, {detector.__name__}(), or a "
                        f"name ({', '.join(sorted(DETECTORS))})")
    if not callable(getattr(detector, "detect", None)):
        raise TypeError(f"detector {detector!r} has no detect(image) method (see facekeypoints.infer.FaceDetector)")
    return detector


def check_boxes(boxes, source: str = "boxes", image_size: tuple[int, int] | None = None) -> np.ndarray:
    """(N, 4) or (N, 5) boxes -> (N, 5) float64 with score 1.0 where none was given; errors name the problem.

    With ``image_size`` (H, W), a box must overlap the image: one wholly outside it frames no face
    and would give keypoints far off the picture."""
    try:
        arr = np.asarray(boxes if boxes is not None else np.zeros((0, 5)), dtype=np.float64)
    except (TypeError, ValueError) as err:  # numpy's "could not convert string to float" names no argument
        raise type(err)(f"{source} must be numbers, (N, 4) x1, y1, x2, y2 or (N, 5) with a score; got "
                        f"{type(boxes).__name__} {str(boxes)[:200]} ({err})") from None
    if arr.size == 0:
        return np.zeros((0, 5))
    if arr.ndim == 1:
        arr = arr[None]
    if arr.ndim != 2 or arr.shape[1] not in (4, 5):
        raise ValueError(f"{source} must be (N, 4) x1, y1, x2, y2 or (N, 5) with a score, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{source} holds NaN or infinite values: {arr.tolist()}")
    if ((arr[:, 2] <= arr[:, 0]) | (arr[:, 3] <= arr[:, 1])).any():
        bad = int(np.flatnonzero((arr[:, 2] <= arr[:, 0]) | (arr[:, 3] <= arr[:, 1]))[0])
        raise ValueError(f"{source} row {bad} {arr[bad, :4].tolist()} is empty: needs x2 > x1 and y2 > y1")
    if image_size is not None:
        h, w = image_size
        outside = (arr[:, 2] <= 0) | (arr[:, 3] <= 0) | (arr[:, 0] >= w) | (arr[:, 1] >= h)
        if outside.any():
            bad = int(np.flatnonzero(outside)[0])
            raise ValueError(f"{source} row {bad} {arr[bad, :4].tolist()} lies outside the {w}x{h} image")
    if arr.shape[1] == 4:
        arr = np.concatenate([arr, np.ones((len(arr), 1))], axis=1)
    return arr
