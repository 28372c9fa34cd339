"""ONNX export of a checkpoint, and an ONNX Runtime backend with the torch backend's interface.

The exported graph maps ``image`` (B, C, S, S) float32, already preprocessed, to ``keypoints``
(B, K, 2) normalised coordinates; B is dynamic. The model card (schema, preprocessing, framing,
training data, validation figures) travels in the file's ``metadata_props`` as JSON, so an
``.onnx`` file alone is a usable model. Files exported before the card still load.

Examples
--------
>>> from facekeypoints.infer.onnx import export_onnx, OnnxRunner    # doctest: +SKIP
>>> export_onnx("runs/exp1/best.pt", "model.onnx")                   # doctest: +SKIP
>>> runner = OnnxRunner("model.onnx", threads=2)                     # doctest: +SKIP
>>> runner(runner.card.preprocess(crops)).shape                      # doctest: +SKIP
(N, 15, 2)
"""
from __future__ import annotations

import json
import warnings
from importlib import resources
from pathlib import Path

import numpy as np

from facekeypoints.atomic import atomic_path, remove_stale_temporaries
from facekeypoints.data.cache import cache_dir, file_digest
from facekeypoints.models.card import ModelCard
from facekeypoints.models.device import resolve_device
from facekeypoints.models.threads import max_threads

__all__ = ["export_onnx", "OnnxRunner", "open_session", "CARD_KEY", "EXPORT_KEY", "cached_export", "shipped_export",
           "UnreadableModelError"]

# torch's TorchScript exporter (dynamo=False) writes opsets up to 20 (torch.onnx._constants, private)
_TORCHSCRIPT_MAX_OPSET = 20
CARD_KEY = "facekeypoints.card"  # metadata_props entry holding the model card as JSON
# before the card (version 1), three entries held its parts
_V1_KEYS = {"schema": "facekeypoints.schema", "preprocess": "facekeypoints.preprocess", "model": "facekeypoints.model"}
# the outputs of the face detector's export (train.detector.export_detector), which carries no card
DETECTOR_OUTPUTS = ["heat", "size", "offset"]


class UnreadableModelError(ValueError):
    """ONNX Runtime cannot load the file (not ONNX, truncated, empty); the message names it."""


def export_onnx(checkpoint: str | Path, out: str | Path, *, opset: int = 17, device: str = "cpu") -> Path:
    """Export the checkpoint ``checkpoint`` (.pt) to ONNX at ``out``; returns ``out``.

    Uses the TorchScript exporter (``dynamo=False``: no onnxscript needed, and these convolutional
    models trace exactly), with a dynamic batch axis, then checks the graph with ``onnx.checker``.
    """
    import onnx
    import torch

    from facekeypoints.models.checkpoint import load_model

    highest = min(onnx.defs.onnx_opset_version(), _TORCHSCRIPT_MAX_OPSET)
    if not 9 <= opset <= highest:  # what both ONNX and torch's TorchScript exporter support
        raise ValueError(f"opset {opset} is not one the exporter supports here: give 9..{highest}")
    if str(checkpoint).lower().endswith(".onnx") and Path(checkpoint).is_file():  # else load_model's "not PyTorch"
        raise ValueError(f"{checkpoint}: is already an ONNX model; export takes a training checkpoint (.pt) or a "
                         "shipped model's name (an .onnx file is used as it is, e.g. predict --model model.onnx)")
    model, card = load_model(checkpoint)
    broken = sum(not torch.isfinite(t).all() for t in model.state_dict().values() if t.is_floating_point())
    if broken:  # exported all the same (a diverged run can still be inspected), but never without a word
        warnings.warn(f"{checkpoint}: {broken} of its weight tensors hold NaN or infinite values; the export "
                      "predicts NaN (a run that diverged?)", stacklevel=2)
    device = resolve_device(device)  # tracing on a GPU gives the same graph; it only needs the memory there
    model = model.to(device)
    size, channels = card.input_size, card.in_channels
    out = Path(out)
    with atomic_path(out) as tmp:  # per process: parallel first uses share the cache
        with warnings.catch_warnings():  # the legacy exporter announces its deprecation on every call
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.onnx.export(model, (torch.zeros(1, channels, size, size, device=device),), str(tmp), dynamo=False,
                              opset_version=int(opset), input_names=["image"], output_names=["keypoints"],
                              dynamic_axes={"image": {0: "batch"}, "keypoints": {0: "batch"}})
        graph = onnx.load(str(tmp))
        entry = graph.metadata_props.add()
        entry.key, entry.value = CARD_KEY, json.dumps(card.to_dict())
        made = graph.metadata_props.add()  # what it was made from: a shipped export is used only for its checkpoint
        made.key, made.value = EXPORT_KEY, json.dumps({"checkpoint_sha256": file_digest(checkpoint), "opset": int(opset),
                                                       "layout": EXPORT_LAYOUT})
        onnx.checker.check_model(graph)
        onnx.save(graph, str(tmp))
    return out


