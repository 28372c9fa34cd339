"""Compare training runs: a table like the seeds' tables, and a report of plots.

Each run directory is what ``facekeypoints train`` writes: metrics.csv, config.json, best.pt.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from facekeypoints.evaluate.metrics import per_keypoint_rmse
from facekeypoints.evaluate.runner import predict_data, run_split
from facekeypoints.models.predict import TorchRunner

__all__ = ["read_run", "compare_runs", "write_report"]


def read_run(run_dir: str | Path) -> dict:
    """A run's config, per-epoch history and best epoch (lowest validation RMSE)."""
    run = Path(run_dir)
    metrics = run / "metrics.csv"
    if not metrics.is_file():
        raise FileNotFoundError(f"{run}: no metrics.csv; is this a facekeypoints run directory?")
    with open(metrics, newline="") as f:
        history = [{k: (float(v) if v not in ("", None) else None) for k, v in row.items()} for row in csv.DictReader(f)]
    if not history:
        raise ValueError(f"{metrics}: no epochs recorded yet")
    config = json.loads((run / "config.json").read_text()) if (run / "config.json").is_file() else {}
    scored = [h for h in history if h.get("val_rmse") is not None]
    best = min(scored, key=lambda h: h["val_rmse"]) if scored else history[-1]
    # named by folder: two runs of one config (seeds, devices) must not share a name
    return {"name": run.name, "dir": str(run), "config": config, "history": history, "best": best}


def compare_runs(run_dirs: list[str], report_dir: str | None = None) -> str:
    """Text table (model, train loss, validation loss, RMSE, MAE, minutes) at each run's best epoch;
    with ``report_dir`` also writes the plots of :func:`write_report` and table.md / table.json there."""
    runs = [read_run(r) for r in run_dirs]
    names = [r["name"] for r in runs]
    for r in runs:  # same folder name in two places: say which
        if names.count(r["name"]) > 1:
            r["name"] = f"{Path(r['dir']).parent.name}/{r['name']}"
    header = f"{'run':28s} {'model':16s} {'epoch':>5s} {'train loss':>10s} {'val loss':>9s} {'RMSE':>7s} {'MAE':>7s} {'minutes':>8s}"
    lines = [header, "-" * len(header)]
    rows = []
    for r in runs:
        b = r["best"]
        model = r["config"].get("config", {}).get("model", {}).get("name", "?")
        row = {"run": r["name"], "model": model, "epoch": int(b["epoch"]), "train_loss": b.get("train_loss"),
               "val_loss": b.get("val_loss"), "rmse": b.get("val_rmse"), "mae": b.get("val_mae"),
               "minutes": r["history"][-1].get("minutes")}
        rows.append(row)
        fmt = lambda v, w, p: f"{v:{w}.{p}f}" if v is not None else f"{'-':>{w}s}"  # noqa: E731
        lines.append(f"{row['run'][:28]:28s} {model[:16]:16s} {row['epoch']:5d} {fmt(row['train_loss'], 10, 4)} "
                     f"{fmt(row['val_loss'], 9, 4)} {fmt(row['rmse'], 7, 3)} {fmt(row['mae'], 7, 3)} {fmt(row['minutes'], 8, 1)}")
    table = "\n".join(lines)
    if report_dir:
        out = Path(report_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "table.json").write_text(json.dumps(rows, indent=2))
        (out / "table.txt").write_text(table + "\n")
        figures = write_report(runs, out)
        (out / "index.html").write_text(_index_html(rows, runs, figures, out))
        table += f"\nreport written to {out}/ (open {out / 'index.html'})"
    return table


