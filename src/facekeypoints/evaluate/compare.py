"""Compare training runs: a table like the seeds' tables, and a report of plots.

Each run directory is what ``facekeypoints train`` writes: metrics.csv, config.json, best.pt.
"""
from __future__ import annotations

import csv
import hashlib
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from facekeypoints.atomic import WriteError, atomic_path, check_target
from facekeypoints.data.dataset import one_line
from facekeypoints.data.formats.checks import text_float
from facekeypoints.evaluate.photo_report import COMPARE_TITLE, check_report_folder
from facekeypoints.data.pipeline import to_scoring_pixels
from facekeypoints.data.walk import check_path
from facekeypoints.evaluate.metrics import per_keypoint_rmse
from facekeypoints.evaluate.runner import predict_data, run_split
from facekeypoints.models.predict import TorchRunner
from facekeypoints.models.face_detector import holds_detector_run

__all__ = ["read_run", "compare_runs", "write_report", "Comparison"]


# the columns train writes in metrics.csv (train/loop.py _Logger.FIELDS and teacher_kept; a test keeps them
# the same, as evaluate may not import train); any other is a misread or foreign file
_COLUMNS = ("epoch", "minutes", "lr", "train_loss", "val_loss", "val_rmse", "val_mae", "teacher_kept")
_NOT_NEGATIVE = ("minutes", "lr", "train_loss", "val_loss", "val_rmse", "val_mae", "teacher_kept")


def _number(text: str, where: str, column: str) -> float | None:
    if text == "":  # an epoch without a validation pass leaves its cells empty
        return None
    try:
        value = text_float(text)
    except ValueError:
        raise ValueError(f"{where}: {text!r} is not a number") from None
    if column in _NOT_NEGATIVE and value < 0:  # a loss, error or time below 0 would win as the best epoch
        raise ValueError(f"{where}: {text!r} is negative; {column} cannot be")
    return value


def _read_header(metrics: Path, header: list[str]) -> list[str]:
    """The header's column names, stripped of spaces; ValueError for a repeated or unknown one."""
    columns = [name.strip() for name in header]
    if "epoch" not in columns:
        raise ValueError(f"{metrics}: no 'epoch' column (columns: {', '.join(map(repr, columns)) or 'none'}); is "
                         "it the run's metrics.csv?")
    for i, name in enumerate(columns, 1):
        if columns.index(name) != i - 1:  # csv.DictReader would let the later copy win, silently
            raise ValueError(f"{metrics}: line 1, column {i}: {name!r} repeats column {columns.index(name) + 1}; "
                             "each column may appear once")
        if name not in _COLUMNS:
            raise ValueError(f"{metrics}: line 1, column {i}: {name!r} is not a column train writes "
                             f"({', '.join(_COLUMNS)}); is it the run's metrics.csv?")
    return columns


