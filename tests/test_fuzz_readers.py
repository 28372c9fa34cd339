"""Fuzzing of every reader behind ``facekeypoints.data.read``: corrupted files end in data or a named error.

Each format starts from a small valid file (built with the helpers of test_kaggle_csv and
test_landmark_formats); tables and Hypothesis then truncate it, garble its bytes, swap its numbers
for absurd ones (1e30, inf, NaN, 5000 digits), change its line endings and encoding, or, for
JSON and .mat, put oddly typed values where the structure expects others. Whatever the input,
``read`` must return KeypointData holding only plausible numbers or raise DataFormatError (or
FileNotFoundError) whose message names the file: never any other exception.
"""
import gzip
import io
import json
import re
import zipfile
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from facekeypoints.data import DataFormatError, KeypointData, read, write_pts
from facekeypoints.data.formats.checks import FAR
from test_kaggle_csv import COLUMNS, _fake_faces, _pixel_line, _training_text, _ytf_folder
from test_landmark_formats import _coco, _image, _points, _write_asf

scipy_io = pytest.importorskip("scipy.io", reason="reading .mat needs scipy")
# a drawn Kaggle file is ~70 kB of pixel text: Hypothesis warns each time it writes one into a report;
# scipy warns before reading some garbled .mat headers, which the reader then rejects
pytestmark = [pytest.mark.filterwarnings("ignore:Generating overly large repr"),
              pytest.mark.filterwarnings("ignore::UserWarning:scipy")]

# Hypothesis reuses one folder per format across examples (each writes its file before reading it)
FUZZ = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                        HealthCheck.too_slow])


# ---- the valid starting files ----------------------------------------------------------------------
class Seed:
    """A valid file: ``path`` (where corrupted versions are written and read; images sit beside it),
    its ``content``, and ``wrap``, which turns CSV text into the stored bytes (gzip, zip)."""

    def __init__(self, path: Path, content: bytes, wrap: Callable[[bytes], bytes] = lambda text: text):
        self.path, self.content, self.wrap = path, content, wrap

    def __repr__(self) -> str:  # a failure report shows the drawn bytes; the seeds' own would bury them
        return f"Seed({self.path.name})"

    def write(self, content: bytes | None = None, *, wrapped: bool = True) -> Path:
        data = self.content if content is None else content
        self.path.write_bytes(self.wrap(data) if wrapped else data)
        return self.path


def _gzip(text: bytes) -> bytes:
    return gzip.compress(text, mtime=0)


def _zip(text: bytes) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("training.csv", text)
    return out.getvalue()


def _kaggle_seeds(root: Path) -> dict[str, Seed]:
    keypoints, images = _fake_faces(2)
    training = _training_text(keypoints, images).encode()
    test = ("ImageId,Image\n" + "".join(f"{i + 1},{_pixel_line(im.reshape(-1))}\n"
                                        for i, im in enumerate(images))).encode()
    labels = training.split(b"\n")
    labels = b"\n".join(line.rsplit(b",", 1)[0] for line in labels if line) + b"\n"  # no Image column
    return {"kaggle_training": Seed(root / "training.csv", training), "kaggle_test": Seed(root / "test.csv", test),
            "kaggle_labels": Seed(root / "labels.csv", labels),
            "kaggle_gz": Seed(root / "training.csv.gz", training, _gzip),
            "kaggle_zip": Seed(root / "training.zip", training, _zip)}


def _udacity_seed(root: Path) -> Seed:
    (root / "training_frames_keypoints").mkdir(parents=True)
    _image(root / "training_frames_keypoints" / "face.png", h=40, w=30)
    values = ",".join(f"{v:.2f}" for v in _points(68, 3, w=30, h=40).reshape(-1))
    text = "," + ",".join(str(i) for i in range(136)) + "\nface.png," + values + "\n"
    return Seed(root / "training_frames_keypoints.csv", text.encode())


def _per_face_seeds(root: Path) -> dict[str, Seed]:
    """.pts, .asf, .ljson and .mat files, each named face.* beside face.png."""
    _image(root / "face.png")  # 80 x 60
    kp = _points(68)
    write_pts(kp, root / "face.pts")
    _write_asf(root / "face.asf", np.random.default_rng(1).uniform(0.1, 0.9, (58, 2)), "face.png")
    ljson = {"version": 2, "landmarks": {"points": [[float(y), float(x)] for x, y in kp]}}
    (root / "face.ljson").write_text(json.dumps(ljson))
    scipy_io.savemat(root / "face.mat", {"pt3d_68": np.vstack([kp.T, np.ones((1, 68))])})
    return {name: Seed(root / f"face.{name}", (root / f"face.{name}").read_bytes())
            for name in ("pts", "asf", "ljson", "mat")}