# what an export embeds, beyond the checkpoint's digest: a new layout rebuilds older cached exports
# (2: cards hold val_mirror_tta from the run's config)
EXPORT_LAYOUT = 2


EXPORT_KEY = "facekeypoints_export"


def shipped_export(checkpoint: str | Path, opset: int = 17, digest: str | None = None) -> Path | None:
    """The export shipped beside a shipped checkpoint (``weights/kaggle15_default.onnx``), where it was
    made from this very checkpoint at this opset and layout; else None. Shipped so that a first
    prediction needs no export: exporting imports torch, which took a first ``predict`` of one small
    photo to 1.09 GB, against 0.15 GB with the export at hand."""
    beside = Path(checkpoint).with_suffix(".onnx")
    weights = Path(str(resources.files("facekeypoints").joinpath("weights")))
    if beside.parent.resolve() != weights.resolve() or not beside.is_file():
        return None
    try:
        made = json.loads(open_session(beside, 1).get_modelmeta().custom_metadata_map.get(EXPORT_KEY, "{}"))
    except (UnreadableModelError, ValueError):
        return None  # damaged: exported to the cache as any checkpoint is
    wanted = {"checkpoint_sha256": digest or file_digest(checkpoint), "opset": int(opset), "layout": EXPORT_LAYOUT}
    return beside if made == wanted else None


def cached_export(checkpoint: str | Path, opset: int = 17, *, rebuild: bool = False) -> Path:
    """The ONNX export of ``checkpoint``: the shipped one for a shipped model (``shipped_export``),
    else made once per checkpoint content in the facekeypoints cache; ``rebuild``: made again
    (atomically) over an entry found unreadable."""
    digest = file_digest(checkpoint)
    if not rebuild and (shipped := shipped_export(checkpoint, opset, digest)) is not None:
        return shipped
    path = cache_dir() / "onnx" / f"{digest[:24]}-opset{opset}-v{EXPORT_LAYOUT}.onnx"
    if rebuild or not path.is_file():
        remove_stale_temporaries(path.parent)  # exports of killed processes
        export_onnx(checkpoint, path, opset=opset)
    return path


def open_session(path: str | Path, threads: int | None):
    """An ONNX Runtime CPU session of the file at ``path`` (keypoint models and the face detector):
    full graph optimisation, ``threads`` intra-op threads (None: the library's), idle threads
    sleeping; a file it cannot load is a ValueError naming it."""
    import onnxruntime as ort

    # 3000000000 overflowed ONNX Runtime's int; 100000 threads took 16 GB and the process could not be stopped
    if threads is not None and not 1 <= threads <= max_threads():
        raise ValueError(f"threads must be a whole number 1..{max_threads()} on this machine, got {threads!r}")
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads is not None:
        options.intra_op_num_threads = int(threads)
    # Idle worker threads sleep instead of spinning: inference alternates with face detection
    # and image work, and spinning threads took those cores (640x480 frame: 18-29 ms spinning,
    # 11-15 ms not, on 2 cores; the model alone runs at the same speed either way).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as err:  # onnxruntime raises its own exception types for bad files
        raise UnreadableModelError(f"{path}: ONNX Runtime cannot load this file ({type(err).__name__}: {err})") from None


