"""The training loop: seeded, resumable, logged, on any device, optionally data-parallel (torchrun).

Why a plain loop rather than Lightning: the whole preprocessed dataset fits in one tensor (2436
faces at 96 x 96 are 90 MB), so it is put on the training device once and every batch is indexed
and augmented there: no DataLoader, no workers, no pinned-memory copies per step, which on a
2-core CPU cost more than they give and on a GPU would only feed it from the slower host.
Everything here is ordinary PyTorch: torch.distributed for DDP (NCCL on GPUs, gloo on CPUs),
torch.autocast for mixed precision, tqdm for progress, torch.utils.tensorboard for curves.

Determinism: batch order comes from a generator seeded by (seed, epoch) and every step re-seeds
torch's RNG from (seed, epoch, step), so a run resumed from any step retraces the same steps.
"""
from __future__ import annotations

import atexit
import contextlib
import csv
import json
import math
import os
import shutil
import signal
import sys
import time
import warnings
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from urllib.error import URLError

import numpy as np
import torch
import torch.distributed as dist
from tqdm import tqdm

from facekeypoints.atomic import atomic_path, check_target
from facekeypoints.data.augment import augment_batch
from facekeypoints.data.framing import framing_for
from facekeypoints.data.pipeline import DATA_PATH_KEYS, faces_digest, load_parts, to_scoring_pixels
from facekeypoints.data.splits import handle_missing
from facekeypoints.evaluate.metrics import mae, rmse
from facekeypoints.models import create_model
from facekeypoints.models.card import ModelCard
from facekeypoints.models.checkpoint import Checkpoint, card_for, check_compatible, load_checkpoint, save_checkpoint
from facekeypoints.models.codecs import encode
from facekeypoints.models.device import DeviceError, amp_dtype, resolve_device
from facekeypoints.models.face_detector import holds_detector_run
from facekeypoints.models.predict import TorchRunner, predict_inputs
from facekeypoints.schema import load_schema
from facekeypoints.settings import SettingsError, from_dict
from facekeypoints.train.config import Config, TrainConfig, recipe_values
from facekeypoints.train.distill import Teacher, check_teacher, teacher_fingerprint
from facekeypoints.train.pseudo import join_faces, unlabeled_faces
from facekeypoints.train.folder_claim import claim_folder, release_folder
from facekeypoints.train.label_offset import LabelOffset
from facekeypoints.train.losses import make_loss
from facekeypoints.train.tensorboard_log import TensorBoardLog

__all__ = ["fit", "TrainState", "check_machine", "check_run_folder", "RESUMABLE_CHANGES", "flatten_settings",
           "recipe_changes"]


@dataclass
class TrainState:
    """Where a run stands; saved in every checkpoint so ``--resume`` continues from the same step."""

    epoch: int = 0  # epochs finished
    step: int = 0  # steps finished within the current epoch
    history: list = field(default_factory=list)  # one row per finished epoch (metrics.csv)
    best: dict | None = None  # the row of the best validation RMSE so far
    minutes: float = 0.0  # training time so far, across resumes
    loss_sum: float = 0.0  # running training loss of the current epoch
    loss_n: int = 0
    faces: dict = field(default_factory=dict)  # training and validation faces at the start, checked on resume
    teacher: dict = field(default_factory=dict)  # train.teacher's file (size, sha256), checked on resume
    # the pixels history and best are scored in; None: saved by a version that did not record it (its
    # scores may be in the model input's pixels, not comparable with new ones: see _check_scored_in)
    scored_in: str | None = None

    def __post_init__(self) -> None:  # a damaged or foreign last.pt is refused on resume, not met mid-run
        for name in ("epoch", "step", "loss_n", "minutes"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        for i, row in enumerate(self.history):
            if not isinstance(row, dict) or not {"epoch", "train_loss"} <= row.keys():
                raise ValueError(f"history[{i}] must be an epoch's row (with epoch and train_loss), got {row!r}")
        if self.best is not None and not {"epoch", "val_rmse"} <= self.best.keys():
            raise ValueError(f"best must be an epoch's row with epoch and val_rmse, got {self.best!r}")
        if self.teacher and not {"size", "sha256"} <= self.teacher.keys():
            raise ValueError(f"teacher must hold the teacher file's size and sha256, got {self.teacher!r}")


SCORED_IN = "image pixels"  # what validation scores are in now (see _validate)


@dataclass
class _Run:
    """What one training run is made of, built once by ``_setup``."""

    cfg: Config
    model: torch.nn.Module  # wrapped in DistributedDataParallel with several processes
    card: ModelCard  # written into every checkpoint, with the epoch's metrics
    opt: torch.optim.Optimizer
    sched: object | None
    loss_fn: object
    train_x: torch.Tensor  # (N, C, S, S) preprocessed once, on the device: training never re-reads files
    train_kp: torch.Tensor  # (N, K, 2) pixels, NaN for missing, on the device
    val_x: torch.Tensor  # validation stays on the CPU: the prediction path takes numpy
    val_kp: torch.Tensor
    data_report: dict
    val_frames: np.ndarray | None = None  # (N, 2, 3): RMSE and MAE are scored in the images' pixels, not the input's
    device: str = "cpu"
    amp: torch.dtype | None = None  # autocast dtype, None for full float32
    scaler: torch.amp.GradScaler | None = None  # float16 only: its small range needs loss scaling
    offset: LabelOffset | None = None  # train.label_offset: the labellers' learned offset
    ema: torch.optim.swa_utils.AveragedModel | None = None  # train.ema: the weights' moving average
    teacher: Teacher | None = None  # train.teacher: distillation targets
    train_weights: torch.Tensor | None = None  # train.turned_weight: each face's chance of being drawn
    rank: int = 0
    world: int = 1


def _optimizer(model, t: TrainConfig, offset: LabelOffset | None = None):
    cls = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}.get(t.optimizer)
    if cls is None:
        raise ValueError(f"train.optimizer: {t.optimizer!r} is not one of adam, adamw")
    groups = [{"params": model.parameters()}]
    if offset is not None:  # no weight decay: it would pull the labellers' offset towards zero
        groups.append({"params": offset.parameters(), "weight_decay": 0.0})
    return cls(groups, lr=t.lr, weight_decay=t.weight_decay)


