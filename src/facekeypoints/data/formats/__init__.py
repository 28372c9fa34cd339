"""Readers and writers of every keypoint file format; ``read(path)`` picks the right one.

Each module owns one family of files: ``kaggle`` (Kaggle FKD CSVs, with ``csvfile`` and ``pixels``
for their plumbing), ``ytf`` (YouTube-Faces and Udacity CSVs), ``landmarks`` (.pts, .asf, .ljson,
.mat, one face per file), ``landmark_sets`` (dlib XML, COCO JSON, many faces per file),
``submission`` (Kaggle IdLookupTable and submissions) and ``verify`` (a Kaggle download's files).
All return :class:`facekeypoints.data.KeypointData`; every error names the file, row and field.
``checks`` holds the one rule every reader applies to coordinates (finite, and within one image
size of the image) and ``textfile`` the reading of small text and JSON annotation files.
"""
from facekeypoints.data.formats.io import SUPPORTED_FORMATS, detect_format, read
from facekeypoints.data.formats.kaggle import read_kaggle_csv, write_kaggle_csv
from facekeypoints.data.formats.landmark_sets import read_coco_json, read_dlib_xml
from facekeypoints.data.formats.landmarks import read_aflw_mat, read_asf, read_ljson, read_pts, write_pts
from facekeypoints.data.formats.submission import SubmissionReport, read_id_lookup, write_submission
from facekeypoints.data.formats.verify import verify_kaggle_download
from facekeypoints.data.formats.ytf import attach_person, read_udacity_csv, read_ytf68_csv

__all__ = ["read", "detect_format", "SUPPORTED_FORMATS", "read_kaggle_csv", "write_kaggle_csv", "read_coco_json",
           "read_dlib_xml", "read_aflw_mat", "read_asf", "read_ljson", "read_pts", "write_pts", "SubmissionReport",
           "read_id_lookup", "write_submission", "verify_kaggle_download", "attach_person", "read_udacity_csv",
           "read_ytf68_csv"]
