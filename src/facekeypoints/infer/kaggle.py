"""Kaggle CSVs of framed 96 x 96 faces: one prediction, two front doors.

``facekeypoints predict test.csv`` (a CSV of keypoint columns) and ``facekeypoints submit``
(Kaggle's RowId,Location) both call ``predict_kaggle_csv``, so they give the same numbers.

Examples
--------
>>> from facekeypoints import KeypointDetector                                   # doctest: +SKIP
>>> det = KeypointDetector(detector=None, mirror_tta=True)                       # doctest: +SKIP
>>> write_keypoint_csv(predict_kaggle_csv(det, "test.zip"), "test_keypoints.csv")  # doctest: +SKIP
"""
from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

from facekeypoints.atomic import atomic_path
from facekeypoints.data import DataFormatError, KeypointData, read_id_lookup, read_kaggle_csv, write_submission
from facekeypoints.data.formats.csvfile import csv_header
from facekeypoints.data.formats.submission import SubmissionReport
from facekeypoints.data.walk import check_path

__all__ = ["predict_kaggle_csv", "write_keypoint_csv", "make_submission"]


# rows predicted at a time: a Ctrl-C keeps every chunk finished before it
CHUNK_ROWS = 512


def predict_kaggle_csv(detector, csv_path: str | Path, *, skip_bad: bool = False,
                       out_csv: str | Path | None = None) -> KeypointData:
    """The faces of a Kaggle-format CSV (already framed: no face detector) with ``detector``'s
    predictions as their keypoints, (N, K, 2) in the images' pixels, in row order. With
    ``skip_bad`` a bad row is left out and listed in ``.skipped`` instead of stopping the file.

    Rows are predicted ``CHUNK_ROWS`` at a time. A KeyboardInterrupt (Ctrl-C, SIGTERM) is raised
    with ``.partial`` saying what was kept: the rows finished so far are written to ``out_csv``
    (``write_keypoint_csv``, atomically) where one is given, as folders and videos keep theirs."""
    check_path(csv_path)  # a name too long: the reader's is_file() raised it as a bare OSError
    data = read_kaggle_csv(csv_path, skip_bad=skip_bad)
    if len(data) == 0:
        why = f"; the first: {data.skipped[0]}" if data.skipped else ""
        raise ValueError(f"{csv_path}: no row could be read ({len(data.skipped)} bad rows{why})")
    if data.images is None:
        raise ValueError(f"{csv_path}: has no Image column, so there is nothing to predict on")
    chunks = []
    try:
        for start in range(0, len(data), CHUNK_ROWS):
            chunks.append(detector.predict_crops(data.images[start:start + CHUNK_ROWS]))
    except KeyboardInterrupt as err:
        err.partial = _keep_partial(data, chunks, detector.schema, out_csv, csv_path)
        raise
    return replace(data, schema=detector.schema, keypoints=np.concatenate(chunks).astype(np.float32))


def _keep_partial(data: KeypointData, chunks: list[np.ndarray], schema, out_csv, csv_path) -> str:
    """Write the rows of ``data`` predicted in ``chunks`` before an interruption to ``out_csv``, and
    say what was written (nothing, without rows or an output file)."""
    done = sum(map(len, chunks))
    if not done or out_csv is None or str(out_csv) == "-":
        return (f"nothing was written ({done} of {len(data)} rows of {csv_path} had been predicted; "
                "the keypoint CSV is written when every row is done)")
    finished = replace(data.subset(np.arange(done)), schema=schema,
                       keypoints=np.concatenate(chunks).astype(np.float32))
    written = write_keypoint_csv(finished, out_csv)
    return f"results for {done} of {len(data)} rows of {csv_path} written to {written} (partial)"


def write_keypoint_csv(predictions: KeypointData, out_csv: str | Path) -> Path | None:
    """One row per face: ``id`` (the input's ImageId, or its row number) and the schema's 2K columns
    ``<name>_x, <name>_y``, written atomically. Returns ``out_csv``; ``"-"`` writes to standard
    output and returns None."""
    rows = predictions.keypoints.reshape(len(predictions), -1)
    lines = [",".join(["id", *predictions.schema.columns()]) + "\n"]
    lines += [str(row_id) + "," + ",".join(f"{v:.4f}" for v in values) + "\n" for row_id, values in
              zip(predictions.ids, rows)]
    if str(out_csv) == "-":
        sys.stdout.writelines(lines)
        return None
    out_csv = Path(out_csv)
    with atomic_path(out_csv) as tmp, open(tmp, "w") as f:
        f.writelines(lines)
    return out_csv


def make_submission(detector, test_csv: str | Path, lookup: str | Path, output: str | Path) -> SubmissionReport:
    """Predict every image of ``test_csv`` (Kaggle test.csv/.zip) and write ``RowId,Location`` for
    every row of ``lookup`` (IdLookupTable.csv). The report counts values clipped to the image."""
    if detector.schema.name != "kaggle15":
        raise ValueError(f"a Kaggle submission needs a kaggle15 model; {detector.runner.source} predicts "
                         f"{detector.schema.name!r}")
    if "ImageId" not in [c.strip() for c in csv_header(test_csv)]:  # row numbers are no ImageIds
        raise DataFormatError(test_csv, "a submission is made for a Kaggle test CSV, which has an ImageId column; "
                              "this file has none", field="ImageId")
    lookup_rows = read_id_lookup(lookup)  # before predicting: a bad lookup fails in a moment
    predictions = predict_kaggle_csv(detector, test_csv)
    return write_submission(predictions, lookup_rows, output, image_size=predictions.image_size(0),
                            lookup_source=f"{lookup} (for {test_csv})")
