"""Train the face detector of ``models.face_detector`` on mosaics of the labelled photos we have.

Faces come from ytf68's training people (the 80/20 person split with seed 0, so its validation
people stay unseen, as in ``benchmarks/bench_detect.py``) and IMM's people 1-32; a face's box is
the bounding box of its landmarks, the convention ``framing.BOX_FRAMES["landmarks"]`` frames.
Each training image is a mosaic drawn at random: one photo stretched over the canvas as background,
then up to six more pasted at scales that make faces from 10 to 150 px, each turned by up to
25 degrees, mirrored, recoloured, sometimes grey or blurred; a face whose centre a later paste covers
loses its label. So the network sees small faces, several faces and faces at the edges, which the
one-face photos alone would not show it.

The run is resumable: ``last.pt`` (weights, optimizer, step, minutes, and its faces' count and
fingerprint) is saved every ``save_every`` steps and on SIGINT/SIGTERM; the same command continues
it, on the same faces only (other data would make one run of two trainings). At the end the model
is exported to ONNX (``face_detector.onnx``), the file ``infer.detectors.CnnDetector`` loads.

Example::

    facekeypoints train-detector --minutes 60 --out runs/detector
"""
from __future__ import annotations

import hashlib
import math
import signal
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from facekeypoints.atomic import atomic_path, check_target
from facekeypoints.data import read, split_indices
from facekeypoints.data.preprocess import detector_input
from facekeypoints.data.splits import imm_train_mask
from facekeypoints.models.checkpoint import unreadable_reason
from facekeypoints.models.face_detector import RUN_STATE_KEYS, FaceCenterNet, center_targets, detection_loss
from facekeypoints.models.threads import max_threads
from facekeypoints.train.folder_claim import check_unclaimed, claim_folder, release_folder

__all__ = ["FacePool", "mosaic", "train_detector", "export_detector", "check_run", "max_threads", "MAX_BATCH",
           "CANVAS"]

CANVAS = (240, 320)  # training image (height, width): a 640 x 480 frame at the detector's default scale


@dataclass
class FacePool:
    """Photos and the landmark box of the one labelled face in each ((N, 4) x1, y1, x2, y2)."""

    images: list[np.ndarray]
    boxes: np.ndarray

    @classmethod
    def from_datasets(cls, ytf68: str | Path | None, imm: str | Path | None) -> "FacePool":
        images, boxes = [], []
        if ytf68 is not None:
            data = read(ytf68)
            if data.schema.name != "ibug68" or isinstance(data.images, np.ndarray):
                what = (f"{data.schema.name} labels, not 68-point ones"
                        + ("; IMM photos go to --imm" if data.schema.name == "imm58" else "")
                        if data.schema.name != "ibug68" else "68-point data of framed crops, not photos")
                raise ValueError(f"{ytf68}: --ytf68 takes photos with 68-point labels (ytf68's train.csv); this "
                                 f"holds {what}")
            try:
                train_rows = split_indices(data, [0.8, 0.2], seed=0)[0]  # training people only
            except ValueError as err:
                raise ValueError(f"{ytf68}: --ytf68 {err}") from None
            _check_boxes(data, train_rows, "--ytf68")
            for i in train_rows:
                images.append(data.image(i))
                boxes.append(_landmark_box(data.keypoints[i]))
        if imm is not None:
            data = read(imm)
            if data.schema.name != "imm58" or not all(str(p).isdigit() for p in data.person):
                raise ValueError(f"{imm}: --imm takes the IMM face database folder (58-point .asf files named by "
                                 f"person, like 01-1m.asf); this is {data.schema.name} data"
                                 + ("" if data.schema.name != "imm58" else " without IMM's numbered persons"))
            try:
                train_mask = imm_train_mask(data)
            except ValueError as err:
                raise ValueError(f"{imm}: --imm {err}") from None
            if not train_mask.any():  # given, and every photo left out: said, not trained without a word
                people = sorted({int(p) for p in data.person})
                raise ValueError(f"--imm {imm}: its {len(train_mask)} photos are all of IMM's validation people "
                                 f"({', '.join(f'{p:02d}' for p in people)}; 33-40 stay unseen), and the detector "
                                 "trains on people 01-32 only; give a folder with them (IMM's imm_face_db holds all)")
            _check_boxes(data, np.flatnonzero(train_mask), "--imm")
            for i in np.flatnonzero(train_mask):  # people 1-32
                images.append(data.image(i))
                boxes.append(_landmark_box(data.keypoints[i]))
        if not images:
            raise ValueError("no faces to train a detector on: give ytf68 and/or IMM data")
        return cls(images, np.array(boxes, np.float64))

    def fingerprint(self) -> dict:
        """How many faces and a sha256 of their photos and boxes: a resumed run must find the same."""
        digest = hashlib.sha256(np.ascontiguousarray(self.boxes, np.float64).tobytes())
        for image in self.images:
            digest.update(repr(image.shape).encode())
            digest.update(np.ascontiguousarray(image).tobytes())
        return {"count": len(self.images), "sha256": digest.hexdigest()}


