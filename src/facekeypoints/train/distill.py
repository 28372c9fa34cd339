"""Knowledge distillation: a trained teacher's keypoints as extra targets for every training face.

Why: Kaggle's faces are sparsely labelled and a large model that trains for hours in the background
is more accurate than the fast default. Here the teacher (``train.teacher``, a checkpoint of the
same schema and input size) predicts on each augmented batch as it is drawn, so its targets move
with the augmentation exactly and cover every point, labelled or not. A point counts only where the
teacher agrees with itself under mirroring (its prediction on the mirrored face, mirrored back, lies
within ``train.teacher_max_disagreement`` pixels): where it hesitates it is no teacher. The student
pays ``train.distill_weight`` x the run's loss against those targets, beside its loss on the labels.

Teacher and student are compared on their network outputs before any labellers' offset
(``train.label_offset``): both networks are mirror-symmetric, the offset belongs to the labels.
"""
from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import torch

from facekeypoints.data.cache import file_digest
from facekeypoints.models.checkpoint import load_model
from facekeypoints.models.codecs import decode, encode
from facekeypoints.schema import KeypointSchema

__all__ = ["Teacher", "check_teacher", "teacher_fingerprint"]


def check_teacher(path: str, run_folder: Path | None = None) -> None:
    """What can be said of ``train.teacher`` before minutes of reading data: the file is there, is a
    PyTorch checkpoint, and is not in ``run_folder``, whose checkpoints the run rewrites."""
    if not Path(path).is_file():
        what = "is a folder; give the .pt file in it" if Path(path).is_dir() else "no such checkpoint file"
        raise ValueError(f"train.teacher {path}: {what}")
    if str(path).lower().endswith(".onnx"):
        raise ValueError(f"train.teacher {path}: an ONNX export; a teacher is a PyTorch checkpoint (.pt)")
    if run_folder is not None and Path(path).resolve().parent == Path(run_folder).resolve():
        raise ValueError(f"train.teacher {path}: lies in this run's own folder, whose checkpoints the run rewrites; "
                         "copy it elsewhere first")
    st = Path(path).stat()
    _checked_weights(str(path), str(Path(path).resolve()), st.st_mtime_ns, st.st_size)


def teacher_fingerprint(path: str) -> dict:
    """The teacher file's size and sha256: a run records it, and a resume must find the same teacher
    (another file put at the same path would mix two teachers' targets in one run)."""
    st = Path(path).stat()
    return {"size": st.st_size, "sha256": _sha256(str(Path(path).resolve()), st.st_mtime_ns, st.st_size)}


@functools.lru_cache(maxsize=8)
def _sha256(real: str, mtime_ns: int, size: int) -> str:
    """Hashed once per file version (grid and fit both ask)."""
    return file_digest(real)


@functools.lru_cache(maxsize=8)
def _checked_weights(path: str, real: str, mtime_ns: int, size: int) -> None:
    """The weights checked once per file version: the grid checks every pending config's teacher
    before the first trains, and fit checks its own again (a ResNet teacher is a large read)."""
    from facekeypoints.models.checkpoint import load_checkpoint

    _check_finite(load_checkpoint(path, mmap=True).state_dict, path)


def _check_finite(weights: dict, path: str) -> None:
    """A teacher with NaN or infinite weights predicts NaN, which no threshold refuses: said at once."""
    floats = [v for v in weights.values() if torch.is_tensor(v) and v.is_floating_point()]
    bad = sum(not bool(torch.isfinite(v).all()) for v in floats)
    if bad:
        raise ValueError(f"train.teacher {path}: {bad} of {len(floats)} weight tensors hold NaN or infinite values; "
                         "give a checkpoint of a run that did not diverge")


class Teacher:
    """A frozen model giving mirror-consistent targets (normalised coordinates, NaN elsewhere)."""

    def __init__(self, path: str, schema: KeypointSchema, input_size: int, in_channels: int, device: str,
                 max_disagreement: float, student_preprocess=None, student_framing: str | None = None):
        model, card = load_model(path)
        if (card.schema.name, card.input_size, card.in_channels) != (schema.name, input_size, in_channels):
            raise ValueError(f"train.teacher {path}: predicts {card.schema.name} from {card.in_channels}x"
                             f"{card.input_size}x{card.input_size} inputs; the student needs {schema.name} from "
                             f"{in_channels}x{input_size}x{input_size}")
        if student_preprocess is not None and card.preprocess != student_preprocess:  # its inputs would mean other things
            raise ValueError(f"train.teacher {path}: was trained on inputs prepared otherwise ({card.preprocess}) than "
                             f"the student's ({student_preprocess}); its targets on the student's inputs would be wrong")
        if student_framing is not None and card.framing != student_framing:  # another picture of the face
            raise ValueError(f"train.teacher {path}: was trained on faces framed {card.framing!r}, the student's are "
                             f"framed {student_framing!r} (data.frame); its targets on the student's inputs would be "
                             "wrong; give a teacher trained with the student's data.frame")
        self.label_offset = card.label_offset  # its labellers' offset, which pseudo-labels carry as labels do
        self.model = model.to(device).eval()  # its weights were checked finite by check_teacher, before the data
        self.schema, self.max_disagreement = schema, float(max_disagreement)
        self.kept, self.seen = 0, 0  # points given as targets / points looked at, since the last kept_share()

    def kept_share(self) -> float:
        """The share of points the teacher agreed with itself on since the last call (reported per
        epoch: a teacher that keeps few points teaches little, and its threshold may be too tight)."""
        share = int(self.kept) / self.seen if self.seen else float("nan")
        self.kept, self.seen = 0, 0
        return share

    @torch.no_grad()
    def pseudo_labels(self, x: torch.Tensor, batch_size: int = 256) -> np.ndarray:
        """(N, C, S, S) inputs -> (N, K, 2) float32 labels in input pixels, as the training labels are: the
        mirror-consistent points of ``targets`` plus the teacher's labellers' offset; NaN elsewhere. Not
        counted in ``kept_share``, which reports the distillation of the batches."""
        device = next(self.model.parameters()).device
        parts = [self._agreed(x[i:i + batch_size].to(device))[0].cpu() for i in range(0, len(x), batch_size)]
        labels = torch.cat(parts).numpy() if parts else np.zeros((0, self.schema.num_keypoints, 2))
        if self.label_offset is not None:
            labels = labels + np.asarray(self.label_offset)
        return labels.astype(np.float32)

    def _agreed(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, C, S, S) inputs -> (target, unsure): the average of the teacher's two looks at each face (as
        it is and mirrored) in input pixels, NaN where they disagree by more than ``max_disagreement`` px."""
        size = tuple(x.shape[-2:])
        seen = decode(self.model(x).float(), size)
        mirrored = self.schema.flip(decode(self.model(torch.flip(x, dims=(-1,))).float(), size), size[-1])
        target = (seen + mirrored) / 2
        # NaN or infinite predictions are unsure too (NaN > limit is False): a target only where both looks are finite
        unsure = ~((seen - mirrored).norm(dim=-1) <= self.max_disagreement) | ~torch.isfinite(target).all(-1)
        target[unsure] = float("nan")
        return target, unsure

    @torch.no_grad()
    def targets(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, S, S) inputs -> (B, K, 2) targets in ``codecs.encode`` units; NaN where the teacher's
        two looks at the face (as it is and mirrored) disagree by more than ``max_disagreement`` px."""
        target, unsure = self._agreed(x)
        self.kept = self.kept + (~unsure).sum()  # a tensor: read once per epoch, not a GPU wait per step
        self.seen += unsure.numel()
        return encode(target, tuple(x.shape[-2:]))
