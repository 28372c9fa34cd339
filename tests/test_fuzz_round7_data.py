"""Round 7 of fresh bad inputs for the image and label readers: each case was once read without a
word (a sample above a PGM's maxval clipped to white, one of two images beside a .pts file taken
at random, a PNG whose damage libpng reported on the console naming no file); each now is an
error or a warning that names the file (synthetic files only)."""
from __future__ import annotations

import struct
from pathlib import Path

import cv2
import numpy as np
import pytest

from facekeypoints.data.dataset import DataFormatError
from facekeypoints.data.formats.landmarks import read_pts
from facekeypoints.data.images import decode_image, read_image


# ---- a PGM/PPM sample above the declared maxval ------------------------------------------------------
@pytest.mark.parametrize("header, samples", [
    (b"P5\n4 1\n100\n", np.array([0, 50, 100, 200], np.uint8).tobytes()),  # 8-bit
    (b"P5\n4 1\n1000\n", np.array([0, 500, 1000, 2000], ">u2").tobytes()),  # 16-bit
    (b"P6\n2 1\n1000\n", np.array([0, 500, 1000, 1001, 0, 0], ">u2").tobytes()),  # colour
])
def test_a_sample_above_maxval_is_an_error_not_white(tmp_path, header, samples):
    path = tmp_path / "damaged.pgm"
    path.write_bytes(header + samples)
    with pytest.raises(DataFormatError, match=r"damaged\.pgm: cannot use image: sample value \d+ is above the "
                                              r"file's declared maximum \(maxval\) \d+"):
        read_image(path)


def test_plain_text_pgm_samples_above_maxval_are_errors_and_valid_ones_scale(tmp_path):
    (tmp_path / "over.pgm").write_bytes(b"P2\n4 1\n255\n0 50 100 300\n")  # OpenCV clipped 300 to 255
    with pytest.raises(DataFormatError, match=r"over\.pgm: .*300"):
        read_image(tmp_path / "over.pgm")
    (tmp_path / "ok.pgm").write_bytes(b"P5\n4 1\n100\n" + bytes([0, 50, 100, 99]))
    assert read_image(tmp_path / "ok.pgm")[0, :, 0].tolist() == [0, 128, 255, 252]  # scaled by maxval
    (tmp_path / "plain.pgm").write_bytes(b"P2\n4 1\n255\n0 50 100 255\n")
    assert read_image(tmp_path / "plain.pgm")[0, :, 0].tolist() == [0, 50, 100, 255]


# ---- two images that could be the one a .pts file labels ------------------------------------------------
def test_two_images_beside_one_pts_file_are_an_error(tmp_path):
    image = np.full((40, 40, 3), 128, np.uint8)
    cv2.imwrite(str(tmp_path / "a.jpg"), image)
    points = "\n".join(f"{10 + i % 20} {10 + i // 4}" for i in range(68))
    (tmp_path / "a.pts").write_text(f"version: 1\nn_points: 68\n{{\n{points}\n}}\n")
    assert Path(read_pts(tmp_path).paths[0]).name == "a.jpg"
    cv2.imwrite(str(tmp_path / "a.png"), image)
    with pytest.raises(DataFormatError, match=r"a\.pts: 2 images could be the one labelled here: a\.jpg, a\.png"):
        read_pts(tmp_path)


# ---- what the image decoders print on the console ----------------------------------------------------
def _png_with_bad_crc() -> bytes:
    png = cv2.imencode(".png", np.zeros((8, 8, 3), np.uint8))[1].tobytes()
    damaged = struct.pack(">I", 3) + b"tEXta\x00b" + struct.pack(">I", 0)  # a text chunk whose CRC is wrong
    return png[:33] + damaged + png[33:]  # after the signature and IHDR


def test_decoder_console_warnings_name_the_image(tmp_path, capfd):
    path = tmp_path / "crc.png"
    path.write_bytes(_png_with_bad_crc())
    with pytest.warns(UserWarning, match=r"crc\.png: the image decoder warned: libpng warning: tEXt: CRC error"):
        assert read_image(path).shape == (8, 8, 3)
    notes: list[str] = []
    decode_image(path.read_bytes(), name="upload", notes=notes)
    assert notes == ["upload: the image decoder warned: libpng warning: tEXt: CRC error"]
    assert "libpng" not in capfd.readouterr().err  # not also on the console, unnamed
