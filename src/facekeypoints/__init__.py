"""facekeypoints: find facial keypoints; train, compare and ship keypoint models.

Examples
--------
>>> import facekeypoints as fk
>>> fk.load_schema("kaggle15").num_keypoints
15
>>> det = fk.KeypointDetector()          # doctest: +SKIP
>>> result = det("photo.jpg")            # doctest: +SKIP
>>> det.card.summary()["schema"]         # doctest: +SKIP
'kaggle15'
"""
__version__ = "0.1.0"
__all__ = ["KeypointSchema", "load_schema", "list_schemas", "KeypointDetector", "create_model", "list_models",
           "ModelCard", "__version__"]


def __getattr__(name: str):
    # torch takes seconds to import, numpy and yaml a tenth: each name imports what it needs on first
    # use, so `import facekeypoints.cli` (every command's start) imports none of them
    if name in ("KeypointSchema", "list_schemas", "load_schema"):
        from facekeypoints import schema

        return getattr(schema, name)
    if name == "KeypointDetector":
        from facekeypoints.infer import KeypointDetector

        return KeypointDetector
    if name in ("create_model", "list_models"):
        from facekeypoints import models

        return getattr(models, name)
    if name == "ModelCard":
        from facekeypoints.models.card import ModelCard

        return ModelCard
    raise AttributeError(f"module 'facekeypoints' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
