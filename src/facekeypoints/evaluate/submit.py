"""Kaggle submission from a model: predict every test image, answer every IdLookupTable row."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from facekeypoints.data.formats.submission import SubmissionReport

__all__ = ["make_submission"]


def make_submission(test_csv: str | Path, lookup: str | Path, output: str | Path, *, model: str | Path | None = None,
                    mirror_tta: bool = False) -> SubmissionReport:
    """Predict the 15 keypoints of each image in ``test_csv`` (Kaggle test.csv/.zip) with ``model``
    (a checkpoint; the shipped default when None) and write ``RowId,Location`` for every row of
    ``lookup`` (IdLookupTable.csv). The report counts values clipped to the 96 x 96 image."""
    from facekeypoints.data import read_id_lookup, read_kaggle_csv, write_submission
    from facekeypoints.evaluate.runner import predict_data, resolve_model

    net, ckpt = resolve_model(model)
    if ckpt["schema"]["name"] != "kaggle15":
        raise ValueError(f"{model}: a Kaggle submission needs a kaggle15 model, this one predicts {ckpt['schema']['name']!r}")
    test = read_kaggle_csv(test_csv)
    pred = predict_data(net, ckpt, test, mirror_tta=mirror_tta)
    predictions = replace(test, keypoints=pred)
    return write_submission(predictions, read_id_lookup(lookup), output, image_size=test.image_size(0))
