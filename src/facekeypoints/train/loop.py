"""The training loop: seeded, resumable, logged, optionally data-parallel (torchrun + gloo).

Why a plain loop rather than Lightning: on a 2-core CPU the whole dataset fits in one tensor and a
step is a few milliseconds, so per-step framework overhead and DataLoader workers cost more than
they give. Everything here is ordinary PyTorch: torch.distributed for DDP, tqdm for progress,
torch.utils.tensorboard for curves.

Determinism: batch order comes from a generator seeded by (seed, epoch) and every step re-seeds
torch's RNG from (seed, epoch, step), so a run resumed from any step retraces the same steps.
"""
from __future__ import annotations

import csv
import json
import math
import os
import signal
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from tqdm import tqdm

from facekeypoints.data.augment import Augment, augment_batch
from facekeypoints.data.preprocess import Preprocess
from facekeypoints.evaluate.metrics import mae, rmse
from facekeypoints.evaluate.runner import predict_tensor
from facekeypoints.models import create_model
from facekeypoints.models.checkpoint import check_compatible, load_checkpoint, save_checkpoint
from facekeypoints.models.codecs import decode, encode
from facekeypoints.schema import load_schema
from facekeypoints.train.config import Config
from facekeypoints.train.data import TensorSet, load_splits, to_tensors
from facekeypoints.train.losses import make_loss

__all__ = ["fit"]

_STOP = {"signal": None}


def _on_signal(signum, frame):  # first Ctrl-C / SIGTERM: finish the step, save, exit
    if _STOP["signal"] is not None:
        raise KeyboardInterrupt
    _STOP["signal"] = signum


def _optimizer(model, t):
    cls = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}.get(t.optimizer)
    if cls is None:
        raise ValueError(f"train.optimizer: {t.optimizer!r} is not one of adam, adamw")
    return cls(model.parameters(), lr=t.lr, weight_decay=t.weight_decay)


