"""Keypoint data: the in-memory shape, readers and writers for every format, splits."""
from facekeypoints.data.dataset import DataFormatError, KeypointData
# model-input preprocessing (numpy + OpenCV only); augmentation is facekeypoints.data.augment (torch)
from facekeypoints.data.preprocess import Preprocess
# landmark files, the format dispatcher, Kaggle-task conversion, missing labels and splits
from facekeypoints.data.convert import ConversionReport, to_kaggle_task
from facekeypoints.data.io import detect_format, read
from facekeypoints.data.landmark_sets import read_coco_json, read_dlib_xml
from facekeypoints.data.landmarks import read_aflw_mat, read_asf, read_ljson, read_pts, write_pts
# Kaggle / YouTube-Faces CSVs, submissions, summaries and download checks
from facekeypoints.data.info import describe
from facekeypoints.data.kaggle import read_kaggle_csv, write_kaggle_csv
from facekeypoints.data.submission import SubmissionReport, read_id_lookup, write_submission
from facekeypoints.data.verify import verify_kaggle_download
from facekeypoints.data.ytf import attach_person, read_udacity_csv, read_ytf68_csv
from facekeypoints.data.splits import MissingReport, describe_split, handle_missing, split, split_imm_people, split_indices

__all__ = ["KeypointData", "DataFormatError",
           "read", "detect_format", "read_pts", "write_pts", "read_asf", "read_ljson", "read_aflw_mat",
           "read_dlib_xml", "read_coco_json", "to_kaggle_task", "ConversionReport",
           "handle_missing", "MissingReport", "split", "split_indices", "describe_split", "split_imm_people",
           "read_kaggle_csv", "write_kaggle_csv", "read_id_lookup", "write_submission", "SubmissionReport",
           "read_ytf68_csv", "read_udacity_csv", "attach_person", "describe", "verify_kaggle_download"]
__all__ += ["Preprocess"]
