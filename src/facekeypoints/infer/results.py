"""What inference returns: a ``Result`` per image holding one ``Face`` per face found.

Coordinates are pixels of the original image (x right, y down, pixel centres at integers); arrays
are numpy on the CPU. No face found is an empty Result, never None.

Examples
--------
>>> import numpy as np
>>> from facekeypoints.schema import load_schema
>>> s = load_schema("nose1")
>>> face = Face(box=np.array([10., 10., 50., 50.]), box_score=1.0, keypoints=np.array([[30., 32.]]),
...             scores=np.ones(1), schema=s)
>>> r = Result(image_size=(64, 80), faces=[face], schema=s)
>>> len(r), r.keypoints.shape, face["nose_tip"].tolist()
(1, (1, 1, 2), [30.0, 32.0])
>>> r.to_dict()["faces"][0]["keypoints"]["nose_tip"]
{'x': 30.0, 'y': 32.0, 'score': 1.0}
"""
from __future__ import annotations

import json
import math
import numbers
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from facekeypoints.atomic import atomic_path
from facekeypoints.data.images import over_white, read_image
from facekeypoints.schema import KeypointSchema, load_schema

__all__ = ["Face", "Result", "IMAGE_SUFFIXES", "SAVE_SUFFIXES", "finite_json"]

# what read_image decodes (checked with OpenCV 4.14 and Pillow-made files): a folder's other files are
# "not images"; .jfif and .jpe are JPEGs, .dib a BMP, .pbm/.pnm portable maps
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".bmp", ".dib", ".ppm", ".pgm", ".pbm", ".pnm",
                  ".tif", ".tiff", ".webp", ".gif", ".jp2")
# what save() writes: OpenCV's encoders (.jfif as JPEG; .pgm in grey, the only kind PGM holds)
SAVE_SUFFIXES = (".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".bmp", ".ppm", ".pgm", ".tif", ".tiff", ".webp")
_BOX_COLOUR = (0, 255, 0)  # green reads the same in RGB and BGR
_POINT_COLOUR = (255, 200, 0)
_LINE_COLOUR = (0, 200, 255)
# drawn coordinates are clamped to this many pixels beyond the image: OpenCV takes only 32-bit ints
# (1e20 was "Can't parse 'pt1'"), and a mark this far out is off the picture either way
_DRAW_MARGIN = 1 << 16


@dataclass(eq=False)  # numpy's fields made the generated == raise "truth value ... is ambiguous"
class Face:
    """One face: ``box`` (4,) x1, y1, x2, y2 as OpenCV rectangles (x2 = x + width); ``box_score`` from
    the detector (1.0 for boxes you passed in); ``keypoints`` (K, 2) x, y; ``scores`` (K,)
    per-keypoint confidences, or None when the model predicts none.

    ``==`` is identity (``a == b`` only for the same object, as ``face in result``): arrays have no
    single truth value; compare ``np.array_equal(a.keypoints, b.keypoints)`` for equal numbers.

    The shipped regression and soft-argmax models predict no per-keypoint confidence, so their
    faces have ``scores=None`` and their JSON has no ``score`` field: a constant 1.0 would claim a
    confidence nobody measured.
    """

    box: np.ndarray
    box_score: float
    keypoints: np.ndarray
    scores: np.ndarray | None
    schema: KeypointSchema = field(repr=False)

    def __getitem__(self, name: str) -> np.ndarray:
        """(2,) x, y of the keypoint called ``name`` (a schema name such as ``"nose_tip"``)."""
        return self.keypoints[self.schema.index(name)]

    def to_dict(self) -> dict:
        """Plain JSON-ready dict: box, box_score and keypoints by name, each ``{x, y, score}``; a value
        that is not a finite number (a broken model's NaN) is ``null``, which strict JSON parsers accept."""
        return {
            "box": [_number(v, 2) for v in self.box],
            "box_score": _number(self.box_score, 4),
            "keypoints": {name: {"x": _number(x, 2), "y": _number(y, 2),
                                 **({} if self.scores is None else {"score": _number(self.scores[k], 4)})}
                          for k, (name, (x, y)) in enumerate(zip(self.schema.keypoints, self.keypoints))},
        }


def _checked(image, method: str) -> np.ndarray:
    """``image`` as an array draw() and save() can draw on: uint8 (H, W), (H, W, 1), (H, W, 3) or
    (H, W, 4); anything else is a ValueError in ``to_rgb``'s words. A float image was drawn on with
    255-valued colours and saved black."""
    if isinstance(image, (str, bytes, os.PathLike)):  # np.asarray would make it a string "image"
        raise TypeError(f"{method}() needs the image's pixels (a uint8 array), got the path {image!r}; "
                        f"read it with facekeypoints.data.images.read_image first")
    image = np.asarray(image)
    if image.dtype.kind not in "biuf":
        raise TypeError(f"{method}() needs a uint8 image array, got {type(image).__name__} of {image.dtype}")
    if image.dtype != np.uint8:
        raise ValueError(f"{method}() needs a uint8 image (0..255), got {image.dtype}; convert with "
                         "(img * 255).round().astype(np.uint8) if it holds floats in [0, 1]")
    if not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] in (1, 3, 4))):
        raise ValueError(f"{method}() needs an image of shape (H, W), (H, W, 3) or (H, W, 4), got {image.shape}")
    return image