def _scheduler(opt, t):
    if t.scheduler == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(t.epochs, 1))
    if t.scheduler == "step":
        return torch.optim.lr_scheduler.StepLR(opt, step_size=t.step_size, gamma=t.gamma)
    if t.scheduler == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=t.gamma, patience=max(t.patience // 2, 2))
    if t.scheduler == "none":
        return None
    raise ValueError(f"train.scheduler: {t.scheduler!r} is not one of cosine, step, plateau, none")


def _rank_world() -> tuple[int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("gloo")
    return (dist.get_rank(), world) if world > 1 else (0, 1)


def _validate(model, val: TensorSet, loss_fn, schema, mirror_tta: bool) -> dict:
    size = val.images.shape[-2:]
    pred = predict_tensor(model, val.images, mirror_schema=schema if mirror_tta else None)
    loss = float(loss_fn(encode(pred, size), encode(val.keypoints, size)))
    p, g = pred.numpy(), val.keypoints.numpy()
    return {"val_loss": loss, "val_rmse": rmse(p, g), "val_mae": mae(p, g)}


class _Logger:
    """metrics.csv + TensorBoard in the run directory (rank 0 only)."""

    FIELDS = ["epoch", "minutes", "lr", "train_loss", "val_loss", "val_rmse", "val_mae"]

    def __init__(self, out: Path, enabled: bool):
        self.enabled, self.path = enabled, out / "metrics.csv"
        self.tb = None
        if enabled:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(out / "tensorboard"))

    def write(self, row: dict, history: list[dict]) -> None:
        if not self.enabled:
            return
        with open(self.path, "w", newline="") as f:  # rewritten whole: resume keeps one clean file
            w = csv.DictWriter(f, fieldnames=self.FIELDS, extrasaction="ignore")
            w.writeheader()
            w.writerows(history)
        for key in self.FIELDS[2:]:
            if row.get(key) is not None:
                self.tb.add_scalar(key, row[key], row["epoch"])
        self.tb.flush()

    def close(self):
        if self.tb:
            self.tb.close()


def fit(cfg: Config, *, resume: bool = False, progress: bool = True) -> dict:
    """Train ``cfg`` into ``cfg.out_dir`` (best.pt, last.pt, metrics.csv, config.json, tensorboard/).

    Returns a summary dict: best epoch, best val RMSE/MAE, minutes, epochs run, stop reason.
    """
    t = cfg.train
    rank, world = _rank_world()
    if t.num_threads:
        torch.set_num_threads(t.num_threads)
    torch.manual_seed(t.seed)
    out = Path(cfg.out_dir)
    schema = load_schema(cfg.data.schema)
    pre, aug = Preprocess(**cfg.preprocess), Augment(**cfg.augment)
    train_kd, val_kd, data_report = load_splits(cfg)
    train, val = to_tensors(train_kd, pre), to_tensors(val_kd, pre)
    model = create_model(cfg.model.name, schema=schema, in_channels=train.images.shape[1],
                         input_size=train.images.shape[-1], pretrained=cfg.model.pretrained, **cfg.model.options)
    opt, loss_fn = _optimizer(model, t), make_loss(t.loss, **t.loss_params)
    sched = _scheduler(opt, t)
    state = {"epoch": 0, "step": 0, "history": [], "best": None, "minutes": 0.0, "loss_sum": 0.0, "loss_n": 0}
    if resume:
        ckpt = load_checkpoint(out / "last.pt")
        check_compatible(ckpt, cfg.model.name, schema, source=str(out / "last.pt"))
        model.load_state_dict(ckpt["state_dict"])
        opt.load_state_dict(ckpt["optimizer"])
        if sched is not None and ckpt.get("scheduler"):
            sched.load_state_dict(ckpt["scheduler"])
        state.update(ckpt["train_state"])
    if world > 1:
        model = torch.nn.parallel.DistributedDataParallel(model)
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.json").write_text(json.dumps({"config": cfg.to_dict(), "data": data_report}, indent=2, default=str))
    logger = _Logger(out, rank == 0)
    meta = {"preprocess": pre.to_dict(), "config": cfg.to_dict()}

    def save(name: str, **extra):
        if rank == 0:
            save_checkpoint(out / name, model, **meta, optimizer=opt.state_dict(),
                            scheduler=sched.state_dict() if sched is not None else {}, train_state=dict(state), **extra)

    old_handlers = {s: signal.signal(s, _on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    _STOP["signal"] = None
    size = train.images.shape[-2:]
    per_rank = max(t.batch_size // world, 1)
    # with several processes every rank must take the same number of steps: drop the ragged tail
    steps_per_epoch = math.ceil(len(train) / per_rank) if world == 1 else len(train) // (per_rank * world)
    stop_reason, started = "epochs", time.perf_counter() - state["minutes"] * 60
    try:
        bar = tqdm(total=t.epochs, initial=state["epoch"], desc="epochs", disable=not progress or rank != 0, file=sys.stderr)
        while state["epoch"] < t.epochs:
            epoch = state["epoch"]
            order = torch.randperm(len(train), generator=torch.Generator().manual_seed(t.seed * 100_003 + epoch))
            model.train()
            for step in range(state["step"], steps_per_epoch):
                step_seed = t.seed * 1_000_003 + epoch * 10_007 + step
                torch.manual_seed(step_seed)  # dropout etc.
                idx = order[step * per_rank * world : (step + 1) * per_rank * world][rank::world]
                gen = torch.Generator().manual_seed(step_seed * world + rank)
                x, kp = augment_batch(train.images[idx], train.keypoints[idx], schema, aug, gen, value_range=pre.value_range)
                loss = loss_fn(model(x), encode(kp, size))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                state["loss_sum"] += float(loss.detach())
                state["loss_n"] += 1
                state["step"] = step + 1
                state["minutes"] = (time.perf_counter() - started) / 60
                if _STOP["signal"] is not None:
                    save("last.pt")
                    stop_reason = "interrupted"
                    return {"stop_reason": stop_reason, "epoch": epoch, "step": step + 1, "out_dir": str(out)}
            row = {"epoch": epoch + 1, "minutes": round(state["minutes"], 3), "lr": opt.param_groups[0]["lr"],
                   "train_loss": state["loss_sum"] / max(state["loss_n"], 1)}
            if rank == 0 and ((epoch + 1) % t.log_every == 0 or epoch + 1 == t.epochs):
                row.update(_validate(getattr(model, "module", model), val, loss_fn, schema, t.mirror_tta))
            if t.scheduler == "plateau":
                sched.step(row.get("val_loss", row["train_loss"]))
            elif sched is not None:
                sched.step()
            state.update(epoch=epoch + 1, step=0, loss_sum=0.0, loss_n=0)
            state["history"].append(row)
            improved = "val_rmse" in row and (state["best"] is None or row["val_rmse"] < state["best"]["val_rmse"])
            if improved:
                state["best"] = dict(row)
                save("best.pt", metrics=row)
            save("last.pt", metrics=row)
            logger.write(row, state["history"])
            bar.update(1)
            bar.set_postfix(loss=f"{row['train_loss']:.4f}", rmse=f"{row.get('val_rmse', float('nan')):.3f}")
            best_epoch = state["best"]["epoch"] if state["best"] else 0
            if t.patience and state["epoch"] - best_epoch >= t.patience:
                stop_reason = "early_stopping"
                break
            if t.time_limit_min and state["minutes"] >= t.time_limit_min:
                stop_reason = "time_limit"
                break
        bar.close()
    finally:
        for s, h in old_handlers.items():
            signal.signal(s, h)
        logger.close()
    best = state["best"] or {}
    return {"stop_reason": stop_reason, "epochs": state["epoch"], "minutes": round(state["minutes"], 2),
            "best_epoch": best.get("epoch"), "best_val_rmse": best.get("val_rmse"), "best_val_mae": best.get("val_mae"),
            "out_dir": str(out), "data": data_report}