def _outline(schema) -> list[int]:
    """The landmarks that bound a face (jaw line and eyebrows): its landmark box is theirs."""
    return [k for k, name in enumerate(schema.keypoints) if name.startswith("jaw_") or "eyebrow" in name]


def _check_boxes(data, rows, option: str) -> None:
    """Refuse training rows whose landmarks cannot give the face's box: the box is the bounding box
    of all the face's landmarks, so every point of the outline (jaw line and eyebrows) must be there;
    a row with only some (five jaw points) would teach the detector a box of part of a face.
    ValueError naming the file and each such row (its image)."""
    outline = _outline(data.schema)
    labelled = data.labelled_mask()  # (N, K)
    bad = [i for i in rows if not labelled[i, outline].all()]
    if not bad:
        _check_box_sizes(data, rows, option)
        return
    k = data.schema.num_keypoints
    where = []
    for i in bad[:3]:
        missing = [data.schema.keypoints[j] for j in outline if not labelled[i, j]]
        where.append(f"{_row(data, i)}: {k - int(labelled[i].sum())} of {k} landmarks missing, among them {missing[0]}"
                     + (f" and {len(missing) - 1} more of the outline" if len(missing) > 1 else ""))
    more = f"; and {len(bad) - 3} more such rows" if len(bad) > 3 else ""
    raise ValueError(f"{data.source}: {option} {'; '.join(where)}{more}: a face's box is the bounding box of its "
                     f"landmarks, so each training face needs its whole jaw line and both eyebrows; label or remove "
                     f"{'these rows' if len(bad) > 1 else 'this row'}")


MIN_FACE_PX = 8  # a landmark box narrower or shorter is labels collapsed onto a point or a line: ytf68's and
# IMM's faces span 30 px and more


def _check_box_sizes(data, rows, option: str) -> None:
    """Refuse training rows whose landmark box is under MIN_FACE_PX a side (all 68 points at one place):
    ``mosaic`` scales a face by its box, so a 1-pixel box becomes a 10-150 px "face" of background,
    and the real face in the photo a negative. ValueError naming the file and each such row."""
    spans = {i: np.ptp(_finite(data.keypoints[i]), axis=0) for i in rows}
    bad = [i for i, span in spans.items() if span.min() < MIN_FACE_PX]
    if not bad:
        return
    where = "; ".join(f"{_row(data, i)}: its landmarks span {spans[i][0]:.3g} x {spans[i][1]:.3g} px"
                      for i in bad[:3])
    more = f"; and {len(bad) - 3} more such rows" if len(bad) > 3 else ""
    raise ValueError(f"{data.source}: {option} {where}{more}: a face's box is the bounding box of its landmarks, and "
                     f"one under {MIN_FACE_PX} px a side is landmarks collapsed onto a point or a line, not a face; "
                     f"fix or remove {'these rows' if len(bad) > 1 else 'this row'}")


def _row(data, i: int) -> str:
    """Row ``i`` as its file's reader numbers it (a CSV's line, with the image), or the photo of a folder's face."""
    return f"row {i + 1} ({data.ids[i]})" if Path(data.source).is_file() else str(data.paths[i] or data.ids[i])


def _finite(points: np.ndarray) -> np.ndarray:
    return points[np.isfinite(points).all(-1)]


def _landmark_box(points: np.ndarray) -> np.ndarray:
    p = _finite(points)
    return np.r_[p.min(0), p.max(0) + 1]