def finite_json(value):
    """``value`` (dicts, lists, numbers) with every NaN or infinite float made None: strict JSON has no NaN."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_json(v) for v in value]
    return value


def _number(value, digits: int) -> float | None:
    value = float(value)
    return round(value, digits) if np.isfinite(value) else None


def _file_id(path) -> tuple[int, int] | None:
    """(device, inode) of the file ``path`` names (links followed, as ``os.path.samefile``); None
    where it names none (an array's "<array 4x5>", a frame's "clip.mp4#frame=5", a name no file can have)."""
    try:
        found = os.stat(path)
    except (OSError, ValueError, TypeError):
        return None
    return found.st_dev, found.st_ino


@dataclass(eq=False)
class Result:
    """All faces of one image. ``image_size`` is (height, width); ``timings`` holds milliseconds
    spent in ``detection``, ``preprocess``, ``model`` and ``postprocess`` (batched stages are
    shared evenly between the images of a batch); ``source`` names the file, frame or array.
    ``==`` is identity, as for ``Face``; ``to_dict()`` compares the contents."""

    image_size: tuple[int, int]
    faces: list[Face]
    schema: KeypointSchema
    timings: dict[str, float] = field(default_factory=dict)
    source: str = ""
    color: str = "rgb"  # the colour order of the image it came from: draw() and save() take images in it

    def __post_init__(self) -> None:
        if isinstance(self.schema, str):  # a name, as create_model and Predictor take it
            self.schema = load_schema(self.schema)
        if not isinstance(self.schema, KeypointSchema):
            raise TypeError(f"Result schema must be a KeypointSchema or a schema name, "
                            f"got {type(self.schema).__name__} {self.schema!r}")

    def __setattr__(self, name: str, value) -> None:
        if name == "source":  # the file it names now: after a chdir a relative name names another (or none)
            object.__setattr__(self, "_source_file", _file_id(value))
        object.__setattr__(self, name, value)

    def __len__(self) -> int:
        return len(self.faces)

    def __iter__(self) -> Iterator[Face]:
        return iter(self.faces)

    def __getitem__(self, i: int) -> Face:
        return self.faces[i]

    @property
    def keypoints(self) -> np.ndarray:
        """(N, K, 2) keypoints of all faces (N may be 0)."""
        if not self.faces:
            return np.zeros((0, self.schema.num_keypoints, 2))
        return np.stack([f.keypoints for f in self.faces])

    @property
    def scores(self) -> np.ndarray:
        """(N, K) keypoint scores, NaN for faces whose model predicts none."""
        k = self.schema.num_keypoints
        return np.array([f.scores if f.scores is not None else np.full(k, np.nan) for f in self.faces]).reshape(-1, k)

    @property
    def boxes(self) -> np.ndarray:
        """(N, 5) boxes x1, y1, x2, y2, box_score."""
        if not self.faces:
            return np.zeros((0, 5))
        return np.array([[*f.box, f.box_score] for f in self.faces], dtype=np.float64)

    def to_dict(self) -> dict:
        """Plain dict (the JSON and HTTP body): source, image_size {height, width}, schema, faces, timings."""
        h, w = self.image_size
        return {
            "source": self.source,
            "image_size": {"height": int(h), "width": int(w)},
            "schema": self.schema.name,
            "faces": [f.to_dict() for f in self.faces],
            # a NaN timing (a clock that failed) is null, as the docstring of to_json promises
            "timings": {k: _number(v, 3) for k, v in self.timings.items()},
        }

    def to_json(self, indent: int | None = None) -> str:
        """``to_dict`` as a JSON string (one line unless ``indent``, a whole number of spaces >= 0, is
        given); strict JSON, never a bare NaN."""
        if indent is not None and (isinstance(indent, (bool, np.bool_)) or not isinstance(indent, numbers.Integral)
                                   or indent < 0):  # json.dumps took "2" as the text to indent with
            raise TypeError(f"to_json() indent must be None or a whole number of spaces >= 0, "
                            f"got {type(indent).__name__} {indent!r}")
        return json.dumps(self.to_dict(), indent=None if indent is None else int(indent), allow_nan=False)

    def draw(self, image: np.ndarray) -> np.ndarray:
        """A copy of ``image`` (H, W, 3) uint8, in the result's colour order (``color``: the frame the
        detector was given), with boxes, keypoints and the schema's skeleton drawn. Grey (H, W) is
        drawn on in colour, and (H, W, 4) is blended over white first, as the detector saw it (its
        alpha hid the marks); another dtype or shape is a ValueError, as ``to_rgb`` refuses it."""
        drawn = self._draw(self._rgb(image, "draw")[0])
        if self.color == "bgr":  # the same colours on screen: drawn on RGB, handed back in BGR
            return drawn[..., ::-1].copy()
        return drawn

    def _rgb(self, image, method: str) -> tuple[np.ndarray, bool]:
        """``image`` checked (``_checked``) and in RGB order, alpha blended over white; and whether it
        is still the caller's own array (which ``save(in_place=True)`` may draw on)."""
        image = _checked(image, method)
        if image.ndim == 3 and image.shape[2] == 4:
            return over_white(image, order=self.color), False
        if self.color == "bgr":
            return self._as_rgb(image), False
        return image, True

    def _as_rgb(self, image) -> np.ndarray:
        """A ``color="bgr"`` frame in RGB order; grey (H, W) or (H, W, 1) has no order to reverse
        (reversing its last axis mirrored it), and alpha is left out."""
        image = np.asarray(image)
        if image.ndim == 3 and image.shape[2] == 1:
            return image[..., 0]
        return image[..., 2::-1] if image.ndim == 3 else image

    def _draw(self, image: np.ndarray, in_place: bool = False, order: str = "rgb") -> np.ndarray:
        """``image`` (its colour ``order``) with the marks drawn: on itself with ``in_place`` where it
        is (H, W, 3), contiguous and writeable, else on a copy."""
        image = np.asarray(image)
        if image.ndim == 3 and image.shape[2] == 1:  # grey, drawn on in colour as (H, W) is
            image = image[..., 0]
        if image.shape[:2] != tuple(self.image_size):
            raise ValueError(f"draw() got an image of size {image.shape[:2]}, "
                             f"but the result is for {tuple(self.image_size)}")
        if in_place and image.ndim == 3 and image.flags.c_contiguous and image.flags.writeable:
            out = image
        else:
            out = np.ascontiguousarray(cv2.cvtColor(image, cv2.COLOR_GRAY2RGB) if image.ndim == 2 else image.copy())
        point_colour, line_colour = (_POINT_COLOUR, _LINE_COLOUR) if order == "rgb" else (
            _POINT_COLOUR[::-1], _LINE_COLOUR[::-1])
        pairs = [(self.schema.index(a), self.schema.index(b)) for a, b in self.schema.skeleton]
        h, w = out.shape[:2]
        low, high = -_DRAW_MARGIN, max(h, w) + _DRAW_MARGIN
        for face in self.faces:
            box = np.asarray(face.box, dtype=np.float64)
            box_finite = np.isfinite(box).all()  # a NaN box is not drawn; its finite keypoints still are
            width = float(box[2] - box[0]) if box_finite else 0.0
            size = min(max(8.0, width), float(max(h, w)))  # a huge box must not make the marks image-sized or more
            thick, radius = max(1, round(size / 150)), max(1, round(size / 70))
            if box_finite:
                x1, y1, x2, y2 = (int(v) for v in np.round(np.clip(box, low, high)))
                cv2.rectangle(out, (x1, y1), (x2, y2), _BOX_COLOUR, thick, cv2.LINE_AA)
            keypoints = np.asarray(face.keypoints, dtype=np.float64)
            finite = np.isfinite(keypoints).all(-1)  # a point the model gave no number for is not drawn
            pts = np.round(np.clip(np.where(finite[:, None], keypoints, 0), low, high)).astype(int)
            for a, b in pairs:
                if finite[a] and finite[b]:
                    cv2.line(out, tuple(pts[a]), tuple(pts[b]), line_colour, thick, cv2.LINE_AA)
            for p in pts[finite]:
                cv2.circle(out, tuple(p), radius, point_colour, -1, cv2.LINE_AA)
        return out

    def _is_source(self, path: Path) -> bool:
        """Whether ``path`` is the file ``source`` named when it was set (a frame's "clip.mp4#frame=5"
        is none), or names now."""
        target = _file_id(path)
        return target is not None and target in (getattr(self, "_source_file", None), _file_id(self.source))

    def save(self, path: str | Path, image: np.ndarray | None = None, *, in_place: bool = False) -> Path:
        """Write the result: ``.json`` -> ``to_json``; an image suffix -> ``draw(image)`` as a picture.

        ``image`` is (H, W, 3) in the result's colour order; when omitted the picture is re-read from
        ``source``. ``in_place``: draw on ``image`` itself (it is changed, in its own colour order)
        instead of a copy, which a caller done with the pixels uses to spare a large photo's second
        copy; an image that cannot be drawn on as it is (grey, with alpha, not contiguous, read-only)
        is drawn on a copy and left as it was.
        """
        if isinstance(path, bytes):
            path = os.fsdecode(path)
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"save() path must be a str or Path, got {type(path).__name__} {path!r}")
        if not isinstance(in_place, bool):  # "no" or "false" would have drawn on the caller's image
            raise TypeError(f"save() in_place must be True or False, got {type(in_place).__name__} {in_place!r}")
        path = Path(os.path.expanduser(path))  # as the CLI's paths are
        if self._is_source(path):  # the photo it was found in would be replaced by its drawing
            raise ValueError(f"{path}: is the source image of this result; save() would replace it; choose "
                             "another path")
        if path.suffix.lower() == ".json":
            with atomic_path(path) as tmp:
                tmp.write_text(self.to_json(indent=2) + "\n")
            return path
        encoded = self._picture(path, image, in_place)
        with atomic_path(path) as tmp:
            tmp.write_bytes(encoded)
        return path

    def _picture(self, path: Path, image: np.ndarray | None, in_place: bool, restore: bool = True) -> bytes:
        """The drawing ``save()`` writes at ``path``, encoded as its suffix says (``predict`` writes it
        through ``outputs.place_bytes``, which keeps a drawing another run put there meanwhile).
        ``restore``: an image drawn on in place gets its colour order back after encoding (False: the
        caller is done with its pixels, and a large photo's second swap is saved)."""
        suffix, order = path.suffix.lower(), "rgb"  # order: the colour order image is drawn on in
        if suffix not in SAVE_SUFFIXES:
            raise ValueError(f"{path}: save() writes .json or an image ({', '.join(SAVE_SUFFIXES)})")
        if image is None:
            try:  # a video frame ("clip.mp4#frame=5") or an array ("<array 4x5>") has no file to re-read
                image = read_image(self.source) if self.source else None
            except (ValueError, OSError):  # DataFormatError is a ValueError
                image = None
            if image is None:
                raise ValueError(f"save({path}) needs image=: the source {self.source!r} is not a readable image")
        else:  # a float image was written black, with OpenCV's console warning naming no file
            checked = _checked(image, "save")
            if in_place and self.color == "bgr" and checked.ndim == 3 and checked.shape[2] == 3:
                image, order = checked, "bgr"  # drawn on in its own order: in RGB it would be a copy
            else:
                image, own = self._rgb(image, "save")
                in_place = in_place and own
        drawn = self._draw(image, in_place=in_place, order=order)
        mine = drawn is not image  # not the caller's array: its colours may be swapped for the encoder for good
        if suffix == ".pgm":  # OpenCV's PGM encoder takes grey only
            drawn = cv2.cvtColor(drawn, cv2.COLOR_RGB2GRAY if order == "rgb" else cv2.COLOR_BGR2GRAY)
        elif order == "rgb":  # swapped in place, a large photo is big; the caller's array is swapped back after
            cv2.cvtColor(drawn, cv2.COLOR_RGB2BGR, dst=drawn)
        try:
            ok, encoded = cv2.imencode(".jpg" if suffix == ".jfif" else suffix, drawn)
        finally:
            if restore and not mine and order == "rgb" and suffix != ".pgm":
                cv2.cvtColor(drawn, cv2.COLOR_BGR2RGB, dst=drawn)
        if not ok:
            raise ValueError(f"{path}: OpenCV could not encode a {path.suffix} image")
        return encoded.tobytes()
