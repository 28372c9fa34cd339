"""Inference: faces and keypoints in photos and videos, with torch or ONNX Runtime.

Never imports ``facekeypoints.train``: running a model needs torch or onnxruntime, numpy and OpenCV.
"""
from facekeypoints.infer.detectors import DETECTORS, FaceDetector, HaarDetector
from facekeypoints.infer.predictor import KeypointDetector
from facekeypoints.infer.results import Face, Result

__all__ = ["KeypointDetector", "Result", "Face", "FaceDetector", "HaarDetector", "DETECTORS"]
