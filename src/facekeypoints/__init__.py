"""facekeypoints: find facial keypoints; train, compare and ship keypoint models."""
from facekeypoints.schema import KeypointSchema, list_schemas, load_schema

__version__ = "0.1.0"
__all__ = ["KeypointSchema", "load_schema", "list_schemas", "__version__"]