class OnnxRunner:
    """Run an exported model with ONNX Runtime on the CPU.

    ``threads`` sets ``intra_op_num_threads`` (None: ONNX Runtime's default, one per core) for
    batches of two or more; a single face runs on a one-thread session, which is faster. Graph
    optimisation is ``ORT_ENABLE_ALL``; idle threads do not spin. ``card`` is the model card
    from the file's metadata.
    ``runner(x)``: (N, C, S, S) float32 -> (N, K, 2) normalised coordinates, float32.
    """

    backend = "onnx"

    def __init__(self, path: str | Path, threads: int | None = None):
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such ONNX model file")
        self.session = open_session(path, threads)
        # Batch 1 runs on its own one-thread session: handing a small face's convolutions to a
        # second thread costs more than it saves (default model on 2 cores: 0.52-0.57 ms with one
        # thread, 0.70-0.75 ms with two; from batch 2 on, two threads win).
        self._single = self.session if threads == 1 else None
        self._path = path
        self.card = _read_card(self.session.get_modelmeta().custom_metadata_map, path,
                               [o.name for o in self.session.get_outputs()])
        _check_card_fits_graph(self.card, self.session, path)
        self.source = str(path)
        self._input = self.session.get_inputs()[0].name

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """(N, C, S, S) float32 -> (N, K, 2) float32 normalised coordinates."""
        if len(x) == 0:
            return np.zeros((0, self.card.schema.num_keypoints, 2), np.float32)
        session = self.session
        if len(x) == 1:
            if self._single is None:
                self._single = open_session(self._path, 1)
            session = self._single
        return session.run(None, {self._input: np.ascontiguousarray(x, dtype=np.float32)})[0]


def _check_card_fits_graph(card: ModelCard, session, path: Path) -> None:
    """Refuse a file whose model card disagrees with its graph (an edited card): found here, the
    error names the file; found at the first inference it was ONNX Runtime's or numpy's message,
    after crops of the card's size were made (an input_size of 20000 took 4 GB first)."""
    inputs, outputs = session.get_inputs(), session.get_outputs()
    if len(inputs) != 1 or not outputs:
        raise ValueError(f"{path}: the graph takes {len(inputs)} inputs and gives {len(outputs)} outputs; "
                         "a facekeypoints model takes one image batch and gives keypoints")
    # a symbolic dimension ('batch') is a str or None in ONNX Runtime's shapes; a fixed one is an int
    image, points = list(inputs[0].shape), list(outputs[0].shape)
    want = [card.in_channels, card.input_size, card.input_size]
    if len(image) != 4 or any(isinstance(d, int) and d != w for d, w in zip(image[1:], want)):
        raise ValueError(f"{path}: the model card says the input is (N, {', '.join(map(str, want))}) but the "
                         f"graph takes {_shape(image)} (an edited card, or one from another model)")
    if isinstance(image[0], int):
        raise ValueError(f"{path}: the graph takes a fixed batch of {image[0]} (input {_shape(image)}); "
                         "facekeypoints runs any number of faces at once: export with a dynamic batch axis")
    want = [card.schema.num_keypoints, 2]
    if len(points) != 3 or any(isinstance(d, int) and d != w for d, w in zip(points[1:], want)):
        raise ValueError(f"{path}: the model card's schema {card.schema.name} has {want[0]} keypoints, so the "
                         f"output should be (N, {want[0]}, 2), but the graph gives {_shape(points)}")


def _shape(dims) -> str:
    return "(" + ", ".join("N" if not isinstance(d, int) else str(d) for d in dims) + ")"


def _read_card(meta: dict, path: Path, outputs: list[str] | None = None) -> ModelCard:
    """The model card in an exported file's metadata (the card entry, or version 1's three entries);
    ``outputs``, the graph's output names, tell our face detector's file (no card) from a foreign one."""
    try:
        if CARD_KEY in meta:
            return ModelCard.from_dict(json.loads(meta[CARD_KEY]), source=str(path))
        if all(key in meta for key in _V1_KEYS.values()):
            return ModelCard.from_dict({name: json.loads(meta[key]) for name, key in _V1_KEYS.items()}, source=str(path))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: the model card in its metadata is not valid JSON ({err})") from None
    if outputs == DETECTOR_OUTPUTS:  # ours too, but it finds faces: "export it" was advice that fails
        raise ValueError(f"{path}: a face detector (written by facekeypoints train-detector), not a keypoint "
                         "model; CnnDetector(model=...) runs it (the shipped one: --detector cnn); give --model a "
                         "keypoint model")
    raise ValueError(f"{path}: not exported by facekeypoints (no {CARD_KEY!r} metadata); "
                     "export with `facekeypoints export --model M -o model.onnx`")
