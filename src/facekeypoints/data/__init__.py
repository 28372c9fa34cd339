"""Keypoint data, in pipeline order: files -> ``KeypointData`` -> framed faces -> splits -> model input.

- ``dataset``: ``KeypointData``, the one in-memory shape (N x K x 2 keypoints, NaN for missing);
- ``formats/``: a reader and writer for every file format, behind ``read(path)``;
- ``images``: ``read_image``, the one image-file reader;
- ``framing``: where a face sits in the model's input (template, similarity fit, box -> crop and back);
- ``convert``: landmark photos -> the Kaggle task (aligned 96 x 96 crops); ``splits``: missing
  labels and person-disjoint splits; ``pipeline``: a training run's data section, end to end;
- ``preprocess`` (uint8 crops -> model input, numpy only) and ``augment`` (random transforms, torch).
"""
from facekeypoints.data.convert import ConversionReport, to_kaggle_task
from facekeypoints.data.dataset import DataFormatError, KeypointData
from facekeypoints.data.formats import (SubmissionReport, attach_person, detect_format, read, read_aflw_mat,
                                        read_asf, read_coco_json, read_dlib_xml, read_id_lookup, read_kaggle_csv,
                                        read_ljson, read_pts, read_udacity_csv, read_ytf68_csv,
                                        verify_kaggle_download, write_kaggle_csv, write_pts, write_submission)
from facekeypoints.data.images import read_image
from facekeypoints.data.info import describe
from facekeypoints.data.preprocess import Preprocess
from facekeypoints.data.splits import MissingReport, describe_split, handle_missing, split, split_imm_people, split_indices

__all__ = ["KeypointData", "DataFormatError", "read_image", "Preprocess",
           "read", "detect_format", "read_pts", "write_pts", "read_asf", "read_ljson", "read_aflw_mat",
           "read_dlib_xml", "read_coco_json", "to_kaggle_task", "ConversionReport",
           "handle_missing", "MissingReport", "split", "split_indices", "describe_split", "split_imm_people",
           "read_kaggle_csv", "write_kaggle_csv", "read_id_lookup", "write_submission", "SubmissionReport",
           "read_ytf68_csv", "read_udacity_csv", "attach_person", "describe", "verify_kaggle_download"]
