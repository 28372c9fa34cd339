"""The report of a photo-set evaluation (``facekeypoints evaluate PHOTOS --report DIR``), as seed
003's report showed its model: the cumulative error curve, NME by face region and by head turn,
and the best and worst faces drawn with their labels (green) and the predictions (red).

Writes ``DIR/index.html`` with ``ced.png``, ``regions.png`` and ``best_N.jpg`` / ``worst_N.jpg``;
every file goes through ``atomic_path``.
"""
from __future__ import annotations

import html
import os
import re
from pathlib import Path

import cv2
import numpy as np

from facekeypoints.atomic import atomic_path
from facekeypoints.data.images import read_image
from facekeypoints.evaluate.metrics import ced
from facekeypoints.evaluate.photos import left_out

__all__ = ["write_photo_report", "check_photo_report_folder", "check_report_folder"]

_TRUTH, _PRED = (40, 200, 60), (230, 40, 40)  # RGB: labels green, predictions red
# in index.html's <title>: how a later report knows the folder is its own (COMPARE_TITLE: compare.py's)
TITLE, COMPARE_TITLE = "facekeypoints evaluation", "facekeypoints runs"
_FACE_PICTURE = re.compile(r'<img src="((?:best|worst)_[0-9]+\.jpg)">')  # as the page below names them
# each facekeypoints report's <title>, and what it is called in a refusal
_REPORT_KINDS = {TITLE: "an evaluation report", COMPARE_TITLE: "a compare report"}


def _report_title(out: Path) -> str:
    """The <title> of ``out/index.html`` when a facekeypoints report wrote it, else ""."""
    try:
        with open(out / "index.html", "rb") as f:
            head = f.read(4096)
    except OSError:
        return ""
    found = re.search(rb"<title>(facekeypoints [a-z ]+)</title>", head)
    return found.group(1).decode() if found else ""


def _own_report(out: Path, title: str) -> bool:
    """Whether ``out/index.html`` is a report of ours (its <title> is ``title``)."""
    return _report_title(out) == title


def _earlier_pictures(out: Path) -> set[str]:
    """The face pictures the earlier report's index.html shows: the only files a new one may remove."""
    try:
        with open(out / "index.html", "rb") as f:
            page = f.read(1 << 20).decode("utf-8", "replace")
    except OSError:
        return set()
    return set(_FACE_PICTURE.findall(page))


def check_report_folder(out_dir: str | Path, names, title: str) -> None:
    """ValueError when ``out_dir`` holds a file a report would write (one of ``names``), unless the
    folder holds an earlier report of the same kind (its index.html has ``title``): a user's own
    index.html or photos must not be replaced without a word (``--report .`` in a web project)."""
    out = Path(out_dir)
    other = _report_title(out)
    if other == title:
        return
    for name in names:
        if os.path.lexists(out / name):
            if other:  # another kind of our reports: not the user's files, but not this report's to replace
                raise ValueError(f"{out / name}: exists, and {out} holds {_REPORT_KINDS.get(other, repr(other))} "
                                 f"(its index.html), not {_REPORT_KINDS.get(title, repr(title))}; give --report "
                                 "another folder")
            raise ValueError(f"{out / name}: exists, and {out} holds no earlier facekeypoints report (its "
                             f"index.html) that this one may replace; give --report a new or empty folder, or move "
                             f"the file")


def _photo_report_names(faces: int) -> list[str]:
    return ["index.html", "ced.png", "regions.png"] + [f"{kind}_{n}.jpg" for kind in ("best", "worst")
                                                      for n in range(1, faces + 1)]


def check_photo_report_folder(out_dir: str | Path, faces: int = 6) -> None:
    """``check_report_folder`` for ``write_photo_report``: callers check before the faces are scored."""
    check_report_folder(out_dir, _photo_report_names(faces), TITLE)


def _save_figure(fig, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)


def _face_picture(data, row: int, truth: np.ndarray, pred: np.ndarray, side: int = 256) -> np.ndarray:
    """The labelled face cut out with a margin, scaled to ``side`` px, labels and predictions drawn."""
    image = data.image(row) if data.images is not None else read_image(data.paths[row])
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    points = truth[np.isfinite(truth).all(-1)]
    (x1, y1), (x2, y2) = points.min(0), points.max(0)
    half = 0.65 * max(x2 - x1, y2 - y1, 8.0)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    scale = side / (2 * half)
    warp = np.array([[scale, 0, side / 2 - scale * cx], [0, scale, side / 2 - scale * cy]])
    crop = cv2.warpAffine(image, warp, (side, side), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_CONSTANT)
    for points, colour in ((truth, _TRUTH), (pred, _PRED)):
        for x, y in points[np.isfinite(points).all(-1)]:
            u, v = warp @ np.array([x, y, 1.0])
            cv2.circle(crop, (int(round(u)), int(round(v))), 2, colour, -1, cv2.LINE_AA)
    return crop


