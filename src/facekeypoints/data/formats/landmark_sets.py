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

import functools
import os
import warnings
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

import numpy as np

from facekeypoints.data.dataset import MAX_SKIPPED_LISTED, DataFormatError, KeypointData
from facekeypoints.data.formats.checks import check_flags, check_points, json_number, text_float
from facekeypoints.data.formats.landmarks import _Face, _gather, _refuse_large
from facekeypoints.data.formats.textfile import encoding_problem, load_json, short
from facekeypoints.data.images import QUARTER_TURNS, image_orientation, image_size, read_image
from facekeypoints.data.walk import same_file
from facekeypoints.schema import load_schema

__all__ = ["read_dlib_xml", "read_coco_json", "COCO_SCHEMAS", "refuse_costly_json"]

# Point count -> schema for COCO keypoint files. Other layouts (AFLW 19, COFW 29, WFLW 98,
# LaPa 106) have no schema here; a caller who has one passes ``schema=``.
COCO_SCHEMAS = {68: "ibug68"}
# Python holds parsed JSON in 4 to 35 times its size, by what the text holds: a face of 68 points
# (about 1.5 KB) takes ~9 times its bytes; 25 MB of nested empty lists took 927 MB. So a keypoint JSON
# is measured before it is parsed: what its parse would take is estimated from a count of its
# tokens (refuse_costly_json), and one over MAX_JSON_MEMORY is refused unread; MAX_COCO_BYTES is a
# plain size limit on top. A COCO file of 55,000 faces of 68 points (90 MB) fits; it peaked at 575 MB.
MAX_COCO_BYTES = 300_000_000
MAX_JSON_MEMORY = 800_000_000  # bytes, estimated (measured peaks were 0.6 to 0.95 times the estimate)
# estimated bytes per token of parsed JSON (CPython 3.11, measured on 10 MB files of each): a value
# is a pointer (8, with a list's spare room); a number not cached by Python 32 more; a list or an
# object ~80; a string ~70 besides its text; an object's member ~150 (its entry, the key, the pair
# json builds); the text itself three times (the bytes read, the str decoded, slack)
_COST_COMMA, _COST_NUMBER, _COST_CONTAINER, _COST_STRING, _COST_MEMBER, _COST_BYTE = 8, 32, 80, 70, 150, 3
_SCAN_BLOCK = 8 << 20
_NUMBER_CHARS = np.zeros(256, bool)
_NUMBER_CHARS[np.frombuffer(b"0123456789.eE+-", np.uint8)] = True
_NUMBER_STARTS = np.zeros(256, bool)
_NUMBER_STARTS[np.frombuffer(b"0123456789-", np.uint8)] = True


def json_memory(path: Path) -> int:
    """Bytes that parsing the JSON in ``path`` would take, estimated from a count of its tokens
    (read in blocks: the count takes little memory); digits inside strings count as numbers, so the
    estimate errs high. One-digit numbers cost no object (Python keeps one of each small integer).
    Kept per file version: format detection and the COCO reader both ask, and a scan reads it all."""
    try:
        st = os.stat(path)
    except OSError:
        return 0  # reading it names the problem
    return _json_memory(str(path), st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=4)