def _colour(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Brightness, contrast, per-channel gain; grey in 20%, blurred in 20% of draws."""
    out = image.astype(np.float32) * rng.uniform(0.6, 1.4) + rng.uniform(-40, 40)
    out *= rng.uniform(0.85, 1.15, 3)
    out = np.clip(out, 0, 255).astype(np.uint8)
    if rng.random() < 0.2:
        out = cv2.cvtColor(cv2.cvtColor(out, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)
    if rng.random() < 0.2:
        k = int(rng.choice([3, 5]))
        out = cv2.GaussianBlur(out, (k, k), 0)
    return out


def _paste(image: np.ndarray, m: np.ndarray, canvas: np.ndarray, clip: tuple[int, int, int, int]) -> np.ndarray:
    """Warp ``image`` by the (2, 3) map ``m`` onto ``canvas`` inside the rectangle ``clip`` (x1, y1,
    x2, y2); only the warped photo's own extent is computed. Returns the (H, W) mask it covered."""
    h, w = image.shape[:2]
    corners = np.array([[0, 0], [w, 0], [0, h], [w, h]], np.float64) @ m[:, :2].T + m[:, 2]
    x1, y1 = np.maximum(np.floor(corners.min(0)).astype(int), clip[:2])
    x2, y2 = np.minimum(np.ceil(corners.max(0)).astype(int), clip[2:])
    covered = np.zeros(canvas.shape[:2], bool)
    if x2 <= x1 or y2 <= y1:
        return covered
    local = m.copy()
    local[:, 2] -= (x1, y1)
    size = (int(x2 - x1), int(y2 - y1))
    scale = math.sqrt(abs(np.linalg.det(m[:, :2])))
    warped = cv2.warpAffine(np.ascontiguousarray(image), local, size,
                            flags=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    inside = cv2.warpAffine(np.full((h, w), 255, np.uint8), local, size, flags=cv2.INTER_NEAREST) > 0
    canvas[y1:y2, x1:x2][inside] = warped[inside]
    covered[y1:y2, x1:x2] = inside
    return covered


def _turned_box(box: np.ndarray, m: np.ndarray, angle: float) -> np.ndarray:
    """The landmark box of a face after the map ``m`` turned it by ``angle`` degrees: the turned
    box's extent shrunk toward its centre, as a turned face's points fill their box less than its
    corners do."""
    corners = np.array([[box[0], box[1]], [box[2], box[1]], [box[0], box[3]], [box[2], box[3]]]) @ m[:, :2].T + m[:, 2]
    c, half = corners.mean(0), (corners.max(0) - corners.min(0)) / 2 * (1 - 0.3 * abs(math.sin(math.radians(angle))))
    return np.r_[c - half, c + half]


def _pick(pool: FacePool, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A recoloured, maybe mirrored photo and its face box."""
    k = int(rng.integers(len(pool.images)))
    image, box = _colour(pool.images[k], rng), pool.boxes[k]
    if rng.random() < 0.5:
        image, box = image[:, ::-1], np.array([image.shape[1] - box[2], box[1], image.shape[1] - box[0], box[3]])
    return image, box


def _distractor(pool: FacePool, rng: np.random.Generator) -> np.ndarray:
    """A square patch with a face's colours and texture but not its layout, for the detector to learn
    that skin alone is not a face (its false detections were hands, shiny cloth and close-ups of
    mouths): half the time a face cut into 3 x 3 or 4 x 4 tiles, shuffled and turned by quarter
    turns; otherwise a part of a face (an eye, the mouth, a cheek: a third to a half of its box)."""
    image, box = _pick(pool, rng)
    h, w = image.shape[:2]
    x1, y1 = max(int(box[0]), 0), max(int(box[1]), 0)
    x2, y2 = min(int(math.ceil(box[2])), w), min(int(math.ceil(box[3])), h)
    if x2 - x1 < 8 or y2 - y1 < 8:  # a face mostly outside its photo: its whole photo instead
        x1, y1, x2, y2 = 0, 0, w, h
    if rng.random() < 0.5:
        n = int(rng.choice([3, 4]))
        tile = max((x2 - x1) // n, 2)
        face = cv2.resize(np.ascontiguousarray(image[y1:y2, x1:x2]), (n * tile, n * tile), interpolation=cv2.INTER_AREA)
        tiles = [np.rot90(face[r * tile:(r + 1) * tile, c * tile:(c + 1) * tile], int(rng.integers(4)))
                 for r in range(n) for c in range(n)]
        order = rng.permutation(len(tiles))
        return np.ascontiguousarray(np.vstack([np.hstack([tiles[order[r * n + c]] for c in range(n)]) for r in range(n)]))
    side = max(int((x2 - x1) * rng.uniform(0.3, 0.5)), 4)
    px, py = int(rng.integers(x1, max(x2 - side, x1) + 1)), int(rng.integers(y1, max(y2 - side, y1) + 1))
    return np.ascontiguousarray(image[py:py + side, px:px + side])


def mosaic(pool: FacePool, rng: np.random.Generator, size: tuple[int, int] = CANVAS,
           distractors: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One training image (H, W, 3) uint8, its face boxes (N, 4) and boxes to ignore (M, 4). A face
    counts when at least 60% of its box shows its own photo; one cut by its tile's edge or hidden
    by later pastes to between 5% and 60% is ignored (neither face nor background to the loss).
    ``distractors``: up to this many patches that look like skin but are no face (``_distractor``),
    pasted unlabelled at face sizes, so that they are background to the loss."""
    h, w = size
    canvas = np.zeros((h, w, 3), np.uint8)
    owner = np.full((h, w), -1, np.int16)  # which paste each pixel shows
    faces: list[np.ndarray] = []  # face k belongs to paste k
    # background: a grid of 1 to 3 x 1 to 3 photos, each covering its tile
    rows, cols = int(rng.choice([1, 2, 2, 3])), int(rng.choice([1, 2, 2, 3]))
    ys = np.sort(np.r_[0, rng.uniform(0.25, 0.75, rows - 1) * h, h]).astype(int)
    xs = np.sort(np.r_[0, rng.uniform(0.25, 0.75, cols - 1) * w, w]).astype(int)
    for r in range(rows):
        for c in range(cols):
            tile = (xs[c], ys[r], xs[c + 1], ys[r + 1])
            image, box = _pick(pool, rng)
            tw, th = tile[2] - tile[0], tile[3] - tile[1]
            scale = max(tw / image.shape[1], th / image.shape[0]) * rng.uniform(1.0, 1.6)
            m = np.array([[scale, 0.0, tile[0] - rng.uniform(0, image.shape[1] * scale - tw)],
                          [0.0, scale, tile[1] - rng.uniform(0, image.shape[0] * scale - th)]])
            owner[_paste(image, m, canvas, tile)] = len(faces)
            faces.append(_turned_box(box, m, 0.0))
    # pasted photos, turned, at face sizes from 10 to 150 px
    for _ in range(int(rng.integers(0, 7))):
        image, box = _pick(pool, rng)
        face_px = math.exp(rng.uniform(math.log(10), math.log(150)))
        angle = rng.uniform(-25, 25)
        centre = np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2])
        m = cv2.getRotationMatrix2D(tuple(centre), angle, face_px / max(box[2] - box[0], 1.0))
        m[:, 2] += rng.uniform([0, 0], [w, h]) - centre
        owner[_paste(image, m, canvas, (0, 0, w, h))] = len(faces)
        faces.append(_turned_box(box, m, angle))
    for _ in range(int(rng.integers(0, distractors + 1))):
        patch = _distractor(pool, rng)
        side = math.exp(rng.uniform(math.log(10), math.log(150)))
        centre = np.array([patch.shape[1], patch.shape[0]]) / 2
        m = cv2.getRotationMatrix2D(tuple(centre), rng.uniform(-25, 25), side / max(patch.shape[:2]))
        m[:, 2] += rng.uniform([0, 0], [w, h]) - centre
        owner[_paste(patch, m, canvas, (0, 0, w, h))] = -2  # no face's pixels: a face under it may lose its label
    canvas = _colour(canvas, rng) if rng.random() < 0.5 else canvas
    if rng.random() < 0.3:  # sensor noise
        canvas = np.clip(canvas + rng.normal(0, rng.uniform(2, 8), canvas.shape), 0, 255).astype(np.uint8)
    boxes = np.array(faces, np.float64).reshape(-1, 4)
    shown = np.array([_shown(owner, k, b) for k, b in enumerate(boxes)])
    return canvas, boxes[shown >= 0.6], boxes[(shown >= 0.05) & (shown < 0.6)]


def _shown(owner: np.ndarray, k: int, box: np.ndarray) -> float:
    """The share of ``box``'s area where the canvas shows paste ``k`` (its own photo)."""
    h, w = owner.shape
    x1, y1 = max(int(box[0]), 0), max(int(box[1]), 0)
    x2, y2 = min(int(math.ceil(box[2])), w), min(int(math.ceil(box[3])), h)
    if x2 <= x1 or y2 <= y1:
        return 0.0
    return float((owner[y1:y2, x1:x2] == k).sum()) / (max(box[2] - box[0], 1.0) * max(box[3] - box[1], 1.0))


class _Mosaics(torch.utils.data.IterableDataset):
    """Endless batches of mosaics and their targets, drawn in a DataLoader worker process so that
    drawing overlaps the training step (a batch of 16 takes about 0.4 s to draw)."""

    def __init__(self, pool: FacePool, batch_size: int, seed: int, distractors: int = 0):
        self.pool, self.batch_size, self.seed, self.distractors = pool, batch_size, seed, distractors

    def __iter__(self):
        rng = np.random.default_rng(self.seed)
        while True:
            samples = [mosaic(self.pool, rng, distractors=self.distractors) for _ in range(self.batch_size)]
            targets = center_targets([s[1] for s in samples], *CANVAS, ignore=[s[2] for s in samples])
            yield detector_input(np.stack([s[0] for s in samples])), targets


def _leave_signals_to_main(worker_id: int) -> None:
    """A mosaic worker ignores SIGINT and SIGTERM: sent to the whole process group (Ctrl-C, ``timeout``,
    ``kill -TERM -PGID``, job schedulers), they would kill it and the next batch would raise instead of the
    main process stopping after its step and saving last.pt. It ends when the main process shuts it down."""
    for s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(s, signal.SIG_IGN)


def train_detector(out: str | Path, pool: FacePool, *, minutes: float = 60.0, batch_size: int = 16,
                   lr: float = 2e-3, seed: int = 0, save_every: int = 200, progress: bool = True,
                   threads: int | None = None, workers: int = 1, distractors: int = 0,
                   init: str | Path | None = None) -> dict:
    """Train for ``minutes`` of wall time (resuming ``out/last.pt`` if there), then export ONNX.
    A resumed run draws new mosaics (seeded by the step it resumes at), not the same ones again.
    ``distractors``: see ``mosaic``; a run resumes only with the number it started with.
    ``init``: another detector run's last.pt whose weights a new run starts from (fine-tuning; its
    optimizer, step and minutes are not taken); not used when ``out`` holds a run to resume (said).
    ``out`` is claimed for the run as ``train`` claims its folder: a second training into it is refused."""
    out = check_run(out, batch_size=batch_size, threads=threads, distractors=distractors, init=init)
    lock, made = claim_folder(out)  # two trainings over one last.pt would each overwrite the other's steps
    try:
        return _train(out, pool, minutes=minutes, batch_size=batch_size, lr=lr, seed=seed, save_every=save_every,
                      progress=progress, threads=threads, workers=workers, distractors=distractors, init=init)
    finally:
        release_folder(lock, out, made)


def _train(out: Path, pool: FacePool, *, minutes: float, batch_size: int, lr: float, seed: int, save_every: int,
           progress: bool, threads: int | None, workers: int, distractors: int, init: str | Path | None) -> dict:
    """``train_detector``'s training, in its claimed folder."""
    from tqdm import tqdm

    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(seed)
    model = FaceCenterNet()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    step, spent = 0, 0.0
    last = out / "last.pt"
    faces = pool.fingerprint()
    if last.is_file():
        step, spent, was, _ = _restore(last, model, opt)
        _check_same_faces(last, was, faces)
        if init is not None:  # said, not silent: the option was given
            warnings.warn(f"--init {init} not used: {out} holds a run, which resumes from its own last.pt; give "
                          "another --out to start a new run from --init", stacklevel=3)
    elif init is not None:
        _restore(Path(init), model, torch.optim.AdamW(model.parameters()), option="--init")  # its weights only
    batches = iter(torch.utils.data.DataLoader(_Mosaics(pool, batch_size, seed * 1_000_003 + step, distractors),
                                               batch_size=None,
                                               num_workers=workers, persistent_workers=workers > 0,
                                               worker_init_fn=_leave_signals_to_main if workers else None))
    stop = {"now": False}
    handlers = {s: signal.signal(s, lambda *_: stop.update(now=True)) for s in (signal.SIGINT, signal.SIGTERM)}
    started = time.perf_counter() - spent * 60
    losses: list[float] = []
    model.train()
    try:
        with tqdm(total=round(minutes, 1), initial=round(spent, 1), unit="min", disable=not progress,
                  desc="detector") as bar:
            while not stop["now"] and (time.perf_counter() - started) / 60 < minutes:
                for group in opt.param_groups:  # cosine decay over the time budget
                    group["lr"] = lr * 0.5 * (1 + math.cos(math.pi * min(1.0, spent / minutes)))
                x, targets = next(batches)
                loss = detection_loss(model(x), targets)
                opt.zero_grad()
                loss.backward()
                opt.step()
                step += 1
                losses.append(loss.item())
                spent = (time.perf_counter() - started) / 60
                bar.n = round(min(spent, minutes), 1)
                bar.set_postfix(step=step, loss=f"{np.mean(losses[-50:]):.3f}")
                if step % save_every == 0:
                    _save(last, model, opt, step, spent, faces, distractors, batch_size)
    finally:
        for s, h in handlers.items():
            signal.signal(s, h)
        if step:  # a run that took no step has nothing to keep
            _save(last, model, opt, step, spent, faces, distractors, batch_size)
    if step == 0 and not stop["now"]:
        raise ValueError(f"--minutes {minutes:g}: the time ran out before the first training step, so there is no "
                         "trained model to export (face_detector.onnx not written); give more minutes")
    summary = {"steps": step, "minutes": round(spent, 2), "last_loss": float(np.mean(losses[-50:])) if losses else None,
               "faces": len(pool.images), "interrupted": stop["now"]}
    if not stop["now"]:
        summary["onnx"] = str(export_detector(model, out / "face_detector.onnx"))
    return summary


# a training step holds about 16 MB per 240 x 320 mosaic (measured: 0.33 GB at batch 16, 1.04 GB at 64),
# so 512 is about 8 GB; a larger batch would run the machine out of memory
MAX_BATCH = 512
MAX_DISTRACTORS = 12  # more than the up to 6 faces pasted would teach mostly "not a face"


def check_run(out: str | Path, *, batch_size: int = 16, threads: int | None = None, distractors: int = 0,
              init: str | Path | None = None) -> Path:
    """``out`` as a run folder this command can train in, checked before any photo is read: ValueError
    for a batch size, thread or distractor count out of bounds, a folder that cannot be made, a last.pt
    there that cannot be continued (damaged, another command's, e.g. a keypoint run's, or started with
    another distractor count or batch size), or an ``init`` file that is not a detector run's last.pt."""
    if not 0 <= distractors <= MAX_DISTRACTORS:
        raise ValueError(f"--distractors must be 0..{MAX_DISTRACTORS} (patches per mosaic), got {distractors}")
    if not 1 <= batch_size <= MAX_BATCH:
        raise ValueError(f"--batch-size must be 1..{MAX_BATCH} (about 16 MB of memory per mosaic), got {batch_size}")
    if threads is not None and not 1 <= threads <= max_threads():
        raise ValueError(f"--threads must be 1..{max_threads()} on this machine, got {threads}")
    out = check_target(out, folder=True, make=False)  # made when it gets its first file, not by a refused run
    check_unclaimed(out)  # another training there: said before a minute of reading photos
    for name in ("last.pt", "face_detector.onnx"):
        if (out / name).exists() and not (out / name).is_file():
            raise ValueError(f"{out / name}: is a folder (or not a regular file); this command writes a file there")
    if init is not None and not Path(init).is_file():  # a typo, also where a resumed run would not use it
        what = "is a folder; give the last.pt in it" if Path(init).is_dir() else "no such file"
        raise ValueError(f"--init {init}: {what} (a face-detector run's last.pt)")
    if (out / "last.pt").is_file():
        model = FaceCenterNet()
        recipe = _restore(out / "last.pt", model, torch.optim.AdamW(model.parameters()))[3]
        now = {"--distractors": distractors, "--batch-size": batch_size}
        for option, was in recipe.items():
            if was is not None and was != now[option]:
                raise ValueError(f"{out / 'last.pt'}: this run was started with {option} {was}, now {now[option]}: "
                                 f"a resumed run keeps its recipe; give {option} {was}, or train into another --out")
    elif init is not None:
        model = FaceCenterNet()
        _restore(Path(init), model, torch.optim.AdamW(model.parameters()), option="--init")
    return out


def _check_same_faces(last: Path, was: dict | None, now: dict) -> None:
    """Refuse to resume ``last`` on other faces than it was trained on (``was``: None in a last.pt
    written before faces were recorded, which cannot be checked: said, and the run goes on)."""
    if was is None:
        import sys

        print(f"warning: {last} records no faces (an older run), so it cannot be checked that --ytf68/--imm give "
              "the faces it was trained on", file=sys.stderr)
    elif was != now:
        same = ", the same count but other faces" if was.get("count") == now["count"] else ""
        raise ValueError(f"{last}: was trained on {was.get('count')} faces, now {now['count']}{same}: the data "
                         "changed since this run started; give its own --ytf68/--imm data, or train into another "
                         "--out folder")


def _restore(last: Path, model, opt, option: str | None = None) -> tuple[int, float, dict | None, dict]:
    """Load ``last`` into ``model`` and ``opt``: the step and minutes it had reached, its faces'
    fingerprint (None when not recorded) and its recipe by option: --distractors (0 when not recorded:
    runs before distractors had none) and --batch-size (None when not recorded: not checked).
    ValueError naming the file when it is not this command's resumable state;
    ``option`` (``--init``): the file was given with it, and errors name the option, not ``--out``."""
    if option:  # another run's file: it is not in the way, it is the wrong one
        where, fix = f"{option} {last}", "give the last.pt of a train-detector run"
    else:
        where = str(last)
        fix = f"move it aside (e.g. mv {last} {last}.bad) to start afresh, or give --out a folder of its own"
    try:
        state = torch.load(last, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises RuntimeError, pickle and zip errors, EOFError: all one cause
        raise ValueError(f"{where}: cannot be read ({unreadable_reason(last, err)}); {fix}") from None
    if not isinstance(state, dict) or not RUN_STATE_KEYS <= state.keys():
        held = ", ".join(sorted(map(str, state))[:6]) if isinstance(state, dict) else type(state).__name__
        whose = "a keypoint model's checkpoint?" if isinstance(state, dict) and "card" in state else "another file?"
        raise ValueError(f"{where}: not a face-detector run's last.pt (it holds {held}; {whose}); {fix}")
    try:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        faces = state.get("faces")
        return (int(state["step"]), float(state["minutes"]), faces if isinstance(faces, dict) else None,
                {"--distractors": int(state.get("distractors", 0)),
                 "--batch-size": None if state.get("batch_size") is None else int(state["batch_size"])})
    except (RuntimeError, ValueError, KeyError, TypeError) as err:
        reason = str(err).strip().splitlines()[0][:200]
        raise ValueError(f"{where}: does not fit the face detector ({reason}); {fix}") from None


def _save(path: Path, model, opt, step: int, minutes: float, faces: dict, distractors: int,
          batch_size: int) -> None:
    with atomic_path(path) as tmp:
        torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "step": step, "minutes": minutes,
                    "faces": faces, "distractors": distractors, "batch_size": batch_size}, tmp)


def export_detector(model: FaceCenterNet, path: str | Path) -> Path:
    """ONNX with dynamic height and width (multiples of 16), for ``infer.detectors.CnnDetector``."""
    model = model.eval()
    with atomic_path(path) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(model, (torch.zeros(1, 3, *CANVAS),), str(tmp), dynamo=False, opset_version=17,
                          input_names=["image"], output_names=["heat", "size", "offset"],
                          dynamic_axes={"image": {0: "batch", 2: "height", 3: "width"}})
    return Path(path)