def write_report(runs: list[dict], out: Path) -> list[Path]:
    """Loss/RMSE curves for all runs, then per run: per-keypoint RMSE bars, best and worst
    validation faces with predictions, and the first convolution layer's filters."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for r in runs:
        h = r["history"]
        ep = [x["epoch"] for x in h]
        axes[0].plot(ep, [x["train_loss"] for x in h], label=f"{r['name']} train")
        axes[0].plot(ep, [x.get("val_loss") for x in h], "--", label=f"{r['name']} val")
        axes[1].plot([x["minutes"] for x in h], [x.get("val_rmse") for x in h], label=r["name"])
    axes[0].set(xlabel="epoch", ylabel="loss", yscale="log", title="loss")
    axes[1].set(xlabel="training minutes", ylabel="validation RMSE (px)", title="RMSE against time")
    for ax in axes:
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    written.append(out / "curves.png")
    fig.savefig(written[-1], dpi=110)
    plt.close(fig)
    for r in runs:
        best = Path(r["dir"]) / "best.pt"
        if best.is_file():
            written += _run_figures(r, best, out, plt)
    return written


def _index_html(rows: list[dict], runs: list[dict], figures: list[Path], out: Path) -> str:
    """One self-contained page (no external files but the report's own PNGs): the table, the
    curves, and per run its per-keypoint errors, best and worst faces, and first-layer filters."""
    import html

    def cell(v, digits):
        return "-" if v is None else (f"{v:.{digits}f}" if isinstance(v, float) else html.escape(str(v)))

    head = "".join(f"<th>{t}</th>" for t in ("run", "model", "best epoch", "train loss", "val loss", "RMSE px",
                                             "MAE px", "minutes"))
    body = "".join(
        f"<tr><td><a href='#{html.escape(r['run'])}'>{html.escape(r['run'])}</a></td><td>{cell(r['model'], 0)}</td>"
        f"<td>{r['epoch']}</td><td>{cell(r['train_loss'], 4)}</td><td>{cell(r['val_loss'], 4)}</td>"
        f"<td>{cell(r['rmse'], 3)}</td><td>{cell(r['mae'], 3)}</td><td>{cell(r['minutes'], 1)}</td></tr>" for r in rows)
    names = {f.name for f in figures}
    sections = []
    for run in runs:
        stem = run["name"].replace("/", "_")
        images = [(f"{stem}_{kind}.png", title) for kind, title in
                  (("per_keypoint", "per-keypoint validation RMSE"), ("best_worst", "best and worst validation faces"),
                   ("filters", "first-layer filters"))]
        shown = "".join(f"<figure><img src='{n}' alt='{t}'><figcaption>{t}</figcaption></figure>"
                        for n, t in images if n in names)
        sections.append(f"<section id='{html.escape(run['name'])}'><h2>{html.escape(run['name'])}</h2>"
                        f"<p>{html.escape(run['dir'])}</p>{shown or '<p>no best.pt: no per-run figures</p>'}</section>")
    style = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto}table{border-collapse:collapse}"
             "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}td:first-child{text-align:left}"
             "img{max-width:100%}figure{margin:1em 0}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>facekeypoints runs</title>"
            f"<style>{style}</style></head><body><h1>Training runs</h1><table><tr>{head}</tr>{body}</table>"
            f"<h2>Curves</h2><img src='curves.png' alt='loss and RMSE curves'>{''.join(sections)}</body></html>\n")


def _run_figures(run: dict, ckpt_path: Path, out: Path, plt) -> list[Path]:
    runner = TorchRunner.load(ckpt_path)
    model = runner.model
    val = run_split(runner.card, "val")
    pred = predict_data(runner, val)
    name = run["name"].replace("/", "_")
    written = []
    pk = per_keypoint_rmse(pred, val.keypoints)
    fig, ax = plt.subplots(figsize=(8, 3.5))
    ax.bar(range(len(pk)), np.nan_to_num(pk))
    ax.set_xticks(range(len(pk)), val.schema.keypoints, rotation=70, fontsize=6)
    ax.set(ylabel="RMSE (px)", title=f"{run['name']}: per-keypoint validation RMSE")
    fig.tight_layout()
    written.append(out / f"{name}_per_keypoint.png")
    fig.savefig(written[-1], dpi=110)
    plt.close(fig)
    err = np.sqrt(np.nanmean((pred - val.keypoints) ** 2, axis=(1, 2)))
    order = np.argsort(np.nan_to_num(err, nan=-1))
    fig, axes = plt.subplots(2, 6, figsize=(12, 4.5))
    for ax, i, label in zip(axes.flat, list(order[::-1][:6]) + list(order[:6][::-1]), ["worst"] * 6 + ["best"] * 6):
        ax.imshow(val.image(i), cmap="gray")
        ax.scatter(*val.keypoints[i].T, s=8, c="red", label="truth")
        ax.scatter(*pred[i].T, s=8, c="lime", marker="x", label="prediction")
        ax.set_title(f"{label} {err[i]:.2f}px", fontsize=8)
        ax.axis("off")
    axes.flat[0].legend(fontsize=6)
    fig.tight_layout()
    written.append(out / f"{name}_best_worst.png")
    fig.savefig(written[-1], dpi=110)
    plt.close(fig)
    conv = next((m for m in model.modules() if m.__class__.__name__ == "Conv2d" and m.kernel_size[0] > 1), None)
    if conv is not None:
        w = conv.weight.detach()[:, 0].numpy()
        n = min(len(w), 32)
        fig, axes = plt.subplots(2, (n + 1) // 2, figsize=(n * 0.5 + 1, 2.2))
        for ax, k in zip(axes.flat, range(n)):
            ax.imshow(w[k], cmap="gray")
            ax.axis("off")
        fig.suptitle(f"{run['name']}: first-layer filters")
        written.append(out / f"{name}_filters.png")
        fig.savefig(written[-1], dpi=110)
        plt.close(fig)
    return written