def _json_memory(path: str, size: int, mtime_ns: int) -> int:
    total = 0
    try:
        with open(path, "rb") as f:
            while block := f.read(_SCAN_BLOCK):
                b = np.frombuffer(block, np.uint8)
                number = _NUMBER_CHARS[b]
                starts = _NUMBER_STARTS[b]
                starts[1:] &= ~number[:-1]  # a number starts at a digit or "-" after no number character
                starts[:-1] &= number[1:]  # and has a second character: 0 to 9 are Python's cached ints
                total += (_COST_BYTE * len(block) + _COST_COMMA * block.count(b",")
                          + _COST_NUMBER * int(np.count_nonzero(starts))
                          + _COST_CONTAINER * (block.count(b"[") + block.count(b"{"))
                          + _COST_STRING * (block.count(b'"') // 2) + _COST_MEMBER * block.count(b":"))
    except OSError:
        return 0  # reading it names the problem
    return total


def refuse_costly_json(path: Path, what: str = "a COCO keypoint JSON") -> None:
    """DataFormatError naming the file when it is over ``MAX_COCO_BYTES``, or when parsing it would
    take over ``MAX_JSON_MEMORY`` (estimated from its tokens: its nesting and number of values)."""
    _refuse_large(path, MAX_COCO_BYTES, f"{what} (about 1.5 KB a face of 68 points)")
    if (need := json_memory(path)) > MAX_JSON_MEMORY:
        raise DataFormatError(path, f"parsing this JSON would take about {need / 1e6:.0f} MB of memory, over the "
                              f"limit of {MAX_JSON_MEMORY / 1e6:g} MB for {what} (a face of 68 points takes about "
                              "14 KB; lists, objects and short values cost far more than their text)")


# ElementTree holds a parsed XML file in far more than its size: an element about 110 bytes, an
# attribute about 150 (its dict entry, key and value), the text three times over. Measured peaks: a
# 65 MB dlib file of 27,000 faces took 1.14 GB; 24 MB of empty elements 0.69 GB. So the cost is
# estimated from a count of its elements and attributes before it is parsed, and refused over
# MAX_JSON_MEMORY, the limit the JSON readers share (about 21,000 faces of 68 points).
_XML_COST_ELEMENT, _XML_COST_ATTRIBUTE, _XML_COST_BYTE = 110, 150, 3


def xml_memory(path: Path) -> int:
    """Bytes that parsing the XML in ``path`` with ElementTree would take, estimated from a count of
    its elements and attributes (read in blocks); 0 when it cannot be read (the parse names that)."""
    total, tail = 0, b""
    try:
        with open(path, "rb") as f:
            while block := f.read(_SCAN_BLOCK):
                text = tail + block  # a tag split across two blocks is counted once, in the second
                cut = max(len(text) - 2, 0)
                counted, tail = text[:cut], text[cut:]
                elements = counted.count(b"<") - counted.count(b"</") - counted.count(b"<?") - counted.count(b"<!")
                attributes = counted.count(b'="') + counted.count(b"='") + counted.count(b'= "') + counted.count(b"= '")
                total += _XML_COST_BYTE * len(block) + _XML_COST_ELEMENT * elements + _XML_COST_ATTRIBUTE * attributes
    except OSError:
        return 0
    return total


def _file_or_error(path: str | Path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    return path


class _Skipped:
    """What a skip_bad read left out, by row: the first ``MAX_SKIPPED_LISTED`` messages are kept and
    the rest only counted, so a file of millions of bad rows does not take gigabytes of messages."""

    def __init__(self, path: Path):
        self.path, self.items, self.unlisted = path, [], 0

    def add(self, row: int, message: str) -> None:
        self.items.append((row, message))
        if len(self.items) > 2 * MAX_SKIPPED_LISTED:
            self._trim()

    def _trim(self) -> None:
        self.items.sort(key=lambda item: item[0])
        self.unlisted += max(0, len(self.items) - MAX_SKIPPED_LISTED)
        del self.items[MAX_SKIPPED_LISTED:]

    def __len__(self) -> int:
        return len(self.items) + self.unlisted

    def messages(self) -> tuple[list[str], int]:
        """(messages in row order, with a last line counting the unlisted ones; that count)."""
        self._trim()
        listed = [message for _, message in self.items]
        if self.unlisted:
            listed.append(f"{self.path}: ... and {self.unlisted} more skipped as bad, not listed "
                          f"(the first {MAX_SKIPPED_LISTED} are)")
        return listed, self.unlisted


class _ImageCache:
    """Loads each image (or its header's size) once: several faces often share one photo."""

    def __init__(self, annotation: Path):
        self.annotation, self.images, self.sizes = annotation, {}, {}

    def size(self, image: Path) -> tuple[int, int] | None:
        """``_header_size``, read once per photo (labels only)."""
        if image not in self.sizes:
            self.sizes[image] = _header_size(image)
        return self.sizes[image]

    def get(self, image: Path, where: str) -> np.ndarray:
        if image not in self.images:
            try:
                found = image.is_file()
            except OSError as err:  # is_file says False for a missing file but raises for a name over the limit
                raise DataFormatError(self.annotation, f"{where}: image {short(str(image))} cannot be looked up "
                                      f"({err.strerror or err})") from None
            if not found:
                raise DataFormatError(self.annotation, f"{where}: image {image} not found; "
                                      "its labels alone can be read (data info does; load_images=False in Python)")
            self.images[image] = read_image(image)
        return self.images[image]


# ---- dlib XML ------------------------------------------------------------------------------------
_BOX_CHILDREN = ("part", "label")  # what dlib's imglab writes in a <box> (label: the box's class name)


def _dlib_box(node: ET.Element, path: Path, where: str) -> tuple[float, float, float, float]:
    try:
        top, left, width, height = (text_float(node.attrib[k]) for k in ("top", "left", "width", "height"))
    except KeyError as err:
        raise DataFormatError(path, f"{where}: box lacks attribute {err.args[0]!r}", field=err.args[0]) from None
    except ValueError:
        raise DataFormatError(path, f"{where}: box attribute is not a number: {dict(node.attrib)}") from None
    if width < 0 or height < 0:
        raise DataFormatError(path, f"{where}: box width and height must be >= 0, got {width} and {height}",
                              field="width" if width < 0 else "height")
    return left, top, left + width, top + height


def _stray_text(node: ET.Element) -> str | None:
    """The first text (not blank) directly in ``node``, where dlib writes none: a point typed there
    ("201 107") or CDATA would otherwise be dropped without a word."""
    for text in (node.text, *(child.tail for child in node)):
        if text and text.strip():
            return text.strip()
    return None


def _refuse_stray_text(path: Path, node: ET.Element, what: str) -> None:
    if (text := _stray_text(node)) is not None:
        raise DataFormatError(path, f"{what} holds text {short(text)}, which dlib files never have there "
                              "(points are <part name=.. x=.. y=../> attributes)", field=node.tag)


def _dlib_parts(node: ET.Element, path: Path, where: str) -> tuple[np.ndarray, np.ndarray]:
    """((68, 2) points, (68,) bool: parts the box does not list, its missing points)."""
    for child in node:  # a point in any other element would silently be a missing point
        if child.tag not in _BOX_CHILDREN:
            raise DataFormatError(path, f"{where}: <{child.tag}> is not a dlib element (points are <part>, "
                                  "directly in <box>; tags are case-sensitive)", field=child.tag)
    _refuse_stray_text(path, node, f"{where}: <box>")
    for part in node.findall("part"):
        if len(part):
            raise DataFormatError(path, f"{where}: part {part.get('name', '')!r} holds a <{part[0].tag}>; a dlib "
                                  "<part> holds nothing (its point is in its x and y attributes)", field="part")
        _refuse_stray_text(path, part, f"{where}: part {part.get('name', '')!r}")
    kp = np.full((68, 2), np.nan)
    missing = np.ones(68, bool)
    for part in node.findall("part"):
        name = part.get("name", "")
        if not (name.isascii() and name.isdigit() and len(name) < 4) or not 0 <= int(name) < 68:  # "²", 5000 digits
            raise DataFormatError(path, f"{where}: part name {name!r} is not a number 00..67", field="name")
        if not missing[int(name)]:  # "36" twice, or "36" and "036": one would silently replace the other
            raise DataFormatError(path, f"{where}: part {name} appears more than once", field="name")
        try:
            kp[int(name)] = text_float(part.attrib["x"]), text_float(part.attrib["y"])
        except (KeyError, ValueError):
            raise DataFormatError(path, f"{where}: part {name} needs numeric x and y, got {dict(part.attrib)}") \
                from None
        missing[int(name)] = False
    return kp, missing


def _dlib_face(box: ET.Element, path: Path, where: str, image: Path, pixels: np.ndarray | None) -> tuple:
    """(points, x1 y1 x2 y2) of one <box>, checked against the image when it is loaded."""
    size = None if pixels is None else pixels.shape[:2]
    kp, missing = _dlib_parts(box, path, where)
    check_points(path, kp, size, missing=missing, names=[f"{where}: part {i:02d}" for i in range(68)])
    corners = _dlib_box(box, path, where)
    check_points(path, np.reshape(corners, (2, 2)), size, names=[f"{where}: box left, top",
                                                                 f"{where}: box left + width, top + height"])
    return kp.astype(np.float32), corners


def _dlib_declared_size(path: Path, node: ET.Element, shown: tuple[int, int] | None, where: str, image: Path) -> None:
    """The <image width= height=> attributes, where given, must be the image's real (height, width)
    ``shown`` (None: the photo is not there to tell)."""
    if "width" not in node.attrib and "height" not in node.attrib:
        return
    try:
        declared = text_float(node.attrib["height"]), text_float(node.attrib["width"])
    except KeyError as err:
        raise DataFormatError(path, f"{where}: <image> has width or height but lacks {err.args[0]!r}",
                              field=err.args[0]) from None
    except ValueError:
        raise DataFormatError(path, f"{where}: <image> width and height must be numbers, got "
                              f"{node.get('width')!r} and {node.get('height')!r}", field="width") from None
    if shown is not None:
        _declared_size(path, declared, shown, f"{where}: <image>", ("width", "height"), image)


def _check_68_layout(path: Path, root: ET.Element) -> None:
    """DataFormatError when every box with parts lists exactly parts 00..n-1 for one n < 68: a
    complete n-point layout (dlib's 5-point one: 00..04), not 68-point faces with points missing,
    which would silently be read as ibug68 points 0..n-1 (jaw points for the 5 eye/nose points).
    Boxes that each miss some points (different ones, or gaps) stay partial 68-point faces."""
    layouts = Counter()
    for box in root.iter("box"):
        names = [part.get("name", "") for part in box.findall("part")]
        if not names:
            continue  # no parts: a face without points, which says nothing about the layout
        if not all(n.isascii() and n.isdigit() and len(n) < 4 for n in names):
            return  # a bad name: the box is refused where it is read, with its name
        layouts[tuple(sorted(int(n) for n in names))] += 1
    if len(layouts) != 1:
        return
    (indices, boxes), = layouts.items()
    n = len(indices)
    if 2 <= n < 68 and indices == tuple(range(n)):
        known = " (dlib's 5-point layout: eye corners and nose)" if n == 5 else ""
        raise DataFormatError(path, f"each of its boxes with parts ({boxes}) has exactly the {n} parts "
                              f"00..{n - 1:02d}{known}: a {n}-point file, not the 68-point iBUG layout this "
                              f"reader reads (its parts would be taken for ibug68 points 0..{n - 1})", field="part")


def _check_dlib_layout(path: Path, root: ET.Element) -> None:
    """Faces in an element the reader would pass over are an error, not a silent loss: an <image>
    outside <images>, or a box-like element under <image> that is not spelt <box>."""
    for block in root:
        if block.tag == "image":
            raise DataFormatError(path, f"an <image> (file {block.get('file')!r}) sits outside <images>; "
                                  "move it inside, or its faces would be left out", field="image")
    for block in root.findall("images"):
        _refuse_stray_text(path, block, "<images>")
    for image_node in (n for block in root.findall("images") for n in block):
        if image_node.tag == "image":
            _refuse_stray_text(path, image_node, f"image {image_node.get('file')!r}")
        if image_node.tag != "image":
            raise DataFormatError(path, f"<images> holds a <{image_node.tag}>, not an <image>", field=image_node.tag)
        for child in image_node:
            if child.tag != "box":
                raise DataFormatError(path, f"image {image_node.get('file')!r}: <{child.tag}> is not a dlib "
                                      "element (faces are <box>; tags are case-sensitive)", field=child.tag)


def read_dlib_xml(path: str | Path, *, load_images: bool = True, skip_bad: bool = False) -> KeypointData:
    """Read a dlib ``imglab`` XML file: one ibug68 sample per ``<box>``, keypoints (N, 68, 2).

    Parts are named ``00``..``67`` (iBUG order); boxes without parts get NaN keypoints.
    ``boxes`` (N, 4) holds x1, y1, x2, y2 with x2 = left + width. Images are relative to the XML.
    An image listed twice is an error. With ``skip_bad`` a bad box (or <image>) is left out and
    listed in ``skipped``; a file that is not a dlib dataset as a whole is still an error.
    """
    check_flags(load_images=load_images, skip_bad=skip_bad)
    path = _file_or_error(path)
    if (need := xml_memory(path)) > MAX_JSON_MEMORY:  # memory: checked from its tags, before it is parsed
        raise DataFormatError(path, f"parsing this XML would take about {need / 1e6:.0f} MB of memory, over the "
                              f"limit of {MAX_JSON_MEMORY / 1e6:g} MB for a dlib dataset file (a face of 68 points "
                              "takes about 40 KB parsed); split it into several files")
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as err:
        with open(path, "rb") as raw:  # the XML parser reads UTF-16 but not UTF-32
            if problem := encoding_problem(raw.read(4096)):
                raise DataFormatError(path, problem) from None
        line = err.position[0] if err.position else "?"
        raise DataFormatError(path, f"line {line}: not well-formed XML ({err})") from None
    blocks = root.findall("images")
    if not blocks:
        raise DataFormatError(path, "no <images> element: not a dlib imglab dataset file")
    _check_dlib_layout(path, root)
    _check_68_layout(path, root)
    cache, faces, skipped, first_node, ignored = _ImageCache(path), [], _Skipped(path), {}, 0

    def bad(err: DataFormatError) -> None:  # skip_bad lists it; otherwise it ends the reading
        if not skip_bad:
            raise err
        skipped.add(len(skipped), str(err))

    for i, image_node in enumerate(node for block in blocks for node in block.findall("image")):
        file = image_node.get("file")
        # dlib's imglab marks boxes to leave out of training with ignore='1': they are not faces to learn
        boxes = [b for b in image_node.findall("box") if b.attrib.get("ignore") != "1"]
        if not file:
            bad(DataFormatError(path, f"<image> number {i} has no file attribute", field="file"))
            continue
        if (same := same_file(path.parent / file)) in first_node:  # its faces would count twice in every figure
            bad(DataFormatError(path, f"<image> number {i} repeats the file {file!r} of <image> number "
                                f"{first_node[same]}: its faces would count twice; list each image once", field="file"))
            continue
        first_node[same] = i
        ignored += len(image_node.findall("box")) - len(boxes)  # of an image read: the ones said
        image = path.parent / file
        declares = "width" in image_node.attrib or "height" in image_node.attrib
        first_box: dict = {}  # (points, box) -> its box number
        for j, box in enumerate(boxes):
            where = f"image {file!r}, box {j}"
            try:
                pixels = cache.get(image, where) if load_images else None
                # labels alone are checked against the photo's header where it is there, so both reads agree
                shown = pixels.shape[:2] if pixels is not None else cache.size(image) if declares else None
                _dlib_declared_size(path, image_node, shown, where, image)
                kp, corners = _dlib_face(box, path, where, image, pixels)
                if (face := _face_key(kp, corners)) in first_box:
                    raise DataFormatError(path, f"{where} repeats the box and parts of box {first_box[face]}: "
                                          "its face would count twice", field="box")
            except DataFormatError as err:
                bad(err)
                continue
            first_box[face] = j
            faces.append(_Face(kp, f"{Path(file).stem}#{j}", image, pixels, box=corners))
    if ignored:  # left out as dlib's tools leave them out, but said: the face count would not add up otherwise
        warnings.warn(f"{path}: {ignored} box{'es' if ignored > 1 else ''} marked ignore='1' (dlib's \"leave out "
                      f"of training\") left out; {len(faces)} faces read", stacklevel=2)
    messages, unlisted = skipped.messages()
    return _gather("ibug68", faces, path, load_images, messages, unlisted)


def _face_key(keypoints: np.ndarray, box) -> tuple[bytes, bytes]:
    """What makes two faces of one image the same face: the same points (missing ones where they are)
    and the same box; a face listed twice would count twice in every figure."""
    return np.asarray(keypoints, np.float32).tobytes(), np.asarray(box, np.float32).tobytes()


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
                              f"{supported} (from Python, read_coco_json(..., schema=...) takes another "
                              f"{k}-point schema)",
                              field="keypoints")
    return COCO_SCHEMAS[k]


def _is_id(value: object) -> bool:
    return isinstance(value, (int, str)) and not isinstance(value, bool)


def _coco_keypoints(path: Path, ann: dict, row: int) -> tuple[np.ndarray, np.ndarray]:
    """((K, 2) x, y with NaN where v == 0, (K,) bool: v == 0, the points marked missing)."""
    flat = ann.get("keypoints")
    if not isinstance(flat, list) or not flat or len(flat) % 3:
        raise DataFormatError(path, "keypoints must be a list of x, y, v triples", row=row, field="keypoints")
    odd = next((i for i, v in enumerate(flat) if type(v) not in (int, float)), None)  # bool, str, null, list
    if odd is not None:
        raise DataFormatError(path, f"keypoints hold a value that is not a number: {short(flat[odd])} (point "
                              f"{odd // 3})", row=row, field="keypoints")
    try:
        xyv = np.asarray(flat, np.float64).reshape(-1, 3)
    except OverflowError:  # an integer of hundreds of digits
        raise DataFormatError(path, "keypoints hold a number too large for a float", row=row, field="keypoints") \
            from None
    bad_v = np.flatnonzero(~np.isin(xyv[:, 2], (0, 1, 2)))
    if len(bad_v):
        raise DataFormatError(path, f"point {bad_v[0]}: visibility v = {xyv[bad_v[0], 2]:g}, expected 0, 1 or 2",
                              row=row, field="keypoints")
    missing = xyv[:, 2] == 0
    kp = xyv[:, :2].copy()
    kp[missing] = np.nan  # v == 0: not labelled
    return kp, missing


def _coco_images(path: Path, doc: dict) -> dict:
    """{image id: its 'images' entry}; each entry must be an object with an id and a file_name, and
    no two entries may name one file (its faces would count twice)."""
    images = doc.get("images", [])
    if not isinstance(images, list):
        raise DataFormatError(path, f"'images' must be a list of objects, got {short(images)}", field="images")
    entries = {}
    for i, img in enumerate(images):
        if not isinstance(img, dict) or not _is_id(img.get("id")) or not isinstance(img.get("file_name"), str):
            raise DataFormatError(path, f"images[{i}] must be an object with an id (an integer or text) and a "
                                  f"file_name, got {short(img)}", field="images")
        if img["id"] in entries:  # which picture would its annotations belong to?
            first = next(j for j, other in enumerate(images) if other["id"] == img["id"])
            raise DataFormatError(path, f"images[{i}] repeats the id {img['id']!r} of images[{first}]", field="images")
        entries[img["id"]] = img
    first_of_file: dict[str, int] = {}
    for i, img in enumerate(images):
        same = same_file(path.parent / img["file_name"])  # a link to a listed photo is that photo
        if same in first_of_file:
            j = first_of_file[same]
            before = images[j]["file_name"]
            link = f" ({short(before)}, the same file)" if before != img["file_name"] else ""
            raise DataFormatError(path, f"images[{i}] (id {img['id']!r}) names the file {short(img['file_name'])} "
                                  f"of images[{j}] (id {images[j]['id']!r}){link}: the photo's faces would count "
                                  "twice; list each image once", field="file_name")
        first_of_file[same] = i
    return entries


def _coco_categories(path: Path, doc: dict) -> dict:
    """{category id: (its index in 'categories', its keypoint names or None)}; empty when the file
    lists no categories, and then annotations' category_id is not checked."""
    categories = doc.get("categories", [])
    if not isinstance(categories, list):
        raise DataFormatError(path, f"'categories' must be a list of objects, got {short(categories)}",
                              field="categories")
    entries = {}
    for i, cat in enumerate(categories):
        if not isinstance(cat, dict) or not _is_id(cat.get("id")):
            raise DataFormatError(path, f"categories[{i}] must be an object with an integer or text id, got "
                                  f"{short(cat)}", field="categories")
        names = cat.get("keypoints")
        # mmpose's files list "keypoints": [] (names not given): only named points are counted
        entries.setdefault(cat["id"], (i, names if isinstance(names, list) and names else None))
    return entries


def _coco_category(path: Path, ann: dict, k: int, categories: dict, row: int) -> None:
    """An annotation's category_id must be listed in 'categories' (where the file lists any), and
    that category's keypoint names must be as many as the annotation's points: a 19-name category
    with 68-point annotations is not a 68-point face."""
    if not categories or "category_id" not in ann:
        return
    category = ann["category_id"]
    if not _is_id(category) or category not in categories:
        raise DataFormatError(path, f"category_id {short(category)} is not in 'categories' (ids: "
                              f"{', '.join(map(repr, categories))})", row=row, field="category_id")
    i, names = categories[category]
    if names is not None and len(names) != k:
        raise DataFormatError(path, f"categories[{i}].keypoints names {len(names)} points, but the annotation has "
                              f"{k}", row=row, field="keypoints")


def _coco_labels(images: dict) -> dict:
    """{image id: the name its faces' ids start with}: the file's stem, or where two files share a
    stem (a/x.jpg, b/x.jpg) the whole file name, so that face ids stay unique."""
    stems = Counter(Path(img["file_name"]).stem for img in images.values())
    return {key: Path(img["file_name"]).stem if stems[Path(img["file_name"]).stem] == 1
            else Path(os.path.normpath(img["file_name"])).as_posix() for key, img in images.items()}


def _coco_size(path: Path, img: dict, row: int) -> tuple[int, int] | None:
    """(height, width) an 'images' entry states, or None when it states neither."""
    if "width" not in img and "height" not in img:
        return None
    try:
        height, width = json_number(img.get("height")), json_number(img.get("width"))
    except ValueError as err:
        raise DataFormatError(path, f"image {img['id']!r}: width and height must be numbers ({err})", row=row,
                              field="image_id") from None
    if height < 0 or width < 0:
        raise DataFormatError(path, f"image {img['id']!r}: width and height must be >= 0 (0: unknown), got "
                              f"{width} and {height}", row=row, field="width" if width < 0 else "height")
    return (height, width) if height > 0 and width > 0 else None


def _coco_box(path: Path, bbox: object, row: int, size: tuple[int, int] | None, declared: bool = False,
              whence: str = "") -> tuple[float, ...]:
    """x1, y1, x2, y2 from ``bbox`` [x, y, width, height]; NaN when it is absent, null or []."""
    if bbox is None or bbox == []:
        return (np.nan,) * 4
    try:
        if not isinstance(bbox, list) or len(bbox) != 4:
            raise ValueError(f"got {short(bbox)}")
        x, y, w, h = (json_number(v) for v in bbox)
        if w <= 0 or h <= 0:  # a box of no size holds no face: matching a detection against it would miss it
            raise ValueError(f"width and height must be > 0, got {w} and {h}")
    except ValueError as err:
        raise DataFormatError(path, f"bbox must be [x, y, width, height], four numbers: {err}", row=row,
                              field="bbox") from None
    _check_declared(path, np.array([[x, y], [x + w, y + h]]), size, declared, whence, row=row, field="bbox",
                    names=["corner x, y", "corner x + width, y + height"])
    return x, y, x + w, y + h


def _header_size(image: Path) -> tuple[int, int] | None:
    """(height, width) of the photo as shown, from its header; None when it is not there or not sized."""
    try:
        width, height = image_size(image) if image.is_file() else (0, 0)
    except OSError:  # unreadable: reading its pixels names that
        return None
    return (height, width) if width * height else None


def _declared_size(path: Path, declared: tuple[float, float] | None, shown: tuple[int, int], where: str,
                   fields: tuple[str, str], image: Path, **at) -> None:
    """DataFormatError when a file's stated (height, width) of an image is not the image's real size:
    its labels were made for another picture (or another scale of it). ``fields``: (width, height) names.
    ``shown``: the image's (height, width) as read, EXIF orientation applied; a size stated before a
    quarter turn names the orientation, since the file's own pixels are stored the other way round."""
    real = tuple(shown)
    if declared is None or tuple(map(float, declared)) == tuple(map(float, real)):
        return
    wrong = fields[0] if float(declared[1]) != real[1] else fields[1]
    turned = ""
    if tuple(map(float, declared)) == tuple(map(float, real[::-1])) and \
            (orientation := image_orientation(image)) in QUARTER_TURNS:
        turned = (f"; the image has EXIF orientation {orientation} (shown turned 90°): labels and sizes are read "
                  "in the turned picture")
    raise DataFormatError(path, f"{where}: {fields[0]} and {fields[1]} declare {declared[1]:g} x {declared[0]:g} "
                          f"(width x height), but the image is {real[1]} x {real[0]}{turned}", field=wrong, **at)


def _check_declared(path: Path, points: np.ndarray, size: tuple | None, declared: bool, whence: str, **kw) -> None:
    """check_points; when ``size`` is the one the file declares (the image not read), a point beyond
    it says that the size comes from ``whence`` (the image itself may differ)."""
    try:
        check_points(path, points, size, **kw)
    except DataFormatError as err:
        if not declared:
            raise
        raise DataFormatError(path, f"{err.reason} (that size is the declared {whence}; the image was not "
                              "read)", row=err.row, field=err.field) from None


def _coco_face(path: Path, ann: object, row: int, images: dict, labels: dict, cache: _ImageCache,
               load_images: bool, order: dict, categories: dict) -> _Face:
    """One annotation as a face: its category, and its points and box checked against its image's size."""
    if not isinstance(ann, dict):
        raise DataFormatError(path, f"annotation is not an object: {short(ann)}", row=row)
    kp, missing = _coco_keypoints(path, ann, row)
    _coco_category(path, ann, len(kp), categories, row)
    image_id, face_id = ann.get("image_id"), ann.get("id", f"row{row}")  # never one of the file's ids ("a#1")
    if not _is_id(image_id) or image_id not in images:
        raise DataFormatError(path, f"image_id {short(image_id)} is not in 'images'", row=row, field="image_id")
    if not _is_id(face_id):
        raise DataFormatError(path, f"id must be an integer or text, got {short(face_id)}", row=row, field="id")
    file = images[image_id]["file_name"]
    image = path.parent / file
    pixels = cache.get(image, f"annotation {row}") if load_images else None
    declared = _coco_size(path, images[image_id], row)
    entry = f"images[{order[image_id]}]"
    # labels alone are checked against the photo's header where it is there, so both reads agree
    shown = pixels.shape[:2] if pixels is not None else cache.size(image) if declared is not None else None
    if shown is not None:
        _declared_size(path, declared, shown, f"image {image_id!r} ({short(file)})",
                       (f"{entry}.width", f"{entry}.height"), image, row=row)
    size = pixels.shape[:2] if pixels is not None else declared
    whence = f"{entry}.width and .height"
    _check_declared(path, kp, size, pixels is None and size is not None, whence, missing=missing, row=row,
                    field="keypoints")
    box = _coco_box(path, ann.get("bbox"), row, size, pixels is None and size is not None, whence)
    return _Face(kp.astype(np.float32), f"{labels[image_id]}#{face_id}", image, pixels, box=box)


def read_coco_json(path: str | Path, *, load_images: bool = True, schema: str | None = None,
                   skip_bad: bool = False) -> KeypointData:
    """Read a COCO-style keypoint JSON (``images`` + ``annotations``): one sample per annotation.

    Keypoints (N, K, 2) come from ``keypoints`` [x, y, v] * K; v == 0 gives NaN. The schema
    follows from K (68 -> ibug68) or from ``schema=``, the name of a K-point schema.
    ``boxes`` (N, 4) x1, y1, x2, y2 come from ``bbox`` [x, y, w, h] (NaN when absent).
    Image files are resolved relative to the JSON file's folder. Row numbers in errors count
    annotations from 0. With ``skip_bad`` a bad annotation is left out and listed in ``skipped``
    (of annotations with different point counts, those unlike the most common count); a bad
    file as a whole (not JSON, no 'annotations' list, a bad 'images' list) is still an error.
    """
    check_flags(load_images=load_images, skip_bad=skip_bad)
    path = _file_or_error(path)
    refuse_costly_json(path)
    doc = load_json(path)
    if not isinstance(doc, dict) or not isinstance(doc.get("annotations"), list):
        raise DataFormatError(path, "expected a JSON object with an 'annotations' list", field="annotations")
    if not doc["annotations"]:
        raise DataFormatError(path, "no annotations", field="annotations")
    images, cache, found, skipped = _coco_images(path, doc), _ImageCache(path), [], _Skipped(path)
    labels, categories = _coco_labels(images), _coco_categories(path, doc)
    order = {key: i for i, key in enumerate(images)}  # id -> its index in 'images', to name images[i]
    first_row: dict = {}  # (image id, annotation id) -> row: ids may restart on each image
    first_face: dict = {}  # (image id, points, box) -> row
    for row, ann in enumerate(doc["annotations"]):
        try:
            face = _coco_face(path, ann, row, images, labels, cache, load_images, order, categories)
            key = (ann["image_id"], ann["id"]) if "id" in ann else (ann["image_id"], row, "row")  # never a real id
            if key in first_row:  # the same face twice would count twice in every figure
                raise DataFormatError(path, f"annotation {row} repeats the id {short(str(key[1]))} of "
                                      f"annotation {first_row[key]} on the same image", row=row, field="id")
            same = (ann["image_id"], *_face_key(face.keypoints, face.box))
            if same in first_face:  # under another id: still one face, which would count twice
                raise DataFormatError(path, f"annotation {row} repeats the points and bbox of annotation "
                                      f"{first_face[same]} on the same image: its face would count twice",
                                      row=row, field="keypoints")
            if not skip_bad and found and len(face.keypoints) != len(found[0][1].keypoints):
                raise DataFormatError(path, f"{len(face.keypoints)} points where earlier annotations have "
                                      f"{len(found[0][1].keypoints)}", row=row, field="keypoints")
        except DataFormatError as err:
            if not skip_bad:
                raise
            skipped.add(row, str(err))
            continue
        first_row[key] = row
        first_face[same] = row
        found.append((row, face))
    if not found:  # skip_bad left nothing
        raise DataFormatError(path, f"no faces; {len(skipped)} skipped as bad: "
                              + "; ".join(message for _, message in sorted(skipped.items)[:3]))
    counts = Counter(len(face.keypoints) for _, face in found)
    k = counts.most_common(1)[0][0]  # without skip_bad the only one; with it, the most common (first on a tie)
    for row, face in found:
        if len(face.keypoints) != k:
            skipped.add(row, str(DataFormatError(path, f"{len(face.keypoints)} points where the other "
                                                     f"annotations have {k}", row=row, field="keypoints")))
    faces = [face for _, face in found if len(face.keypoints) == k]
    messages, unlisted = skipped.messages()
    return _gather(_coco_schema(path, k, schema), faces, path, load_images, messages, unlisted)