def _read_history(metrics: Path) -> list[dict]:
    """metrics.csv as one dict of numbers (None: empty cell) per epoch; ValueError naming the file,
    line and column of anything else."""
    try:  # utf-8-sig: a BOM (an editor's save) is not part of the first column's name
        with open(metrics, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            columns = _read_header(metrics, next(reader, []))
            rows = [(reader.line_num, row) for row in reader if row]  # a blank line (a trailing newline) is no row
    except UnicodeDecodeError as err:
        raise ValueError(f"{metrics}: not UTF-8 text ({err.reason} at byte {err.start}); is it the run's "
                         "metrics.csv?") from None
    except csv.Error as err:  # a field past csv's size limit, a NUL byte
        raise ValueError(f"{metrics}: line {reader.line_num}: {err}; is it the run's metrics.csv?") from None
    history = []
    for line, row in rows:
        if len(row) > len(columns):
            raise ValueError(f"{metrics}: line {line} has more values than the header's {len(columns)} columns")
        if len(row) < len(columns):
            raise ValueError(f"{metrics}: line {line} has {len(row)} values where the header has {len(columns)} "
                             "columns (a cut or damaged row)")
        values = {k: _number(v, f"{metrics}: line {line}, column {k}", k) for k, v in zip(columns, row)}
        epoch = values["epoch"]
        if epoch is None or not math.isfinite(epoch) or epoch < 1 or epoch != int(epoch):
            raise ValueError(f"{metrics}: line {line}, column epoch: {row[columns.index('epoch')]!r} is not an epoch "
                             "number (1, 2, ...)")
        if history and epoch <= history[-1]["epoch"]:  # train writes each epoch once, in order: an edited or joined log
            raise ValueError(f"{metrics}: line {line}, column epoch: epoch {int(epoch)} comes after epoch "
                             f"{int(history[-1]['epoch'])}; a run logs each epoch once, in order (two logs joined, "
                             "or an edited file?)")
        history.append(values)
    if not history:
        raise ValueError(f"{metrics}: no epochs recorded yet")
    return history


def _read_config(path: Path) -> dict:
    """What the table shows of a run's config.json: model name, schema, and the pixels its RMSE is in
    ('?' where the run has none); ValueError naming a damaged file."""
    if not path.is_file():
        return {"model": "?", "schema": "?", "pixels": "?"}
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: damaged, not JSON ({err})") from None
    except RecursionError:  # json nests deeper than Python's stack allows
        raise ValueError(f"{path}: damaged, not JSON as train writes it (nested too deeply)") from None
    config = saved.get("config", {}) if isinstance(saved, dict) else None
    model = config.get("model", {}) if isinstance(config, dict) else None
    name = model.get("name", "?") if isinstance(model, dict) else None
    if not isinstance(name, str):
        raise ValueError(f"{path}: damaged, expected {{\"config\": {{\"model\": {{\"name\": ...}}}}}} as train writes")
    data = config.get("data") if isinstance(config.get("data"), dict) else {}
    schema = data.get("schema", "?")
    preprocess = config.get("preprocess")
    size = preprocess.get("size", "?") if isinstance(preprocess, dict) else "?"
    # the pixels RMSE and MAE are in (data.pipeline.scoring_frames): frame kaggle, the 96-pixel Kaggle faces;
    # none, the faces as read, which are at the input size; resize, the photos' own pixels
    frame = data.get("frame", "none")
    pixels = {"kaggle": "96-px faces", "none": f"{size}-px faces"}.get(frame, f"the photos of {data.get('train', '?')}") \
        if isinstance(frame, str) else "?"  # a damaged value (a list) names no pixel space
    return {"model": name, "schema": schema if isinstance(schema, str) else "?", "pixels": pixels}


def read_run(run_dir: str | Path) -> dict:
    """A run's model name, per-epoch history and best epoch (lowest finite validation RMSE).

    A damaged run (metrics.csv not UTF-8, without an 'epoch' column, with a repeated or unknown
    column, or a value that is not a plain number or is a negative loss, error or time; config.json
    not JSON or not shaped as train writes it) is a ValueError naming the run folder and the file,
    with the line and column: a table that quietly left a run out, or showed it wrong, would mislead."""
    run = Path(run_dir)
    check_path(run)  # a name too long for the file system: said, not a bare OSError from is_file()
    metrics = run / "metrics.csv"
    if not metrics.is_file():
        if not run.exists():
            raise FileNotFoundError(f"{run}: no such run folder")
        if run.is_dir() and holds_detector_run(run):  # train-detector's folder: --resume advice would not work
            raise ValueError(f"{run}: holds a face-detector run (train-detector's last.pt), not a keypoint training "
                             "run; compare takes the folders of `facekeypoints train` runs")
        held = [name for name in ("config.json", "last.pt") if (run / name).is_file()]
        if run.is_dir() and held:  # a run stopped (or still running) in its first epoch
            raise ValueError(f"{run}: no finished epoch yet (it holds {' and '.join(held)} but no metrics.csv, "
                             "which training writes at the end of each epoch); compare it once its first epoch has "
                             "finished (`facekeypoints train ... --resume` continues a stopped run)")
        raise FileNotFoundError(f"{run}: no metrics.csv; is this a facekeypoints run directory?")
    history = _read_history(metrics)
    config = _read_config(run / "config.json")
    # a diverged epoch's NaN must not win: min() keeps NaN when it comes first
    scored = [h for h in history if h.get("val_rmse") is not None and math.isfinite(h["val_rmse"])]
    best = min(scored, key=lambda h: h["val_rmse"]) if scored else history[-1]
    # named by folder: two runs of one config (seeds, devices) must not share a name
    return {"name": run.name, "dir": str(run), **config, "history": history, "best": best}


@dataclass
class Comparison:
    """What :func:`compare_runs` made: the text table, one note per run whose report figures were
    left out (its data or best.pt could not be read), and one line per folder given that is not a
    readable run (left out of the table); notes and skipped folders make the comparison partial."""

    table: str
    notes: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def compare_runs(run_dirs: list[str], report_dir: str | None = None) -> Comparison:
    """Text table (model, train loss, validation loss, RMSE, MAE, minutes) at each run's best epoch;
    with ``report_dir`` also writes the plots of :func:`write_report` and table.json / table.txt there.

    Every run is read first, before anything is written: a folder that is not a readable run (see
    :func:`read_run`) is left out and named in ``skipped`` with why, the others compared; when none
    can be read, that is the error. In the report, a run whose training data or best.pt cannot be
    read keeps its row and curves; its other figures are left out with a note."""
    _check_distinct(run_dirs)
    runs, skipped = _read_runs(run_dirs)
    for r, name, stem in zip(runs, *_unique_names([r["dir"] for r in runs])):
        r["name"], r["stem"] = name, stem
    for r in runs:  # names and models as text on one line: a line break in one would break the table
        r["name"], r["model"], r["schema"] = (one_line(r[key]) for key in ("name", "model", "schema"))
    width = max([28] + [len(r["name"]) for r in runs])  # a long name is never cut to another's
    header = (f"{'run':{width}s} {'model':16s} {'schema':9s} {'epoch':>5s} {'train loss':>10s} {'val loss':>9s} "
              f"{'RMSE':>7s} {'MAE':>7s} {'minutes':>8s}")
    lines = [header, "-" * len(header)]
    rows = []
    for r in runs:
        b = r["best"]
        row = {"run": r["name"], "model": r["model"], "schema": r["schema"], "epoch": int(b["epoch"]),
               "train_loss": b.get("train_loss"), "val_loss": b.get("val_loss"), "rmse": b.get("val_rmse"),
               "mae": b.get("val_mae"), "minutes": r["history"][-1].get("minutes")}
        rows.append(row)
        fmt = lambda v, w, p: f"{v:{w}.{p}f}" if v is not None else f"{'-':>{w}s}"  # noqa: E731
        lines.append(f"{row['run']:{width}s} {row['model'][:16]:16s} {row['schema'][:9]:9s} {row['epoch']:5d} "
                     f"{fmt(row['train_loss'], 10, 4)} {fmt(row['val_loss'], 9, 4)} {fmt(row['rmse'], 7, 3)} "
                     f"{fmt(row['mae'], 7, 3)} {fmt(row['minutes'], 8, 1)}")
    mixed = _mixed_scales(runs)
    lines += [f"warning: {m}" for m in mixed]
    table = "\n".join(lines)
    if not report_dir:
        return Comparison(table, skipped=skipped)
    out = check_target(report_dir, folder=True)
    # every file the report may write: a user's own index.html there is refused, an earlier report's replaced
    check_report_folder(out, ["index.html", "table.json", "table.txt", "curves.png"] + [
        f"{r['stem']}_{kind}.png" for r in runs for kind in ("filters", "per_keypoint", "best_worst")], COMPARE_TITLE)
    done: list[Path] = []
    try:
        figures, notes = write_report(runs, out, done)
        for name, text in (("table.json", json.dumps(rows, indent=2)), ("table.txt", table + "\n"),
                           ("index.html", _index_html(rows, runs, figures, notes, mixed))):
            with atomic_path(out / name) as tmp:
                tmp.write_text(text, encoding="utf-8")
            done.append(out / name)
    except OSError as err:  # say what the report holds: the failing file wrote nothing, the ones before it did
        held = ", ".join(p.name for p in done) or "nothing"
        raise WriteError(err.errno, f"{err.strerror or err}; the report in {out} is incomplete (written: {held}; "
                                   "no index.html)") from err
    table += f"\nreport written to {out}/ (open {out / 'index.html'})"
    return Comparison(table, [f"{r['dir']}: {notes[r['name']]}" for r in runs if r["name"] in notes], skipped)


def _read_runs(run_dirs: list[str]) -> tuple[list[dict], list[str]]:
    """(the runs that can be read, one line per folder that cannot, saying why); the error itself when
    none can be read (a table of nothing would hide it)."""
    runs, errors = [], []
    for run_dir in run_dirs:
        try:
            runs.append(read_run(run_dir))
        except (ValueError, FileNotFoundError) as err:
            errors.append(err)
    if runs:
        return runs, [one_line(str(err)) for err in errors]
    if len(errors) == 1:
        raise errors[0]
    raise ValueError(one_line(f"none of the {len(errors)} runs can be read: " + "; ".join(map(str, errors))))


def _mixed_scales(runs: list[dict]) -> list[str]:
    """A warning for each of schema and pixel space in which the runs differ: their RMSE and MAE are
    then in different units (points, pixels) and not comparable. A run whose config.json does not say
    ('?') is left out of the comparison, and named as unknown."""
    found = []
    for key, what in (("schema", "keypoint schema"), ("pixels", "pixel space")):
        known = [r for r in runs if r[key] != "?"]
        if len({r[key] for r in known}) > 1:
            each = "; ".join(f"{r['name']}: {r[key]}" for r in known)
            found.append(one_line(f"the runs differ in {what}s ({each}), so their RMSE and MAE are not comparable"))
        unknown = [r["name"] for r in runs if r[key] == "?"]
        if unknown and known:
            found.append(one_line(f"the {what} is unknown for {', '.join(unknown)} (its run folder does not record "
                                  "it), so its RMSE and MAE may not be comparable with the others'"))
    return found


def _check_distinct(run_dirs: list[str]) -> None:
    """Refuse a run folder given twice (also as another path to it, or through a link): its row and
    figures would be shown twice as if two runs agreed."""
    seen: dict[tuple, str] = {}
    for given in run_dirs:
        path = Path(given)
        try:
            st = path.stat()
            key = ("inode", st.st_dev, st.st_ino)
        except OSError:  # read_run says what is wrong with it
            key = ("path", os.path.abspath(path))
        if key in seen:
            same = "twice" if str(given) == seen[key] else f"twice ({seen[key]} and {given} are the same folder)"
            raise ValueError(f"{given}: the same run is given {same}; give each run once")
        seen[key] = str(given)


def _unique_names(dirs: list[str]) -> tuple[list[str], list[str]]:
    """Each run's name, its folder's name, or where two runs share it, the shortest ending of their
    paths that tells them apart (a/x/r and b/x/r: a/x/r and b/x/r, not x/r twice); and from the
    names, file-name stems for the report's figures that are unique too (x/r and a folder named
    x_r would both be x_r)."""
    parts = [Path(os.path.abspath(d)).parts for d in dirs]

    def ending(p, k):
        return "/".join(x.strip("/") for x in p[-k:] if x.strip("/")) or "/"

    names = []
    for i, p in enumerate(parts):
        k = 1
        while k < len(p) and any(ending(p, k) == ending(q, k) for j, q in enumerate(parts) if j != i):
            k += 1
        names.append(ending(p, k))
    stems, taken = [], set()
    for name in names:
        stem = base = name.replace("/", "_") or "run"
        n = 1
        while stem in taken:
            n += 1
            stem = f"{base}_{n}"
        taken.add(stem)
        stems.append(_short_stem(stem))
    return names, stems


_STEM_BYTES = 200  # + "_per_keypoint.png" stays within the 255 bytes a file name may have


def _short_stem(stem: str) -> str:
    """``stem`` itself, or when too long for a figure's file name, its start and a short hash of the
    whole (unique as long as the names are)."""
    if len(os.fsencode(stem)) <= _STEM_BYTES:
        return stem
    digest = hashlib.sha256(os.fsencode(stem)).hexdigest()[:10]
    head = stem
    while len(os.fsencode(head)) > _STEM_BYTES - 11:
        head = head[:-1]
    return f"{head}_{digest}"


def write_report(runs: list[dict], out: Path, done: list[Path] | None = None) -> tuple[list[Path], dict[str, str]]:
    """Loss/RMSE curves for all runs, then per run: per-keypoint RMSE bars, best and worst
    validation faces with predictions, and the first convolution layer's filters.

    Returns the figures written and, by run name, a note for each run whose figures were left out
    (a damaged best.pt, or training data that has moved or changed): the rest is still written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def values(h, key):  # None (no validation that epoch, a column the run lacks) plots as a gap
        return [np.nan if x.get(key) is None else x[key] for x in h]

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for r in runs:
        h = r["history"]
        axes[0].plot(values(h, "epoch"), values(h, "train_loss"), label=f"{r['name']} train")
        axes[0].plot(values(h, "epoch"), values(h, "val_loss"), "--", label=f"{r['name']} val")
        axes[1].plot(values(h, "minutes"), values(h, "val_rmse"), label=r["name"])
    axes[0].set(xlabel="epoch", ylabel="loss", yscale="log", title="loss")
    axes[1].set(xlabel="training minutes", ylabel="validation RMSE (px)", title="RMSE against time")
    for ax in axes:
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    written = done if done is not None else []  # the caller's list: what was written when a later figure fails
    written.append(_save(fig, out / "curves.png", plt))
    notes: dict[str, str] = {}
    for r in runs:
        best = Path(r["dir"]) / "best.pt"
        if best.is_file():
            _run_figures(r, best, out, plt, notes, written)
    return list(written), notes


def _save(fig, path: Path, plt) -> Path:
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return path


def _index_html(rows: list[dict], runs: list[dict], figures: list[Path], notes: dict[str, str],
                mixed: list[str] = ()) -> str:
    """One self-contained page (no external files but the report's own PNGs): the table, the
    curves, and per run its per-keypoint errors, best and worst faces, and first-layer filters
    (or the note saying why some were left out)."""
    import html

    def cell(v, digits):
        return "-" if v is None else (f"{v:.{digits}f}" if isinstance(v, float) else html.escape(str(v)))

    head = "".join(f"<th>{t}</th>" for t in ("run", "model", "schema", "best epoch", "train loss", "val loss",
                                             "RMSE px", "MAE px", "minutes"))
    body = "".join(
        f"<tr><td><a href='#{html.escape(r['run'])}'>{html.escape(r['run'])}</a></td><td>{cell(r['model'], 0)}</td>"
        f"<td>{cell(r['schema'], 0)}</td><td>{r['epoch']}</td><td>{cell(r['train_loss'], 4)}</td>"
        f"<td>{cell(r['val_loss'], 4)}</td>"
        f"<td>{cell(r['rmse'], 3)}</td><td>{cell(r['mae'], 3)}</td><td>{cell(r['minutes'], 1)}</td></tr>" for r in rows)
    names = {f.name for f in figures}
    sections = []
    for run in runs:
        stem = run.get("stem") or run["name"].replace("/", "_")
        images = [(f"{stem}_{kind}.png", title) for kind, title in
                  (("per_keypoint", "per-keypoint validation RMSE"), ("best_worst", "best and worst validation faces"),
                   ("filters", "first-layer filters"))]
        shown = "".join(f"<figure><img src='{n}' alt='{t}'><figcaption>{t}</figcaption></figure>"
                        for n, t in images if n in names)
        note = f"<p><b>left out:</b> {html.escape(notes[run['name']])}</p>" if run["name"] in notes else ""
        sections.append(f"<section id='{html.escape(run['name'])}'><h2>{html.escape(run['name'])}</h2>"
                        f"<p>{html.escape(run['dir'])}</p>{note}"
                        f"{shown or ('' if note else '<p>no best.pt: no per-run figures</p>')}</section>")
    style = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto}table{border-collapse:collapse}"
             "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}td:first-child{text-align:left}"
             "img{max-width:100%}figure{margin:1em 0}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{COMPARE_TITLE}</title>"
            f"<style>{style}</style></head><body><h1>Training runs</h1><table><tr>{head}</tr>{body}</table>"
            f"{''.join(f'<p><b>warning:</b> {html.escape(m)}</p>' for m in mixed)}"
            f"<h2>Curves</h2><img src='curves.png' alt='loss and RMSE curves'>{''.join(sections)}</body></html>\n")


def _run_figures(run: dict, ckpt_path: Path, out: Path, plt, notes: dict[str, str],
                 written: list[Path] | None = None) -> list[Path]:
    """The run's figures; what cannot be drawn is noted in ``notes`` under the run's name."""
    name = run.get("stem") or run["name"].replace("/", "_")
    try:
        runner = TorchRunner.load(ckpt_path)
    except ValueError as err:  # CheckpointError: damaged, or not a keypoint model
        notes[run["name"]] = f"no per-run figures: {err}"
        return []
    written = written if written is not None else []
    written += _filters_figure(run, runner.model, out / f"{name}_filters.png", plt)
    try:  # the validation faces are rebuilt from the training data the checkpoint names
        val, frames = run_split(runner.card, "val", with_frames=True)
    except (ValueError, OSError) as err:
        notes[run["name"]] = f"no per-keypoint or best/worst figures: its validation faces cannot be rebuilt ({err})"
        return written
    pred = predict_data(runner, val, mirror_tta=_validated_with_mirror(run, runner.card))
    # errors in the labelled images' pixels, as the run's val_rmse; the faces are drawn as the model saw them
    scored_pred, scored_truth = (to_scoring_pixels(frames, p) for p in (pred, val.keypoints))
    pk = per_keypoint_rmse(scored_pred, scored_truth)
    fig, ax = plt.subplots(figsize=(8, 3.5))
    ax.bar(range(len(pk)), np.nan_to_num(pk))
    ax.set_xticks(range(len(pk)), val.schema.keypoints, rotation=70, fontsize=6)
    ax.set(ylabel="RMSE (px)", title=f"{run['name']}: per-keypoint validation RMSE")
    written.append(_save(fig, out / f"{name}_per_keypoint.png", plt))
    err = np.sqrt(np.nanmean((scored_pred - scored_truth) ** 2, axis=(1, 2)))
    order = np.argsort(np.nan_to_num(err, nan=-1))
    fig, axes = plt.subplots(2, 6, figsize=(12, 4.5))
    for ax, i, label in zip(axes.flat, list(order[::-1][:6]) + list(order[:6][::-1]), ["worst"] * 6 + ["best"] * 6):
        ax.imshow(val.image(i), cmap="gray")
        ax.scatter(*val.keypoints[i].T, s=8, c="red", label="truth")
        ax.scatter(*pred[i].T, s=8, c="lime", marker="x", label="prediction")
        ax.set_title(f"{label} {err[i]:.2f}px", fontsize=8)
        ax.axis("off")
    axes.flat[0].legend(fontsize=6)
    written.append(_save(fig, out / f"{name}_best_worst.png", plt))
    return written


def _validated_with_mirror(run: dict, card) -> bool:
    """Whether the run validated with mirror test-time augmentation (train.mirror_tta): its figures are
    scored so, as its val_rmse was. Cards record it (``val_mirror_tta``); older runs' config.json does."""
    if card.metrics.get("val_mirror_tta") is not None:
        return bool(card.metrics["val_mirror_tta"])
    try:
        saved = json.loads((Path(run["dir"]) / "config.json").read_text(encoding="utf-8"))
        return bool(saved["config"]["train"].get("mirror_tta", False))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):  # no readable config: TrainConfig's default
        return False


def _filters_figure(run: dict, model, path: Path, plt) -> list[Path]:
    """The first convolution layer's filters (needs only the weights, not the data)."""
    conv = next((m for m in model.modules() if m.__class__.__name__ == "Conv2d" and m.kernel_size[0] > 1), None)
    if conv is None:
        return []
    w = conv.weight.detach()[:, 0].numpy()
    n = min(len(w), 32)
    fig, axes = plt.subplots(2, (n + 1) // 2, figsize=(n * 0.5 + 1, 2.2))
    for ax, k in zip(axes.flat, range(n)):
        ax.imshow(w[k], cmap="gray")
        ax.axis("off")
    fig.suptitle(f"{run['name']}: first-layer filters")
    return [_save(fig, path, plt)]