def _scheduler(opt, t: TrainConfig):
    if t.scheduler == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(t.epochs, 1))
    if t.scheduler == "step":
        return torch.optim.lr_scheduler.StepLR(opt, step_size=t.step_size, gamma=t.gamma)
    if t.scheduler == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=t.gamma, patience=max(t.patience // 2, 2))
    if t.scheduler == "none":
        return None
    raise ValueError(f"train.scheduler: {t.scheduler!r} is not one of cosine, step, plateau, none")


def _env_int(name: str, default: int) -> int:
    """A whole number >= 0 from the environment variable ``name`` (torchrun's WORLD_SIZE, RANK,
    LOCAL_RANK), or ValueError naming it."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if value < 0 or (name == "WORLD_SIZE" and value < 1):
        raise ValueError(f"environment variable {name}={raw!r} is not a whole number "
                         f"{'>= 1' if name == 'WORLD_SIZE' else '>= 0'} (torchrun sets it; unset it for one process)")
    return value


def check_machine(t: TrainConfig) -> str:
    """What a config can only be checked against on the machine that trains it: its device and mixed
    precision, and torchrun's environment. Checked before any data is read or folder made; returns the
    device. (A config names the device it was written for: loading it elsewhere is no error.)"""
    world = _env_int("WORLD_SIZE", 1)
    for name in ("RANK", "LOCAL_RANK"):
        value = _env_int(name, 0)
        if value >= world:
            raise ValueError(f"environment variable {name}={value} is not below WORLD_SIZE={world} (ranks count "
                             "0 .. WORLD_SIZE-1; torchrun sets them; unset them for one process)")
    try:
        device = resolve_device(t.device)
    except DeviceError as err:  # its advice names the --device flag of other commands
        why = str(err).split("; use --device")[0].replace(" was asked for", " was asked for (train.device)", 1)
        raise DeviceError(f"{why}; set train.device: auto (the GPU when there is one) or cpu, e.g. "
                          "--set train.device=cpu") from None
    amp_dtype(t.amp, device.split(":")[0])
    return device


def _device_and_ranks(t: TrainConfig) -> tuple[str, int, int]:
    """(device, rank, world size). Under torchrun each process takes the GPU of its LOCAL_RANK and
    joins the process group: NCCL between GPUs, gloo between CPU processes."""
    device = resolve_device(t.device)
    world = _env_int("WORLD_SIZE", 1)
    if world > 1:
        if device.startswith("cuda"):
            device = f"cuda:{_env_int('LOCAL_RANK', 0)}"
            torch.cuda.set_device(device)
        if not dist.is_initialized():
            _init_process_group("nccl" if device.startswith("cuda") else "gloo")
        return device, dist.get_rank(), world
    return device, 0, 1


def _init_process_group(backend: str) -> None:
    """Join the process group within FACEKEYPOINTS_DIST_TIMEOUT_MIN minutes (default 10), or fail
    naming MASTER_ADDR and MASTER_PORT. Meanwhile SIGINT and SIGTERM end the process at once (the wait
    is in C++, where Python's handlers never run; nothing has been written yet)."""
    import datetime

    raw = os.environ.get("FACEKEYPOINTS_DIST_TIMEOUT_MIN", "10").strip()
    try:
        minutes = float(raw)
    except ValueError:
        minutes = -1.0
    if not 0 < minutes < float("inf"):
        raise ValueError(f"environment variable FACEKEYPOINTS_DIST_TIMEOUT_MIN={raw!r} is not a number of minutes > 0")
    where = f"MASTER_ADDR={os.environ.get('MASTER_ADDR')!r} MASTER_PORT={os.environ.get('MASTER_PORT')!r}"
    old = {s: signal.signal(s, signal.SIG_DFL) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        dist.init_process_group(backend, timeout=datetime.timedelta(minutes=minutes))
        # left at exit, not after each fit (a second fit in the process reuses it): a gloo group still
        # alive when the interpreter tears down can abort the process ("terminate called without an
        # active exception", seen on about 1 run in 5 under load) after all its work was done
        atexit.register(_leave_process_group)
    except (RuntimeError, ValueError, OSError) as err:  # DistStoreError, a port in use, no MASTER_ADDR
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(f"joining the {_env_int('WORLD_SIZE', 1)} training processes at {where} failed within "
                           f"{minutes:g} min (FACEKEYPOINTS_DIST_TIMEOUT_MIN): {first}; start every rank (torchrun "
                           "does), or unset WORLD_SIZE for one process") from None
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def _leave_process_group() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def _setup(cfg: Config, progress: bool = True) -> _Run:
    """Seed, read and split the data, preprocess it once, build the model, optimizer and loss."""
    t = cfg.train
    device, rank, world = _device_and_ranks(t)
    dtype = amp_dtype(t.amp, device.split(":")[0])
    if t.num_threads:
        torch.set_num_threads(t.num_threads)
    torch.manual_seed(t.seed)
    pre = cfg.preprocess
    try:  # built before the data is read: a download that cannot happen fails in a moment, not minutes
        model = create_model(cfg.model.name, schema=load_schema(cfg.data.schema), in_channels=pre.channels,
                             input_size=pre.size, pretrained=cfg.model.pretrained, **cfg.model.options)
    except (URLError, ConnectionError, TimeoutError) as err:
        raise ValueError(f"model.pretrained: true downloads ImageNet weights, which failed ({err}); give a local "
                         "weights file instead (model.pretrained: /path/to/weights.pth) or false") from None
    card = card_for(model, preprocess=pre, framing=framing_for(cfg.data.frame, "data.frame"), trained_on=cfg.data)
    teacher = Teacher(t.teacher, card.schema, pre.size, pre.channels, device, t.teacher_max_disagreement,
                      student_preprocess=pre, student_framing=card.framing) if t.teacher else None
    # a teacher gives targets where there are no labels; validation needs labels of its own
    parts, frames, report = load_parts(cfg.data, pre.size, need_labels=("val",) if t.teacher else ("train", "val"))
    train, val = parts["train"], parts["val"]
    extra = None
    if cfg.data.unlabeled:  # after the split: its validation (and held-out) people's faces are left out
        unseen = [part for name, part in parts.items() if name != "train"]
        extra, report["unlabeled"] = unlabeled_faces(
            cfg.data.unlabeled, teacher=t.teacher, schema=cfg.data.schema, size=pre.size, frame=cfg.data.frame,
            unseen=unseen, by_person=report["by_person"], progress=progress and rank == 0, known=train)
    # digested before the teacher labels the extra faces: its labels may differ in the last bits on another
    # device, and the teacher itself is checked on resume by its file's sha256
    report["digest"] = {"train": faces_digest(train if extra is None else join_faces(train, extra)),
                        "val": faces_digest(val)}  # resume and --split val check them
    if extra is not None:
        extra = replace(extra, keypoints=teacher.pseudo_labels(torch.from_numpy(pre(np.asarray(extra.images)))))
        extra, _ = handle_missing(extra, cfg.data.missing)  # the run's rule for missing points holds for these too
        report["unlabeled"]["pseudo_labelled_points"] = int((~np.isnan(extra.keypoints).any(-1)).sum())
        report["unlabeled"]["used"] = len(extra)
        train = join_faces(train, extra)
        report["train"] = len(train)
    train_x, val_x = (torch.from_numpy(pre(np.asarray(d.images))) for d in (train, val))
    layout = torch.channels_last if _channels_last(t, device) else torch.contiguous_format
    model = model.to(device=device, memory_format=layout)
    offset = LabelOffset(card.schema).to(device) if t.label_offset else None
    ema = None
    if t.ema:  # torch's own EMA, buffers (batch-norm statistics) averaged too
        from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

        ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(t.ema), use_buffers=True)
    opt = _optimizer(model, t, offset)
    scaler = torch.amp.GradScaler(device.split(":")[0]) if dtype == torch.float16 else None
    return _Run(cfg=cfg, model=model, card=card, opt=opt, sched=_scheduler(opt, t), offset=offset, ema=ema,
                teacher=teacher if t.distill_weight > 0 else None,  # 0: it only labelled data.unlabeled
                loss_fn=make_loss(t.loss, **t.loss_params), train_x=train_x.to(device, memory_format=layout),
                train_kp=torch.from_numpy(train.keypoints.copy()).to(device), val_x=val_x,
                val_kp=torch.from_numpy(val.keypoints.copy()), data_report=report, val_frames=frames["val"],
                train_weights=turned_weights(train.keypoints, card.schema, t.turned_weight),
                device=device, amp=dtype,
                scaler=scaler, rank=rank, world=world)


def _channels_last(t: TrainConfig, device: str) -> bool:
    """train.channels_last, or by default on GPUs, whose convolution kernels prefer it (on the CPU it
    slowed keypoint_net's training steps, so it stays off there unless asked for)."""
    return t.channels_last if t.channels_last is not None else device.startswith("cuda")


# What may change when a run is resumed: how long it goes on and where it runs, not what it learns.
RESUMABLE_CHANGES = ("train.epochs", "train.time_limit_min", "train.log_every", "train.num_threads", "train.device",
                      "train.patience", "out_dir", "name", "reference.")


# What may differ between torchrun's processes: where each runs, and file paths (another machine may hold
# the data elsewhere), whose contents are compared instead: the faces' digests, the teacher's and the
# pretrained weights' sha256.
PER_RANK = ("train.num_threads", "train.device", "train.teacher", "model.pretrained", "out_dir", "name", "reference",
            *(f"data.{key}" for key in DATA_PATH_KEYS))


def _per_rank(key: str) -> bool:  # the setting itself or one inside it (train.teacher, not train.teacher_max_...)
    return any(key == name or key.startswith(name + ".") for name in PER_RANK)


def _check_ranks_agree(run: _Run) -> None:
    """Refuse, on every process and before the first step, a torchrun job whose processes would train
    different recipes or faces: their gradients would be averaged silently, or (other step counts) the
    job would hang at the first collective the others never reach."""
    if run.world == 1:
        return
    t = run.cfg.train
    mine = {k: v for k, v in flatten_settings(recipe_values(run.cfg.to_dict())).items() if not _per_rank(k)}
    weights = run.cfg.model.pretrained  # a file, compared by content; true or false, compared as it is
    files = {"train.teacher": t.teacher, "model.pretrained": weights}
    mine.update({"training faces": len(run.train_x), "validation faces": len(run.val_x),
                 "training faces' digest": run.data_report["digest"]["train"],
                 "validation faces' digest": run.data_report["digest"]["val"],
                 **{f"{key}'s sha256": teacher_fingerprint(path)["sha256"] for key, path in files.items()
                    if isinstance(path, str)},
                 **({} if isinstance(weights, str) else {"model.pretrained": weights})})
    everyone: list = [None] * run.world
    dist.all_gather_object(everyone, mine)
    first = everyone[0]
    for rank, theirs in enumerate(everyone[1:], start=1):
        differ = sorted(k for k in first.keys() | theirs.keys() if first.get(k) != theirs.get(k))
        # a digest differs with its count: the count says it
        differ = [k for k in differ if not (k.endswith("' digest") and k.removesuffix("' digest") in differ)]
        if differ:
            detail = "; ".join(f"{k} differs" if k.endswith("digest") or k.endswith("sha256")
                               else f"{k} {theirs.get(k)!r}, rank 0's {first.get(k)!r}" for k in differ[:4])
            raise ValueError(f"rank {rank} would train differently from rank 0 ({detail}): every training process "
                             "must train the same recipe on the same faces; give each rank the same settings and data")


def flatten_settings(values: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in values.items():
        out.update(flatten_settings(value, f"{prefix}{key}.") if isinstance(value, dict) else {f"{prefix}{key}": value})
    return out


def recipe_changes(saved: dict, cfg: Config, allowed: tuple[str, ...] = RESUMABLE_CHANGES) -> list[str]:
    """``"key: old -> new"`` for each setting in which ``cfg`` differs from ``saved`` (a run's config.json
    values), the keys starting with one of ``allowed`` aside; sorted by key."""
    from facekeypoints.train.config import ADDED_SETTINGS  # a setting absent at its default: show the default

    old, new = flatten_settings(recipe_values(saved)), flatten_settings(recipe_values(cfg.to_dict()))
    changed = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k) and not k.startswith(allowed))

    def shown(d, k):
        section, _, key = k.partition(".")
        return d[k] if k in d else ADDED_SETTINGS.get(section, {}).get(key)

    return [f"{k}: {shown(old, k)!r} -> {shown(new, k)!r}" for k in changed]


def _check_same_recipe(saved: dict, cfg: Config, path: Path) -> None:
    """Refuse to resume ``path`` with a config that would train differently from the one it started with."""
    changed = recipe_changes(saved, cfg)
    if changed:
        raise ValueError(f"{path}: cannot resume with a different recipe ({', '.join(changed[:5])}); resume with the "
                         f"run's own settings (its config.json), or train into a new --out folder")


def _resumable(cfg: Config, path: Path) -> tuple[Checkpoint, TrainState]:
    """The run's last.pt and where it stands, if ``cfg`` can resume it: checked before any data is read."""
    ckpt = load_checkpoint(path)
    missing = [key for key in ("optimizer", "train_state") if not isinstance(ckpt.training.get(key), dict)]
    if missing:
        raise ValueError(f"{path}: holds weights only (no optimizer or training state: {', '.join(missing)} missing), "
                         "so it cannot be resumed; a run's own last.pt can. Train into a new --out folder, or start "
                         "this one over with --overwrite")
    state = _saved_state(ckpt.training["train_state"], path)
    check_compatible(ckpt.card, cfg.model.name, cfg.data.schema, source=str(path))
    if ckpt.training.get("config"):
        _check_same_recipe(ckpt.training["config"], cfg, path)
    was = state.teacher
    if was and cfg.train.teacher and was != (now := teacher_fingerprint(cfg.train.teacher)):
        raise ValueError(f"{path}: train.teacher {cfg.train.teacher} is another file than this run started with "
                         f"({was['size']} bytes, sha256 {was['sha256'][:12]}; now {now['size']} bytes, sha256 "
                         f"{now['sha256'][:12]}): the run would mix two teachers; put its teacher back, or train into "
                         "a new --out folder")
    return ckpt, state


def _saved_state(saved: dict, path: Path) -> TrainState:
    """The TrainState saved in ``path``, checked as a config is (known fields, their types, counts
    >= 0, history rows): ValueError naming the file and the field when it is damaged or another
    program's. (loss_sum is checked apart: it is NaN in a run that diverged mid-epoch.)"""
    loss_sum = saved.get("loss_sum", 0.0)
    try:
        if isinstance(loss_sum, bool) or not isinstance(loss_sum, (int, float)):
            raise SettingsError(f"train_state.loss_sum: expected float, got {type(loss_sum).__name__} {loss_sum!r}")
        return replace(from_dict(TrainState, {k: v for k, v in saved.items() if k != "loss_sum"},
                                 where="train_state."), loss_sum=float(loss_sum))
    except SettingsError as err:
        raise ValueError(f"{path}: its training state is damaged or another program's ({err}); it cannot be "
                         "resumed: start the run over with --overwrite, or train into a new --out folder") from None


def _resume(run: _Run, ckpt: Checkpoint, state: TrainState, path: Path) -> TrainState:
    """Load weights, optimizer, scheduler and TrainState from ``ckpt`` (the run's last.pt at ``path``,
    checked by ``_resumable``, which read ``state`` from it)."""
    run.model.load_state_dict(ckpt.training.get("raw_weights") or ckpt.state_dict)
    if run.ema is not None:
        run.ema.module.load_state_dict(ckpt.state_dict)  # what was saved as the weights is the average
        run.ema.n_averaged.fill_(1)  # averaging goes on from it rather than restarting with a copy
    if run.offset is not None and ckpt.card.label_offset is not None:
        run.offset.load_pixels(ckpt.card.label_offset)
    parts = [(run.opt, "optimizer"), (run.sched, "scheduler"), (run.scaler, "scaler")]
    for part, key in parts:  # another shape (other parameters, another optimizer) fails here, named
        if part is not None and (ckpt.training.get(key) or key == "optimizer"):
            try:
                part.load_state_dict(ckpt.training[key])
            except (ValueError, KeyError, TypeError, RuntimeError, AttributeError) as err:
                reason = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
                raise ValueError(f"{path}: its {key} state does not fit this run ({reason}); start the run over "
                                 "with --overwrite, or train into a new --out folder") from None
    _check_scored_in(run, state, path, saved_by_round12="teacher" in ckpt.training["train_state"])
    faces = _faces(run)
    if state.faces and any(state.faces[k] != faces.get(k) for k in state.faces):  # e.g. rows appended or changed
        was, now = ({k: v for k, v in d.items() if k != "digest"} for d in (state.faces, faces))
        raise ValueError(f"{path}: the data changed since this run started ({was} faces, now {now}"
                         f"{', the same counts but other faces' if was == now else ''}); "
                         "train into a new --out folder")
    _stretch_schedule(run, path)
    if state.best is not None and not (path.parent / "best.pt").exists():
        print(f"warning: {path.parent / 'best.pt'} is gone; the best epoch so far ({state.best['epoch']}) cannot be "
              "recovered, so best.pt will hold the best epoch from here on", file=sys.stderr)
        state.best = None
    return state


def _check_scored_in(run: _Run, state: TrainState, path: Path, saved_by_round12: bool = False) -> None:
    """Refuse to resume a run whose earlier epochs were scored in the model input's pixels when its
    framing maps them to other image pixels: the old and new scores would be compared for best.pt and
    train.patience as if in one unit. Where the framing maps input pixels 1:1 (e.g. 96-px Kaggle crops
    at preprocess.size 96) the units are the same and the run goes on.

    ``scored_in`` came after the version that began scoring in image pixels, which did not record it;
    that version is known by the field it added to TrainState, ``teacher`` (``saved_by_round12``). Since
    last.pt is saved after every epoch, a last.pt without that field was written by a version that
    scored in input pixels, for every one of its epochs. (A run begun before it and resumed under it
    cannot be told from one begun under it: it is taken as the latter, as nearly all are.)"""
    if state.scored_in is None and saved_by_round12:
        state.scored_in = SCORED_IN
    if state.scored_in is None:
        scored = any("val_rmse" in row for row in state.history)
        frames = run.val_frames
        same = frames is None or np.allclose(frames, [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], atol=1e-6)
        if scored and not same:
            raise ValueError(f"{path}: its earlier epochs were scored in the model input's pixels (by an older "
                             "facekeypoints), this version scores in the labelled images' pixels, so best.pt and "
                             "train.patience would compare two units; start the run over with --overwrite, or train "
                             "into a new --out folder")
        state.scored_in = SCORED_IN
    elif state.scored_in != SCORED_IN:
        raise ValueError(f"{path}: its scores are in {state.scored_in}, this version scores in {SCORED_IN}; start "
                         "the run over with --overwrite, or train into a new --out folder")


def _faces(run: _Run) -> dict:
    """How many training and validation faces, and their fingerprints: a resume must find the same."""
    return {"train": len(run.train_x), "val": len(run.val_x), "digest": run.data_report["digest"]}


def _stretch_schedule(run: _Run, path: Path) -> None:
    """A cosine schedule resumed with another ``train.epochs`` (an allowed change) is stretched to it:
    its learning rate is set to where the new schedule stands, instead of falling to zero at the
    old end and rising again."""
    sched, epochs = run.sched, max(run.cfg.train.epochs, 1)
    if not isinstance(sched, torch.optim.lr_scheduler.CosineAnnealingLR) or sched.T_max == epochs:
        return
    sched.T_max = epochs
    for group, base in zip(run.opt.param_groups, sched.base_lrs):
        group["lr"] = sched.eta_min + (base - sched.eta_min) * (1 + math.cos(math.pi * sched.last_epoch / epochs)) / 2


def _unwrap(model: torch.nn.Module) -> torch.nn.Module:
    return getattr(model, "module", model)  # DistributedDataParallel holds the model as .module


def _card(run: _Run) -> ModelCard:
    """The run's card with the labellers' offset learned so far (train.label_offset)."""
    if run.offset is None:
        return run.card
    return replace(run.card, label_offset=run.offset.pixels().detach().cpu().tolist())


def _save(run: _Run, state: TrainState, path: Path, metrics: dict | None = None) -> None:
    if run.rank == 0:
        card = _card(run).with_metrics(metrics) if metrics else _card(run)
        # with train.ema the averaged weights are the model (evaluated, shipped); the raw ones resume training
        weights = run.ema.module if run.ema is not None else run.model
        extra = {"raw_weights": {k: v.detach().cpu() for k, v in _unwrap(run.model).state_dict().items()}} \
            if run.ema is not None else {}
        save_checkpoint(path, weights, card, **extra, config=run.cfg.to_dict(), optimizer=run.opt.state_dict(),
                        scheduler=run.sched.state_dict() if run.sched is not None else {}, train_state=asdict(state),
                        scaler=run.scaler.state_dict() if run.scaler is not None else {})


_STOP = {"signal": None}


def _on_signal(signum, frame):  # first Ctrl-C / SIGTERM: finish the step, save, exit
    if _STOP["signal"] is not None:
        raise KeyboardInterrupt
    _STOP["signal"] = signum


@contextlib.contextmanager
def _stop_on_signals():
    """While inside, SIGINT/SIGTERM ask the loop to stop after the current step (a second one aborts)."""
    old = {s: signal.signal(s, _on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    _STOP["signal"] = None
    try:
        yield _STOP
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def _step(run: _Run, x: torch.Tensor, target: torch.Tensor, matrices: torch.Tensor) -> torch.Tensor:
    """One optimisation step; the forward pass under autocast when train.amp asks for it.

    ``matrices`` (B, 3, 3) are the faces' augmentation matrices, used by the labellers' offset.
    """
    with torch.autocast(run.device.split(":")[0], dtype=run.amp or torch.float32, enabled=run.amp is not None):
        out = run.model(x)
    raw = out.float()  # the loss in float32 whatever the forward's precision
    labelled = raw if run.offset is None else raw + run.offset(matrices.to(run.device, torch.float32),
                                                                tuple(x.shape[-2:]))
    loss = run.loss_fn(labelled, target)
    if run.teacher is not None:  # its targets carry no labellers' offset: compared before it
        loss = loss + run.cfg.train.distill_weight * run.loss_fn(raw, run.teacher.targets(x))
    run.opt.zero_grad(set_to_none=True)
    if run.scaler is not None:
        run.scaler.scale(loss).backward()
    else:
        loss.backward()
    if run.offset is not None and run.world > 1:  # outside DDP's module: average its gradient by hand
        dist.all_reduce(run.offset.raw.grad)
        run.offset.raw.grad /= run.world
    if run.scaler is not None:
        run.scaler.step(run.opt)
        run.scaler.update()
    else:
        run.opt.step()
    if run.ema is not None:
        run.ema.update_parameters(_unwrap(run.model))
    return loss.detach()


def _train_steps(run: _Run, state: TrainState, stop: dict, started: float, bar: tqdm) -> bool:
    """Run the rest of the current epoch's steps; False if a signal stopped it midway.

    Batch order comes from a generator seeded by (seed, epoch) and every step re-seeds torch from
    (seed, epoch, step), so a run resumed at any step retraces the same steps.
    """
    t, model, schema = run.cfg.train, run.model, run.card.schema
    per_rank, steps = _steps_per_epoch(run)
    n = len(run.train_x)
    epoch_gen = torch.Generator().manual_seed(t.seed * 100_003 + state.epoch)
    order = torch.randperm(n, generator=epoch_gen) if run.train_weights is None else \
        torch.multinomial(run.train_weights, n, replacement=True, generator=epoch_gen)
    size = tuple(run.train_x.shape[-2:])
    model.train()
    for step in range(state.step, steps):
        step_seed = t.seed * 1_000_003 + state.epoch * 10_007 + step
        torch.manual_seed(step_seed)  # dropout etc.
        idx = order[step * per_rank * run.world: (step + 1) * per_rank * run.world][run.rank::run.world]
        gen = torch.Generator().manual_seed(step_seed * run.world + run.rank)
        x, kp, matrices = augment_batch(run.train_x[idx], run.train_kp[idx], schema, run.cfg.augment, gen,
                                        value_range=run.cfg.preprocess.value_range, with_matrices=True)
        loss = _step(run, x, encode(kp, size), matrices)
        state.loss_sum, state.loss_n, state.step = state.loss_sum + float(loss), state.loss_n + 1, step + 1
        state.minutes = (time.perf_counter() - started) / 60
        bar.update(len(idx) * run.world)
        if stop["signal"] is not None:
            return False
    return True


def turned_weights(keypoints: np.ndarray, schema, turned_weight: float) -> torch.Tensor | None:
    """(N,) sampling weights for ``train.turned_weight`` (None when it is 0): 1 + turned_weight *
    min(|yaw|, 1) / 0.3, so a face turned about 30 degrees is drawn 1 + turned_weight times as often
    as a frontal one. The training data holds few turned faces, and a model that rarely sees them
    predicts a frontal shape for them; faces whose labels lack the eyes or the nose tip count as frontal
    (a warning says how many; when every face lacks them the setting would do nothing, and is refused)."""
    if not turned_weight:
        return None
    from facekeypoints.evaluate.photos import yaw_proxy  # the yaw photo evaluation bins faces by

    try:
        kaggle15 = schema.convert(np.asarray(keypoints, np.float64), "kaggle15")
    except ValueError as err:
        raise ValueError(f"train.turned_weight needs the eye centres and nose tip, which {schema.name} "
                         f"points cannot give ({err})") from None
    yaw = np.abs(yaw_proxy(kaggle15))
    weighted, n = int(np.isfinite(yaw).sum()), len(yaw)
    # given and ignored for some faces, or all: said, as _check_together says of other settings
    lacking = f"of the {n} training faces {{}} labelled eye centres and a nose tip"
    if not weighted:
        raise ValueError(f"train.turned_weight {turned_weight:g}: none {lacking.format('has')}, so every face would "
                         "count as frontal; label them, or leave train.turned_weight at 0")
    if weighted < n and _env_int("RANK", 0) == 0:
        warnings.warn(f"train.turned_weight {turned_weight:g}: only {weighted} {lacking.format('have')}; the other "
                      f"{n - weighted} count as frontal (weight 1)", stacklevel=2)
    yaw = np.nan_to_num(yaw, nan=0.0, posinf=0.0)
    return torch.from_numpy(1.0 + turned_weight * np.minimum(yaw, 1.0) / 0.3)


def _steps_per_epoch(run: _Run) -> tuple[int, int]:
    """(faces per process and step, steps per epoch)."""
    per_rank = max(run.cfg.train.batch_size // run.world, 1)
    n = len(run.train_x)
    # with several processes every rank must take the same number of steps: drop the ragged tail
    return per_rank, (math.ceil(n / per_rank) if run.world == 1 else n // (per_rank * run.world))


def _validate(run: _Run) -> dict:
    """Validation loss, RMSE and MAE (pixels of the labelled images, whatever preprocess.size) through the
    one prediction path (rank 0 only)."""
    size = tuple(run.val_x.shape[-2:])
    runner = TorchRunner(run.ema.module if run.ema is not None else run.model, _card(run), device=run.device)
    # scored against the data's own labels, so with its labellers' offset (when learned)
    pred = predict_inputs(runner, run.val_x.numpy(), mirror=run.cfg.train.mirror_tta, label_offset=True)
    pred_t = torch.from_numpy(pred.astype(np.float32))
    loss = float(run.loss_fn(encode(pred_t, size), encode(run.val_kp, size)))
    truth = run.val_kp.numpy()
    if run.val_frames is not None:  # in the labelled images' pixels, as `evaluate` scores them
        pred, truth = (to_scoring_pixels(run.val_frames, p) for p in (pred, truth))
    return {"val_loss": loss, "val_rmse": rmse(pred, truth), "val_mae": mae(pred, truth)}


def _from_rank0(run: _Run, value):
    """``value`` as rank 0 has it, on every process (with one process, ``value``): decisions that
    hang on validation, which only rank 0 runs, or on its clock, must be the same everywhere."""
    if run.world == 1:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def _end_epoch(run: _Run, state: TrainState) -> tuple[dict, str | None]:
    """Validate when due, record the epoch, step the scheduler and save best.pt / last.pt; returns the
    epoch's row and why the run stops after it (None: it goes on).

    Validation is due every ``log_every`` epochs and on the run's last epoch, whatever ends it (its
    epoch count, the time limit): a run never ends on weights that were not validated."""
    t, epoch = run.cfg.train, state.epoch
    row = {"epoch": epoch + 1, "minutes": round(state.minutes, 3), "lr": run.opt.param_groups[0]["lr"],
           "train_loss": state.loss_sum / max(state.loss_n, 1)}
    if run.teacher is not None:  # this process's share; each rank sees its own faces
        row["teacher_kept"] = round(run.teacher.kept_share(), 4)
    last = epoch + 1 >= t.epochs or bool(t.time_limit_min and state.minutes >= t.time_limit_min)
    if run.rank == 0 and ((epoch + 1) % t.log_every == 0 or last):
        # val_faces and val_digest: `evaluate --split val` checks that the split is still this one;
        # val_mirror_tta: the basis of val_rmse (single pass or with mirror TTA), said on the card
        row.update(_validate(run), val_faces=len(run.val_x), val_digest=run.data_report["digest"]["val"],
                   val_mirror_tta=t.mirror_tta)
    state.epoch, state.step, state.loss_sum, state.loss_n = epoch + 1, 0, 0.0, 0
    state.history.append(row)
    if math.isfinite(row.get("val_rmse", math.nan)) and (state.best is None or row["val_rmse"] < state.best["val_rmse"]):
        state.best = dict(row)
    val_loss, reason = _from_rank0(run, (row.get("val_loss"), _stop_reason(t, state)))
    with warnings.catch_warnings():
        # an epoch resumed after its last step (interrupted there) takes no optimizer step in this process,
        # and torch warns of a skipped schedule value; the schedule, restored from last.pt, is right
        warnings.filterwarnings("ignore", message=r"Detected call of `lr_scheduler\.step\(\)` before")
        if t.scheduler == "plateau":
            if val_loss is not None:  # a plateau of the validation loss: epochs without validation say nothing
                run.sched.step(val_loss)
        elif run.sched is not None:
            run.sched.step()
    out = Path(run.cfg.out_dir)
    if state.best is not None and state.best["epoch"] == row["epoch"]:
        _save(run, state, out / "best.pt", metrics=row)
    _save(run, state, out / "last.pt", metrics=row)
    return row, reason


def _stop_reason(t: TrainConfig, state: TrainState) -> str | None:
    if state.history and not math.isfinite(state.history[-1]["train_loss"]):
        return "diverged"  # NaN or inf weights predict nothing: training on would only cost time
    if t.patience and state.history and "val_rmse" in state.history[-1]:  # judged on validated epochs only
        # counted from the best epoch, or (none finite yet) from the first validated one: never from
        # epoch 0, before the run was ever validated
        since = state.best["epoch"] if state.best else next(r["epoch"] for r in state.history if "val_rmse" in r)
        if state.epoch - since >= t.patience:
            return "early_stopping"
    if t.time_limit_min and state.minutes >= t.time_limit_min:
        return "time_limit"
    return None if state.epoch < t.epochs else "epochs"


_RUN_FILES = ("last.pt", "best.pt", "metrics.csv", "config.json", "tensorboard")  # what a run writes in its folder


def _clear_run(out: Path) -> None:
    """--overwrite: the old run's files go, so none of them (its best.pt, its curves) passes for the new run's."""
    for name in _RUN_FILES:
        path = out / name
        shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)


def fit(cfg: Config, *, resume: bool = False, progress: bool = True, overwrite: bool = False) -> dict:
    """Train ``cfg`` into ``cfg.out_dir`` (best.pt, last.pt, metrics.csv, config.json, tensorboard/).

    A folder that holds a run already is refused unless ``resume`` (continue it) or ``overwrite``
    (start it over). Returns a summary dict: best epoch, best val RMSE/MAE, minutes, epochs run,
    stop reason.
    """
    out = Path(cfg.out_dir)  # "~" was expanded when the config was loaded
    check_machine(cfg.train)  # the device, its precision and torchrun's variables: before anything else
    # before minutes of reading data: a file there, or no way to write; the folder itself is made only
    # once the data has been read, so a refused run leaves none behind
    check_run_folder(out)
    check_target(out, folder=True, make=False)
    if cfg.train.teacher:
        check_teacher(cfg.train.teacher, out)
    # one training per folder: rank 0 (or the only process) claims it for the run's duration
    lock, made = claim_folder(out) if _env_int("RANK", 0) == 0 else (None, [])
    try:
        held = [name for name in _RUN_FILES if (out / name).exists()]
        if held and not {"last.pt", "best.pt"} & set(held) and not overwrite:  # stopped before its first checkpoint
            raise ValueError(f"{out}: holds no checkpoint yet (the run stopped before its first epoch ended; only "
                             f"{', '.join(held)}); start it again with --overwrite (nothing is lost but those), "
                             "or train into a new --out folder")
        if not resume and not overwrite and held:
            raise ValueError(f"{out}: holds a training run ({', '.join(held)}); continue it with --resume, train into "
                             "a new --out folder, or start it over with --overwrite")
        return _fit(cfg, out, held, resume=resume, progress=progress, overwrite=overwrite)
    finally:
        release_folder(lock, out, made)


def check_run_folder(out: Path) -> None:
    """Refuse an out_dir that is no folder of its own: the filesystem root, the home folder or the
    working folder itself, where best.pt, last.pt, metrics.csv, tensorboard/ and the lock would
    lie among unrelated files (and --overwrite would clear them there); or a train-detector run's folder,
    whose last.pt --resume cannot read and --overwrite would delete."""
    where = Path(os.path.expanduser(out)).resolve()
    what = "the filesystem root" if not where.name else None
    with contextlib.suppress(OSError, RuntimeError):  # no home (RuntimeError) or a working folder that is gone
        what = what or ("your home folder" if where == Path.home().resolve() else None)
    with contextlib.suppress(OSError):
        what = what or ("the working folder" if where == Path.cwd().resolve() else None)
    if what:
        raise ValueError(f"out_dir {out}: is {what} ({where}); a run writes best.pt, last.pt, metrics.csv, "
                         "tensorboard/ and a lock into its folder: give it a folder of its own (e.g. --out runs/NAME)")
    if holds_detector_run(out):  # its last.pt is no keypoint run to --resume, nor one to --overwrite
        onnx = ", face_detector.onnx" if (out / "face_detector.onnx").exists() else ""
        raise ValueError(f"{out}: holds a face-detector run (train-detector's last.pt{onnx}), which this command "
                         "can neither continue nor start over; train into another --out folder")


def _fit(cfg: Config, out: Path, held: list[str], *, resume: bool, progress: bool, overwrite: bool) -> dict:
    # weights only, another recipe, a damaged state: said now
    ckpt, saved = _resumable(cfg, out / "last.pt") if resume else (None, None)
    done = saved.epoch if saved is not None else 0
    if done > cfg.train.epochs:  # before config.json would be rewritten with an epoch count its metrics.csv exceeds
        raise ValueError(f"{out}: already past train.epochs={cfg.train.epochs} ({done} epochs done); nothing to "
                         f"train: resume with train.epochs above {done} to train on (best.pt holds the best epoch so "
                         "far), or train into a new --out folder")
    spent = saved.minutes if saved is not None else 0.0
    if done < cfg.train.epochs and cfg.train.time_limit_min and spent >= cfg.train.time_limit_min:
        # the limit is only checked after an epoch: each resume would train one more epoch past it
        raise ValueError(f"{out}: already past train.time_limit_min={cfg.train.time_limit_min:g} ({spent:.3g} min "
                         f"trained); nothing to train: resume with train.time_limit_min above {spent:.3g} (or 0, no "
                         "limit) to train on, or train into a new --out folder")
    run = _setup(cfg, progress)
    _check_ranks_agree(run)  # before --overwrite clears anything: a refused job leaves the old run whole
    if overwrite and not resume and held and run.rank == 0:  # one process clears, once the new run's data is read
        _clear_run(out)
    state = _resume(run, ckpt, saved, out / "last.pt") if ckpt is not None else TrainState(scored_in=SCORED_IN)
    state.faces = state.faces or _faces(run)
    if cfg.train.teacher:
        state.teacher = state.teacher or teacher_fingerprint(cfg.train.teacher)
    if run.world > 1:
        run.model = torch.nn.parallel.DistributedDataParallel(run.model)
    if run.rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        with atomic_path(out / "config.json") as tmp:  # a kill mid-write keeps the previous one whole
            tmp.write_text(json.dumps({"config": cfg.to_dict(), "data": run.data_report}, indent=2, default=str))
    logger = _Logger(out, run.rank == 0, teacher=run.teacher is not None)
    if state.history:  # a resumed run's log rebuilt from its checkpoint: a removed or damaged one comes back whole
        logger.write_csv(state.history)
    started = time.perf_counter() - state.minutes * 60
    reason = None if state.epoch < cfg.train.epochs else "epochs"
    with _stop_on_signals() as stop, contextlib.closing(logger), _progress(run, state, progress) as bar:
        while reason is None:
            if not _train_steps(run, state, stop, started, bar):
                _save(run, state, out / "last.pt")
                return {"stop_reason": "interrupted", "epoch": state.epoch, "step": state.step, "out_dir": str(out),
                        "rank": run.rank}
            row, reason = _end_epoch(run, state)
            logger.write(row, state.history)
            bar.set_postfix(epoch=row["epoch"], loss=f"{row['train_loss']:.4f}",
                            rmse=f"{row.get('val_rmse', float('nan')):.3f}",
                            **({"teacher_kept": f"{row['teacher_kept']:.0%}"} if "teacher_kept" in row else {}))
    best = state.best or {}
    return {"stop_reason": reason, "epochs": state.epoch, "minutes": round(state.minutes, 2),
            "best_epoch": best.get("epoch"), "best_val_rmse": best.get("val_rmse"), "best_val_mae": best.get("val_mae"),
            "device": run.device, "amp": cfg.train.amp, "processes": run.world, "rank": run.rank,
            "out_dir": str(out), "data": run.data_report,
            **({"teacher_kept": state.history[-1].get("teacher_kept")} if run.teacher is not None and state.history
               else {})}


def _progress(run: _Run, state: TrainState, enabled: bool) -> tqdm:
    """One bar over every face of the run (rank 0): faces/s and time left, updated every step."""
    per_rank, steps = _steps_per_epoch(run)
    faces_per_epoch = min(len(run.train_x), steps * per_rank * run.world)
    done = state.epoch * faces_per_epoch + min(state.step * per_rank * run.world, faces_per_epoch)
    return tqdm(total=run.cfg.train.epochs * faces_per_epoch, initial=done, desc="training", unit=" faces",
                unit_scale=True, smoothing=0.05, file=sys.stderr, disable=not enabled or run.rank != 0)


class _Logger:
    """metrics.csv + TensorBoard in the run directory (rank 0 only)."""

    FIELDS = ["epoch", "minutes", "lr", "train_loss", "val_loss", "val_rmse", "val_mae"]

    def __init__(self, out: Path, enabled: bool, teacher: bool = False):
        self.enabled, self.path = enabled, out / "metrics.csv"
        # the share of points the teacher kept as targets, in runs that have one
        self.fields = self.FIELDS + (["teacher_kept"] if teacher else [])
        self.tb = TensorBoardLog(out / "tensorboard") if enabled else None  # a side log: its failures only warn

    def write(self, row: dict, history: list[dict]) -> None:
        if not self.enabled:
            return
        self.write_csv(history)
        self.tb.scalars({key: row[key] for key in self.fields[2:] if row.get(key) is not None}, row["epoch"])

    def write_csv(self, history: list[dict]) -> None:
        """metrics.csv rewritten whole (resume keeps one clean file), and atomically: a kill mid-write
        leaves the previous version, never a truncated one that disagrees with last.pt."""
        if not self.enabled:
            return
        with atomic_path(self.path) as tmp, open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=self.fields, extrasaction="ignore")
            w.writeheader()
            w.writerows(history)

    def close(self):
        if self.tb:
            self.tb.close()