def write_photo_report(out_dir: str | Path, data, details: dict, report: dict, *, faces: int = 6) -> Path:
    """Write the report of ``report`` (``evaluate_photos``' figures) into ``out_dir``; ``details`` is
    what ``evaluate_photos(details=...)`` filled in. Returns the index.html path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    check_photo_report_folder(out, faces)
    earlier = _earlier_pictures(out) if _own_report(out, TITLE) else set()  # the face pictures ours to tidy
    out.mkdir(parents=True, exist_ok=True)
    per_face = details["nme"]
    finite = np.isfinite(per_face)
    thresholds, fractions, _ = ced(per_face[finite], 0.15)
    fig, ax = plt.subplots(figsize=(5, 3.6))
    ax.plot(100 * thresholds, 100 * fractions)
    ax.set(xlabel="NME threshold (% of inter-ocular distance)", ylabel="faces under it (%)",
           title=f"{report['schema']} on {Path(report['data']).name}: {report['scored']} faces")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    _save_figure(fig, out / "ced.png")
    plt.close(fig)

    fig, (left, right) = plt.subplots(1, 2, figsize=(8, 3.4))
    regions = report["regions"]
    left.bar(list(regions), [100 * v for v in regions.values()], color="tab:blue")
    left.set(ylabel="NME (%)", title="by face region")
    turns = {k: v for k, v in report["by_turn"].items() if v["faces"]}
    right.bar([f"{k}\n({v['faces']})" for k, v in turns.items()], [100 * v["nme"] for v in turns.values()],
              color="tab:orange")
    right.set(title="by head turn (faces)")
    right.tick_params(axis="x", labelsize=7)
    fig.tight_layout()
    _save_figure(fig, out / "regions.png")
    plt.close(fig)

    order = np.argsort(np.where(finite, per_face, np.inf))[:finite.sum()]  # a face without a scale is neither
    picked = {"best": order[:faces], "worst": order[::-1][:faces]}
    cells = {}
    for kind, chosen in picked.items():
        cells[kind] = []
        for n, k in enumerate(chosen):
            row = int(details["rows"][k])
            picture = _face_picture(data, row, details["truth"][k], details["pred"][k])
            name = f"{kind}_{n + 1}.jpg"
            with atomic_path(out / name) as tmp:
                tmp.write_bytes(cv2.imencode(".jpg", cv2.cvtColor(picture, cv2.COLOR_RGB2BGR))[1].tobytes())
            label = data.ids[row] if data.ids is not None else f"row {row + 1}"
            cells[kind].append(f'<figure><img src="{name}"><figcaption>{html.escape(str(label))}: NME '
                               f"{100 * per_face[k]:.2f}%</figcaption></figure>")
    figures = {"NME": f"{100 * report['nme']:.2f}%", "FR@8": f"{100 * report['fr_8']:.1f}%",
               "FR@10": f"{100 * report['fr_10']:.1f}%", "AUC@8": f"{report['auc_8']:.3f}",
               "AUC@10": f"{report['auc_10']:.3f}", "RMSE": f"{report['rmse']:.2f} px",
               "mean signed error": "x {:+.2f}, y {:+.2f} px".format(*report["mean_error_xy"])}
    rows = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in figures.items())
    missing = left_out(report)  # every face the figures leave out, named with why
    missing_html = (f"<h2>Faces left out ({len(missing)})</h2><ul>"
                    + "".join(f"<li>{html.escape(line)}</li>" for line in missing) + "</ul>") if missing else ""
    page = f"""<!doctype html><meta charset="utf-8"><title>{TITLE}</title>
<style>body{{font-family:sans-serif;margin:2em}} figure{{display:inline-block;margin:4px}} td,th{{padding:2px 10px;text-align:left}}</style>
<h1>{html.escape(report['model'])} on {html.escape(report['data'])}</h1>
<p>{report['scored']} of {report['faces']} faces scored; boxes: {html.escape(report['boxes'])}, then refinement.
Labels green, predictions red.</p>
<table>{rows}</table>
{missing_html}
<h2>Cumulative error</h2><img src="ced.png">
<h2>By region and head turn</h2><img src="regions.png">
<h2>Best faces</h2>{''.join(cells['best'])}
<h2>Worst faces</h2>{''.join(cells['worst'])}
"""
    with atomic_path(out / "index.html") as tmp:
        # a face named from a file name that is not UTF-8 (b\xe9.pts) is written escaped, not a codec error
        tmp.write_text(page, encoding="utf-8", errors="backslashreplace")
    written = {f"{kind}_{n + 1}.jpg" for kind, chosen in picked.items() for n in range(len(chosen))}
    for name in sorted(earlier - written):  # an earlier, larger report's faces, which this page no longer shows
        if (out / name).is_file():
            (out / name).unlink(missing_ok=True)
    return out / "index.html"