def _dlib_seed(root: Path) -> Seed:
    _image(root / "pic.png")
    parts = "".join(f"<part name='{i:02d}' x='{x:.0f}' y='{y:.0f}'/>" for i, (x, y) in enumerate(_points(68, 5)))
    text = ("<?xml version='1.0'?>\n<dataset>\n<images>\n<image file='pic.png'>\n"
            f"<box top='5' left='7' width='30' height='20'>\n{parts}\n</box>\n"
            "<box top='1' left='2' width='3' height='4'/>\n</image>\n</images>\n</dataset>\n")
    return Seed(root / "faces.xml", text.encode())


@pytest.fixture(scope="module")
def seeds(tmp_path_factory) -> dict[str, Seed]:
    root = tmp_path_factory.mktemp("fuzz")
    folders = {name: root / name for name in ("kaggle", "ytf", "udacity", "faces", "dlib", "coco")}
    for folder in folders.values():
        folder.mkdir()
    found = _kaggle_seeds(folders["kaggle"]) | _per_face_seeds(folders["faces"])
    ytf, _ = _ytf_folder(folders["ytf"])
    coco = _coco(folders["coco"], 68)
    found |= {"ytf68": Seed(ytf, ytf.read_bytes()), "udacity": _udacity_seed(folders["udacity"]),
              "dlib_xml": _dlib_seed(folders["dlib"]), "coco_json": Seed(coco, coco.read_bytes())}
    return found


FORMATS = ["kaggle_training", "kaggle_test", "kaggle_labels", "kaggle_gz", "kaggle_zip", "ytf68", "udacity", "pts",
           "asf", "ljson", "mat", "dlib_xml", "coco_json"]
TEXT_FORMATS = [f for f in FORMATS if f != "mat"]


def read_cleanly(path: Path, **options) -> KeypointData | None:
    """``read(path)``: KeypointData with plausible numbers, or None after an error that names the file."""
    try:
        data = read(path, **options)
    except (DataFormatError, FileNotFoundError) as err:
        assert path.name in str(err), f"{type(err).__name__} does not name {path.name}: {err}"
        return None
    assert isinstance(data, KeypointData)
    present = data.keypoints[~np.isnan(data.keypoints)]
    assert (np.abs(present) <= FAR).all(), "an absurd coordinate was accepted"
    return data


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_seed_is_valid(seeds, fmt):
    for load_images in (True, False):
        data = read_cleanly(seeds[fmt].write(), load_images=load_images)
        assert data is not None and len(data) >= 1 and not data.skipped


# ---- table: whole-file corruptions ------------------------------------------------------------------
def _every_number(value: bytes, count: int = 0) -> Callable[[bytes], bytes]:
    """Replace every number (or the first ``count``) of a file by ``value``."""
    return lambda text: _NUMBER.sub(value, text, count=count)


