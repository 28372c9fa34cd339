"""Readers of annotation files that list many faces: dlib XML and COCO-style keypoint JSON.

One-face-per-file formats (.pts, .asf, .ljson, .mat) live in :mod:`facekeypoints.data.formats.landmarks`.

Examples
--------
>>> from facekeypoints.data.formats.landmark_sets import read_dlib_xml
>>> data = read_dlib_xml("training_with_face_landmarks.xml", load_images=False)  # doctest: +SKIP
>>> data.keypoints.shape, data.boxes.shape  # doctest: +SKIP
((18, 68, 2), (18, 4))
"""
from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from facekeypoints.data.dataset import DataFormatError, KeypointData
from facekeypoints.data.formats.landmarks import _Face, _gather, _load_json
from facekeypoints.data.images import read_image
from facekeypoints.schema import list_schemas, load_schema

__all__ = ["read_dlib_xml", "read_coco_json", "COCO_SCHEMAS"]

# Point count -> schema for COCO keypoint files. Other layouts (AFLW 19, COFW 29, WFLW 98,
# LaPa 106) have no schema here; a caller who has one passes ``schema=``.
COCO_SCHEMAS = {68: "ibug68"}


def _file_or_error(path: str | Path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    return path


class _ImageCache:
    """Loads each image once: several faces often share one photo."""

    def __init__(self, annotation: Path):
        self.annotation, self.images = annotation, {}

    def get(self, image: Path, where: str) -> np.ndarray:
        if image not in self.images:
            if not image.is_file():
                raise DataFormatError(self.annotation, f"{where}: image {image} not found; "
                                      "pass load_images=False to read the labels only")
            self.images[image] = read_image(image)
        return self.images[image]


# ---- dlib XML ------------------------------------------------------------------------------------
def _dlib_box(node: ET.Element, path: Path, where: str) -> tuple[float, float, float, float]:
    try:
        top, left, width, height = (float(node.attrib[k]) for k in ("top", "left", "width", "height"))
    except KeyError as err:
        raise DataFormatError(path, f"{where}: box lacks attribute {err.args[0]!r}", field=err.args[0]) from None
    except ValueError:
        raise DataFormatError(path, f"{where}: box attribute is not a number: {dict(node.attrib)}") from None
    return left, top, left + width, top + height


def _dlib_parts(node: ET.Element, path: Path, where: str) -> np.ndarray:
    kp = np.full((68, 2), np.nan, dtype=np.float32)
    for part in node.findall("part"):
        name = part.get("name", "")
        if not name.isdigit() or not 0 <= int(name) < 68:
            raise DataFormatError(path, f"{where}: part name {name!r} is not a number 00..67", field="name")
        try:
            kp[int(name)] = float(part.attrib["x"]), float(part.attrib["y"])
        except (KeyError, ValueError):
            raise DataFormatError(path, f"{where}: part {name} needs numeric x and y, got {dict(part.attrib)}") \
                from None
    return kp


def read_dlib_xml(path: str | Path, *, load_images: bool = True) -> KeypointData:
    """Read a dlib ``imglab`` XML file: one ibug68 sample per ``<box>``, keypoints (N, 68, 2).

    Parts are named ``00``..``67`` (iBUG order); boxes without parts get NaN keypoints.
    ``boxes`` (N, 4) holds x1, y1, x2, y2 with x2 = left + width. Images are relative to the XML.
    """
    path = _file_or_error(path)
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as err:
        line = err.position[0] if err.position else "?"
        raise DataFormatError(path, f"line {line}: not well-formed XML ({err})") from None
    images = root.find("images")
    if images is None:
        raise DataFormatError(path, "no <images> element: not a dlib imglab dataset file")
    cache, faces = _ImageCache(path), []
    for i, image_node in enumerate(images.findall("image")):
        file = image_node.get("file")
        if not file:
            raise DataFormatError(path, f"<image> number {i} has no file attribute", field="file")
        image = path.parent / file
        for j, box in enumerate(image_node.findall("box")):
            where = f"image {file!r}, box {j}"
            pixels = cache.get(image, where) if load_images else None
            faces.append(_Face(_dlib_parts(box, path, where), f"{Path(file).stem}#{j}", image, pixels,
                               box=_dlib_box(box, path, where)))
    return _gather("ibug68", faces, path, load_images)


# ---- COCO-style keypoint JSON --------------------------------------------------------------------
def _coco_schema(path: Path, k: int, schema: str | None) -> str:
    if schema is not None:
        if load_schema(schema).num_keypoints != k:
            raise DataFormatError(path, f"annotations have {k} points but schema {schema!r} has "
                                  f"{load_schema(schema).num_keypoints}", field="keypoints")
        return schema
    if k not in COCO_SCHEMAS:
        supported = ", ".join(f"{n} ({s})" for n, s in COCO_SCHEMAS.items())
        raise DataFormatError(path, f"{k}-point annotations have no built-in schema; supported point counts: "
                              f"{supported}; pass schema= naming a {k}-point schema of {list_schemas()}",
                              field="keypoints")
    return COCO_SCHEMAS[k]


def _coco_keypoints(path: Path, ann: dict, row: int) -> np.ndarray:
    flat = ann.get("keypoints")
    if not isinstance(flat, list) or not flat or len(flat) % 3:
        raise DataFormatError(path, "keypoints must be a list of x, y, v triples", row=row, field="keypoints")
    try:
        xyv = np.asarray(flat, dtype=np.float32).reshape(-1, 3)
    except (TypeError, ValueError):
        raise DataFormatError(path, "keypoints hold a value that is not a number", row=row, field="keypoints") \
            from None
    kp = xyv[:, :2].copy()
    kp[xyv[:, 2] == 0] = np.nan  # v == 0: not labelled
    return kp


def read_coco_json(path: str | Path, *, load_images: bool = True, schema: str | None = None) -> KeypointData:
    """Read a COCO-style keypoint JSON (``images`` + ``annotations``): one sample per annotation.

    Keypoints (N, K, 2) come from ``keypoints`` [x, y, v] * K; v == 0 gives NaN. The schema
    follows from K (68 -> ibug68) or from ``schema=``, the name of a K-point schema.
    ``boxes`` (N, 4) x1, y1, x2, y2 come from ``bbox`` [x, y, w, h] (NaN when absent).
    Image files are resolved relative to the JSON file's folder. Row numbers in errors count
    annotations from 0.
    """
    path = _file_or_error(path)
    doc = _load_json(path)
    if not isinstance(doc, dict) or not isinstance(doc.get("annotations"), list):
        raise DataFormatError(path, "expected a JSON object with an 'annotations' list", field="annotations")
    files = {img.get("id"): img.get("file_name") for img in doc.get("images", []) if isinstance(img, dict)}
    cache, faces, k = _ImageCache(path), [], None
    for row, ann in enumerate(doc["annotations"]):
        if not isinstance(ann, dict):
            raise DataFormatError(path, "annotation is not an object", row=row)
        kp = _coco_keypoints(path, ann, row)
        if k is not None and len(kp) != k:
            raise DataFormatError(path, f"{len(kp)} points where earlier annotations have {k}", row=row,
                                  field="keypoints")
        k = len(kp)
        file = files.get(ann.get("image_id"))
        if not file:
            raise DataFormatError(path, f"image_id {ann.get('image_id')!r} is not in 'images'", row=row,
                                  field="image_id")
        image = path.parent / file
        bbox = ann.get("bbox")
        box = (bbox[0], bbox[1], bbox[0] + bbox[2], bbox[1] + bbox[3]) if bbox and len(bbox) == 4 else None
        pixels = cache.get(image, f"annotation {row}") if load_images else None
        faces.append(_Face(kp, f"{Path(file).stem}#{ann.get('id', row)}", image, pixels,
                           box=box or (np.nan,) * 4))
    if k is None:
        raise DataFormatError(path, "no annotations", field="annotations")
    return _gather(_coco_schema(path, k, schema), faces, path, load_images)