_NUMBER = re.compile(rb"[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")
WHOLE_FILE = {
    "empty": lambda text: b"",
    "blank lines": lambda text: b"\n\n \n",
    "random bytes": lambda text: np.random.default_rng(0).integers(0, 256, 3000, dtype=np.uint8).tobytes(),
    "first half": lambda text: text[:len(text) // 2],
    "first 10 bytes": lambda text: text[:10],
    "last half": lambda text: text[len(text) // 2:],
    "CR line ends": lambda text: text.replace(b"\n", b"\r"),
    "CR LF line ends": lambda text: text.replace(b"\n", b"\r\n"),
    "doubled line ends": lambda text: text.replace(b"\n", b"\n\n"),
    "UTF-16": lambda text: text.decode("utf-8").encode("utf-16"),
    "BOM": lambda text: b"\xef\xbb\xbf" + text,
    "latin-1 byte": lambda text: text[:5] + b"\xe9" + text[5:],
    "NUL byte": lambda text: text[:len(text) // 3] + b"\x00" + text[len(text) // 3:],
    "numbers 1e30": _every_number(b"1e30"),
    "numbers -inf": _every_number(b"-inf"),
    "numbers nan": _every_number(b"nan"),
    "numbers 5000 digits": _every_number(b"9" * 5000, count=200),  # every pixel too would write 90 MB
    "numbers far out": _every_number(b"-5000"),
    "numbers empty": _every_number(b""),
    "numbers as text": _every_number(b"x"),
    "numbers superscript": _every_number("\u00b2".encode()),
}


@pytest.mark.parametrize("fmt", TEXT_FORMATS)
@pytest.mark.parametrize("corruption", list(WHOLE_FILE))
def test_whole_file_corruptions(seeds, fmt, corruption):
    seed = seeds[fmt]
    path = seed.write(WHOLE_FILE[corruption](seed.content))
    for skip_bad in (False, True):
        read_cleanly(path, load_images=False, skip_bad=skip_bad)


@pytest.mark.parametrize("fmt", ["kaggle_gz", "kaggle_zip", "mat"])
@pytest.mark.parametrize("cut", [0, 1, 4, 30, 200, -40, -8])
def test_truncated_binary_containers(seeds, fmt, cut):
    seed = seeds[fmt]
    stored = seed.wrap(seed.content)
    read_cleanly(seed.write(stored[:cut] if cut else b"", wrapped=False), load_images=False)


# ---- Hypothesis: byte-level mutations ---------------------------------------------------------------
WEIRD = [b"1e30", b"-1e30", b"inf", b"-inf", b"nan", b"NaN", b"1e999", b"-0", b"9" * 30, b"9" * 5000, b"", b"x",
         b"1,5", "\u00bd".encode(), "\u0663".encode(), b"0x10", b"1_0", b" ", b"-", b"1e", b"-5000", b"1000",
         b"5.0", b"0.5", b"-1", b"255", b"256", b'"7"']
MARKS = [b",", b"\n", b"\r", b'"', b"\x00", b"{", b"}", b"[", b"]", b"<", b">", b"'", b"\xff", b"\xe9", b"\t", b":"]


def _truncate(draw, data: bytes) -> bytes:
    return data[:draw(st.integers(0, len(data)))]


def _replace_number(draw, data: bytes) -> bytes:
    found = list(_NUMBER.finditer(data))
    if not found:
        return data
    early = min(len(found) - 1, 60)  # the coordinates come first in most files: hit them often
    match = found[draw(st.one_of(st.integers(0, early), st.integers(0, len(found) - 1)))]
    return data[:match.start()] + draw(st.sampled_from(WEIRD)) + data[match.end():]


def _flip(draw, data: bytes) -> bytes:
    if not data:
        return data
    out = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        out[draw(st.integers(0, len(out) - 1))] = draw(st.integers(0, 255))
    return bytes(out)


def _insert(draw, data: bytes) -> bytes:
    at = draw(st.integers(0, len(data)))
    return data[:at] + draw(st.one_of(st.sampled_from(MARKS), st.binary(max_size=12))) + data[at:]


def _delete(draw, data: bytes) -> bytes:
    start = draw(st.integers(0, len(data)))
    return data[:start] + data[start + draw(st.integers(1, 200)):]


def _line_ends(draw, data: bytes) -> bytes:
    return data.replace(b"\r\n", b"\n").replace(b"\n", draw(st.sampled_from([b"\r", b"\r\n", b"\n\n", b"\n\r"])))


def _duplicate_line(draw, data: bytes) -> bytes:
    lines = data.split(b"\n")
    i = draw(st.integers(0, len(lines) - 1))
    return b"\n".join(lines[:i + 1] + lines[i:])


def _encoding(draw, data: bytes) -> bytes:
    text = data.decode("utf-8", "replace")
    return text.encode(draw(st.sampled_from(["utf-16", "utf-32", "latin-1", "cp1252", "utf-8-sig"])), "replace")


MUTATORS = [_truncate, _replace_number, _replace_number, _flip, _insert, _delete, _line_ends, _duplicate_line,
            _encoding]


@st.composite
def mutated(draw, original: bytes) -> bytes:
    data = original
    for _ in range(draw(st.integers(1, 3))):
        data = draw(st.sampled_from(MUTATORS))(draw, data)
    return data


@pytest.mark.parametrize("fmt", FORMATS)
@FUZZ
@given(data=st.data())
def test_mutated_files(seeds, fmt, data):
    seed = seeds[fmt]
    wrapped = fmt == "mat" or data.draw(st.booleans(), label="mutate before compressing")
    original = seed.content if wrapped else seed.wrap(seed.content)
    path = seed.write(data.draw(mutated(original), label="content"), wrapped=wrapped)
    read_cleanly(path, load_images=data.draw(st.booleans(), label="load_images"),
                 skip_bad=data.draw(st.booleans(), label="skip_bad"))


# ---- Hypothesis: oddly typed JSON values -----------------------------------------------------------
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.just(10**400) | st.text(max_size=6)
    | st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from([1e30, -1e30, 0.5, 5000.0, -1]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6)


def _json_paths(node, path=()):
    """Every (path, is a container) in ``node``, depth first."""
    yield path, isinstance(node, (dict, list))
    children = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, child in children:
        yield from _json_paths(child, path + (key,))


def _edit(doc, path: tuple, value, delete: bool):
    if not path:
        return value
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    if delete and isinstance(parent, dict):
        del parent[path[-1]]
    elif delete:
        parent.pop(path[-1])
    else:
        parent[path[-1]] = value
    return doc


@pytest.mark.parametrize("fmt", ["coco_json", "ljson"])
@FUZZ
@given(data=st.data())
def test_oddly_typed_json(seeds, fmt, data):
    seed = seeds[fmt]
    doc = json.loads(seed.content)
    for _ in range(data.draw(st.integers(1, 3), label="edits")):
        paths = list(_json_paths(doc))
        containers = [p for p, inner in paths if inner] or [()]
        path = data.draw(st.one_of(st.sampled_from([p for p, _ in paths]), st.sampled_from(containers)), label="at")
        doc = _edit(doc, path, data.draw(JSON_VALUES, label="value"), data.draw(st.booleans(), label="delete"))
    read_cleanly(seed.write(json.dumps(doc).encode()), load_images=data.draw(st.booleans(), label="load_images"))


# ---- Hypothesis: odd MATLAB values -----------------------------------------------------------------
SHAPES = [(3, 68), (2, 68), (68, 3), (1, 68), (3, 67), (68,), (3, 68, 2), (0, 68), (1, 1)]
SPECIAL = [np.nan, np.inf, -np.inf, 1e30, -5000.0, 0.0, 40.0]


@st.composite
def mat_values(draw) -> dict:
    kind = draw(st.sampled_from(["float", "int", "bool", "complex", "text", "cell", "struct", "absent"]))
    shape = draw(st.sampled_from(SHAPES))
    values = np.full(shape, 20.0)
    for _ in range(draw(st.integers(0, 3))):
        if values.size:
            values.flat[draw(st.integers(0, values.size - 1))] = draw(st.sampled_from(SPECIAL))
    value = {"float": values, "int": np.clip(np.nan_to_num(values), -3e4, 3e4).astype(np.int16), "bool": values > 0,
             "complex": values + 1j, "text": np.array([["a"] * 68] * 3), "struct": {"x": values},
             "cell": np.array([values, "b"], dtype=object), "absent": None}[kind]
    return {"pt2d": values} if value is None else {"pt3d_68": value}


@FUZZ
@given(data=st.data())
def test_odd_mat_values(seeds, data):
    seed = seeds["mat"]
    scipy_io.savemat(seed.path, data.draw(mat_values(), label="variables"))
    read_cleanly(seed.path, load_images=data.draw(st.booleans(), label="load_images"))


# ---- the columns that hold numbers, each made absurd ------------------------------------------------
@pytest.mark.parametrize("value", [b"1e30", b"inf", b"-inf", b"nan", b"-1000"])
def test_an_absurd_kaggle_coordinate_names_its_row_and_column(seeds, value):
    seed = seeds["kaggle_training"]
    header, first, rest = seed.content.split(b"\n", 2)
    cells = first.split(b",")
    cells[COLUMNS.index("nose_tip_y")] = value
    path = seed.write(b"\n".join([header, b",".join(cells), rest]))
    with pytest.raises(DataFormatError, match=r"training.csv, row 1, field 'nose_tip_y'"):
        read(path)
    assert len(read(path, skip_bad=True).skipped) == 1


@pytest.mark.parametrize("fmt", [f for f in TEXT_FORMATS if f not in ("kaggle_gz", "kaggle_zip")])
@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-32"])
def test_a_wide_encoding_is_named(seeds, fmt, encoding):
    """Spreadsheet programs save "Unicode text" as UTF-16: the error says so instead of showing a
    header of NUL-separated letters."""
    seed = seeds[fmt]
    path = seed.write(seed.content.decode("utf-8").encode(encoding))
    try:
        read(path, load_images=False)
    except DataFormatError as err:
        assert path.name in str(err) and encoding[:6].upper() in str(err), str(err)
    else:
        assert fmt == "dlib_xml", "a UTF-16 or UTF-32 file was read without a word"  # XML declares its encoding
