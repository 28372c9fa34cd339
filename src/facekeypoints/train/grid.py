"""Run a folder of experiment configs to the end of their budgets, one after another, and keep a table.

``facekeypoints grid configs/seeds`` trains every config, scores each on its own person-disjoint
validation part as its training validated it (RMSE, MAE, NME; with mirror test-time augmentation
when its train.mirror_tta, recorded as the row's ``mirror_tta``) and records a row per finished run
in a results file (``results/seeds.json``, committed), with a Markdown table beside it. A config whose row is already
there, for the same config content, is skipped (one whose name or reference.* alone changed has its
row refreshed, not retrained); a run that was stopped, or finished with fewer train.epochs than now
asked for, resumes from its last.pt (as ``train --resume`` would); a stopped grid started again picks
up where it was. Grids sharing a results file (``--only`` in the background) each replace only their
own rows, re-reading the file under ``<results>.lock``. A run that ends with no best.pt (it diverged
before any finite validation score, or was never validated) is recorded as failed, with the reason
(``failed``, no scores), and the grid goes on with the next config; a later grid tries a failed
config again from scratch. An error before training (a run folder held by another training, data that
cannot be read) keeps the config's row of its last training, if any: a later grid resumes a finished
run, and still starts a failed one from scratch. ``--full`` trains the epoch counts the source reports used (their
``reference.epochs``), on the GPU when there is one, into separate run folders.

Examples
--------
>>> rows = [{"config": "000_simple_cnn", "model": "simple_cnn", "data": "70/30 by person, drop", "epochs": 200,
...          "minutes": 21.0, "device": "cpu", "rmse": 3.1, "mae": 2.2, "nme": 0.11, "measured": "", "differs": ""}]
>>> print(markdown_table(rows).splitlines()[2])
| `000_simple_cnn` | simple_cnn | 70/30 by person, drop | 200 | 21.0 | cpu | 3.100 | 2.200 | 11.0% |  |  |
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import re
import time
from pathlib import Path

from facekeypoints.atomic import WriteError, atomic_path, check_target
from facekeypoints.data.pipeline import DATA_PATH_KEYS
from facekeypoints.evaluate.runner import evaluate
from facekeypoints.models.checkpoint import load_checkpoint
from facekeypoints.train.config import Config, load_config, recipe_values
from facekeypoints.train.distill import check_teacher
from facekeypoints.train.folder_claim import check_unclaimed
from facekeypoints.train.loop import RESUMABLE_CHANGES, check_machine, check_run_folder, fit, flatten_settings

__all__ = ["run_grid", "markdown_table", "config_digest", "config_files", "GridRows"]

_COLUMNS = [("config", "run (config)"), ("model", "model"), ("data", "split, labels"), ("epochs", "epochs"),
            ("minutes", "train minutes"), ("device", "device"), ("rmse", "RMSE px"), ("mae", "MAE px"),
            ("nme", "NME"), ("measured", "the source measured"), ("differs", "what differs")]


def config_digest(cfg: Config) -> str:
    """A short hash of everything that shapes the result (the output folder aside)."""
    return _digest(cfg.to_dict())


def _digest(config: dict) -> str:
    """:func:`config_digest` of a config's plain values (``Config.to_dict()``, or a run's config.json)."""
    values = recipe_values(config)  # settings added later, at their defaults, leave old digests as they were
    values.pop("out_dir", None)
    return hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()[:12]


def config_files(folder: str | Path) -> list[Path]:
    """The .yaml/.yml configs of ``folder``, sorted; hidden files (``.x.yaml``, macOS's ``._x.yaml``
    beside a copied config) are no configs. A config file named on its own is read whatever its name."""
    return sorted(c for c in Path(folder).iterdir()
                  if c.suffix.lower() in (".yaml", ".yml") and not c.name.startswith("."))


def _describe_model(cfg: Config) -> str:
    pretrained = cfg.model.pretrained
    if cfg.model.name.endswith("_tl"):  # transfer-learning models: say where the weights came from
        return f"{cfg.model.name} ({'ImageNet, ' + Path(str(pretrained)).name if pretrained else 'from scratch'})"
    stem = cfg.model.options.get("stem_stride")
    return f"{cfg.model.name} (stem stride {stem})" if stem else cfg.model.name


def _describe_data(cfg: Config, by_person: bool) -> str:
    """The split as it was made: by person only when every face had a person (the run's data report)."""
    split = cfg.data.split if isinstance(cfg.data.split, str) else "/".join(f"{round(100 * r)}" for r in cfg.data.split)
    how = "by person" if by_person else "random rows"
    return f"{split} {how}, {cfg.data.missing}" + (" + completed" if cfg.data.complete_labels else "")


def _changes(old: dict, new: dict) -> dict:
    """The settings two configs' plain values differ in: {"train.lr": (old, new)}."""
    old, new = flatten_settings(recipe_values(old)), flatten_settings(recipe_values(new))
    return {k: (old.get(k), new.get(k)) for k in sorted(old.keys() | new.keys()) if old.get(k) != new.get(k)}


def _shown(changes: dict) -> str:
    return ", ".join(f"{k} {a!r} -> {b!r}" for k, (a, b) in list(changes.items())[:3]) + (", ..." if len(changes) > 3 else "")


def _recover(path: Path) -> str:
    return f"; repair it, or move it aside (e.g. mv {path} {path}.bad) and run again"


def _trained_config(out: Path) -> dict:
    """The config a stopped run in ``out`` was trained with (its config.json), or ValueError naming the file."""
    path = out / "config.json"
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"{path}: missing beside {out / 'last.pt'}, so the stopped run cannot be matched to its "
                         f"config{_recover(out)}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: damaged, not JSON ({err}){_recover(out)}") from None
    if not isinstance(saved, dict) or not isinstance(saved.get("config"), dict):
        raise ValueError(f"{path}: damaged, expected an object with a 'config' object{_recover(out)}")
    return saved["config"]


class GridRows(list):
    """The rows :func:`run_grid` returns (every row of the results file), with ``failed``: the
    configs that failed in this call, as "name: why" lines (their rows carry ``failed`` too)."""

    def __init__(self, rows=(), failed=()):
        super().__init__(rows)
        self.failed = list(failed)


def _no_best_reason(summary: dict, out: Path) -> str:
    """Why a finished run left no best.pt: the run's own stop reason, in words."""
    epochs = summary.get("epochs")
    if summary["stop_reason"] == "diverged":
        return (f"diverged: the training loss became NaN or infinite in epoch {epochs}, before any epoch had a "
                f"finite validation score, so there is no best.pt to score (lower train.lr)")
    validated = _validated_epochs(out / "metrics.csv")
    count = f"{epochs} epoch{'' if epochs == 1 else 's'}"
    stop = {"epochs": f"ran its {count}", "early_stopping": f"stopped early (train.patience) after {count}",
            "time_limit": f"hit train.time_limit_min after {count}"}.get(
        summary["stop_reason"], f"stopped ({summary['stop_reason']}) after {count}")
    if validated:
        which = "its one validation" if validated == 1 else f"all {validated} of its validations"
        return (f"no finite validation score: the run {stop} and {which} gave a NaN or infinite RMSE, so there is "
                "no best.pt to score")
    return (f"never validated: the run {stop} before its first validation (every train.log_every epochs), so there "
            "is no best.pt to score")


def _validated_epochs(metrics: Path) -> int:
    """How many epochs of metrics.csv have a validation RMSE (0 when it cannot be read)."""
    import csv

    try:
        with open(metrics, newline="", encoding="utf-8") as f:
            return sum(1 for row in csv.DictReader(f) if (row.get("val_rmse") or "").strip())
    except (OSError, UnicodeDecodeError, csv.Error):
        return 0


def _failed_row(cfg: Config, summary: dict, reason: str) -> dict:
    """The row of a run that ended with nothing to score: no scores, and ``failed`` saying why."""
    return {"config": cfg.name or Path(cfg.out_dir).name, "model": _describe_model(cfg),
            "data": _describe_data(cfg, summary["data"]["by_person"]), "epochs": summary["epochs"],
            "minutes": summary["minutes"], "device": summary["device"], "rmse": None, "mae": None, "nme": None,
            "best_epoch": None, "stop_reason": summary["stop_reason"], "failed": reason,
            "measured": cfg.reference.measured, "differs": cfg.reference.differs, "source": cfg.reference.source,
            "digest": config_digest(cfg), "finished": time.strftime("%Y-%m-%d %H:%M")}


def _error_row(cfg: Config, reason: str) -> dict:
    """The row of a run that stopped on an error before it had anything to score (its data could not be
    read or split): no scores, and ``failed`` saying why (the config path first)."""
    split = cfg.data.split if isinstance(cfg.data.split, str) else "/".join(f"{round(100 * r)}" for r in cfg.data.split)
    return {"config": cfg.name or Path(cfg.out_dir).name, "model": _describe_model(cfg),
            "data": f"{split}, {cfg.data.missing}" + (" + completed" if cfg.data.complete_labels else ""),
            "epochs": 0, "minutes": 0.0, "device": cfg.train.device, "rmse": None, "mae": None, "nme": None,
            "best_epoch": None, "stop_reason": "error", "failed": reason,
            "measured": cfg.reference.measured, "differs": cfg.reference.differs, "source": cfg.reference.source,
            "digest": config_digest(cfg), "finished": time.strftime("%Y-%m-%d %H:%M")}


def _error_reason(cfg: Config, path: str | Path, err: Exception) -> str:
    """``err`` as one line naming the config file, and data.train when the error is about its data."""
    text = str(err)
    train = str(cfg.data.train)
    if text.startswith(f"{train}:"):
        return f"{path}: data.train {text}"
    if text.startswith(str(path)):
        return text
    if text.startswith(str(Path(cfg.out_dir))):  # about the run folder (its last.pt, its lock), not the data
        return f"{path}: {text}"
    # about the data's content: whole words, so that "facekeypoints" or a folder runs/faces_split is no match
    if re.search(r"\b(split|samples|faces|keypoints?)\b", text):
        return f"{path}: data.train {train}: {text}"
    return f"{path}: {text}"


def _run_one(cfg: Config, progress: bool, echo, failed_before: str | None = None) -> dict:
    """Train (or resume) one config and score it: its row (with ``failed`` when it left no best.pt).
    KeyboardInterrupt when training was interrupted (last.pt saved), so that the grid stops and says
    so with its exit code. A config that failed before (``failed_before``) starts afresh: its last.pt
    (NaN weights, or a run spent without a validation) is not worth continuing."""
    out = Path(cfg.out_dir)
    # a folder another live training holds is neither read nor moved aside from under it: this row fails,
    # naming the folder and that training's pid, as when fit itself meets the claim
    check_unclaimed(out)
    resume = (out / "last.pt").is_file() and not failed_before
    if failed_before:
        echo(f"  it failed before ({failed_before.split(':')[0]}): starting it afresh")
    changed = _changes(_trained_config(out), cfg.to_dict()) if resume else {}
    # what `train --resume` lets change (how long, where, the name and reference columns) resumes; a run
    # already trained past the epochs now asked for cannot be cut back to them
    recipe = {k: v for k, v in changed.items() if not k.startswith(RESUMABLE_CHANGES)}
    if "train.epochs" in changed and (changed["train.epochs"][0] or 0) > cfg.train.epochs \
            and _epochs_done(out / "last.pt") > cfg.train.epochs:  # fewer than asked for before, but not yet done
        recipe["train.epochs"] = changed["train.epochs"]
    if recipe:
        stale = out.with_name(f"{out.name}.stale-{time.strftime('%Y%m%d-%H%M%S')}")
        out.rename(stale)  # another recipe trained there: keep it, start this one afresh
        echo(f"  {out} held a run of a different config ({_shown(recipe)}): moved to {stale}")
        resume = False
    echo(f"  {'resuming' if resume else 'starting'} {out}" + (f" ({_shown(changed)})" if resume and changed else ""))
    # resumed under a new name: the run's row under its old name goes when this one is saved (one row per run)
    renamed = {"renamed_from": changed["name"][0], "renamed_digest": _digest(_trained_config(out))} \
        if resume and "name" in changed and changed["name"][0] else {}
    summary = fit(cfg, resume=resume, progress=progress, overwrite=not resume)  # the grid owns its run folders
    if summary["stop_reason"] == "interrupted":
        echo(f"{cfg.name}: interrupted; run the same command again to resume")
        raise KeyboardInterrupt(f"{cfg.name}: interrupted")
    if not (out / "best.pt").is_file():  # nothing to score: the run's own reason, not "no such model file"
        return {**_failed_row(cfg, summary, _no_best_reason(summary, out)), **renamed}
    # scored as training validated it (train.mirror_tta), so the row's RMSE is the run's best_val_rmse
    mirror = cfg.train.mirror_tta
    scores = evaluate(out / "best.pt", None, split="val", device=summary["device"], mirror_tta=mirror)
    # a 3-ratio data.split holds a test part out: scored too, as the source's test figures were measured
    test = evaluate(out / "best.pt", None, split="test", device=summary["device"], mirror_tta=mirror) \
        if "test" in summary["data"] else {}
    return {"config": cfg.name or out.name, "model": _describe_model(cfg),
            "data": _describe_data(cfg, summary["data"]["by_person"]),
            "epochs": summary["epochs"], "minutes": summary["minutes"], "device": summary["device"],
            "rmse": scores["rmse"], "mae": scores["mae"], "nme": scores["nme"], "mirror_tta": mirror,
            "best_epoch": summary["best_epoch"],
            **{f"test_{key}": test[key] for key in ("rmse", "mae", "nme") if test},
            "stop_reason": summary["stop_reason"], "measured": cfg.reference.measured,
            "differs": cfg.reference.differs, "source": cfg.reference.source, "digest": config_digest(cfg),
            "finished": time.strftime("%Y-%m-%d %H:%M"), **renamed}


def _epochs_done(last: Path) -> int:
    """The epochs the run of ``last`` has finished (its training state), as `train --resume` counts them."""
    state = load_checkpoint(last, mmap=True).training.get("train_state")
    return int(state.get("epoch") or 0) if isinstance(state, dict) else 0


# a row's fields the grid reads back (skip check, table); the rest are written for people. A failed
# run's row has a "failed" reason instead of scores (null)
_ROW_FIELDS = {"config": str, "digest": str, "finished": str, "rmse": (int, float), "mae": (int, float),
               "nme": (int, float)}
_FAILED_ROW_FIELDS = {"config": str, "digest": str, "finished": str, "failed": str}


def _read_rows(results: Path) -> list[dict]:
    """The rows already in ``results`` ([] when there is none yet). A damaged file is an error naming
    it, never overwritten: its rows are finished runs that took hours."""
    if not results.is_file():
        return []
    try:
        rows = json.loads(results.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{results}: not a grid results file (not JSON: {err}){_recover(results)}") from None
    if not isinstance(rows, list):
        raise ValueError(f"{results}: not a grid results file (a JSON {type(rows).__name__}, expected a list of "
                         f"rows){_recover(results)}")
    for i, row in enumerate(rows, 1):
        fields = _FAILED_ROW_FIELDS if isinstance(row, dict) and row.get("failed") else _ROW_FIELDS
        wrong = [key for key, kind in fields.items()
                 if not isinstance(row, dict) or not isinstance(row.get(key), kind)]
        if wrong:
            raise ValueError(f"{results}: row {i} has no valid {', '.join(repr(k) for k in wrong)} "
                             f"(expected {', '.join(_ROW_FIELDS)}){_recover(results)}")
    return rows


def _check_outputs(results: Path) -> None:
    """The results file and its table beside it, checked before anything trains: a results file that is
    not .json would be its own table (``res.md``: every row overwritten by the Markdown)."""
    if results.suffix.lower() != ".json":
        raise ValueError(f"{results}: the grid's results file is JSON and its table goes beside it as .md; "
                         f"name it *.json (e.g. {results.with_suffix('.json')})")
    check_target(results)
    check_target(results.with_suffix(".md"))


def _load_all(configs: list[str | Path], full: bool) -> list[Config]:
    """Every config loaded and checked before any trains, so a broken one stops the grid at once, not
    hours later after the ones before it; two configs sharing a name or run folder are refused (one
    row would hold either, and both would retrain on every grid run)."""
    loaded, seen = [], {}
    for path in configs:
        cfg = load_config(path, empty_hint="move it out of the grid's folder of configs")
        cfg.name = cfg.name or Path(path).stem
        if cfg.reference.epochs < 0:
            raise ValueError(f"{path}: reference.epochs must be 0 (not given) or more, got {cfg.reference.epochs}")
        if full:
            if not cfg.reference.epochs:
                raise ValueError(f"{path}: reference.epochs is not set, so --full has no epoch count for it")
            # replace() runs TrainConfig's own checks on the new epoch count
            cfg.train = dataclasses.replace(cfg.train, epochs=cfg.reference.epochs, device="auto")
            cfg.name, cfg.out_dir = f"{cfg.name}_full", _full_dir(cfg.out_dir, path)
        folder = str(Path(os.path.expanduser(cfg.out_dir)).resolve())
        for kind, key in (("name", cfg.name), ("run folder (out_dir)", folder)):
            if (kind, key) in seen:
                raise ValueError(f"{seen[kind, key]} and {path} have the same {kind} {key!r}; give each config its own")
            seen[kind, key] = path
        loaded.append(cfg)
    return loaded


def _full_dir(out_dir: str, path: str | Path) -> str:
    """The --full run folder beside ``out_dir``: runs/a -> runs/a_full, also for runs/a/ (not runs/a/_full,
    inside the normal run's folder)."""
    out = Path(out_dir)
    if out.name in ("", ".."):  # ".", a path ending in "..", or the root: name it by the folder it is
        out = Path(os.path.expanduser(out)).resolve()
        if not out.name:
            raise ValueError(f"{path}: out_dir {out_dir!r} has no folder name to add _full to; give out_dir a "
                             "folder of its own")
    return str(out.with_name(f"{out.name}_full"))


def _check_inputs(cfg: Config, path: str | Path) -> None:
    """A pending run's data files exist and its stopped run (if any) can be read: checked for every
    config before the first trains."""
    for key in DATA_PATH_KEYS:
        value = getattr(cfg.data, key)
        if value is not None and not Path(os.path.expanduser(value)).exists():
            raise ValueError(f"{path}: data.{key} {value}: no such file or folder")
    if isinstance(cfg.model.pretrained, str) and not Path(cfg.model.pretrained).is_file():  # true downloads
        raise ValueError(f"{path}: model.pretrained {cfg.model.pretrained}: no such file")
    try:
        check_run_folder(Path(cfg.out_dir))  # out_dir /, ~ or . refused before another config trains
        check_machine(cfg.train)  # a device or precision this machine lacks, before another config trains
        if cfg.train.teacher:
            check_teacher(cfg.train.teacher, Path(cfg.out_dir))
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from None
    if (Path(cfg.out_dir) / "last.pt").is_file():
        _trained_config(Path(cfg.out_dir))


def _finished(rows: list[dict], cfg: Config) -> list[dict]:
    """The row of ``cfg`` if it ran to the end with this very config (empty otherwise; a failed run's
    row does not count: the grid tries it again)."""
    return [r for r in rows if r["config"] == cfg.name and r["digest"] == config_digest(cfg) and not r.get("failed")]


# a row whose run differs from its config only in these is refreshed, not retrained: they change no training
_COSMETIC = ("name", "reference.")


def _refreshed(rows: list[dict], cfg: Config) -> dict | None:
    """``cfg``'s finished row with its reference columns and digest brought up to date, when only
    name or reference.* changed since its run (None otherwise). The run's config.json must be the
    very config the row's scores came from (its digest, or the row's ``run_digest`` once refreshed)."""
    row = next((r for r in rows if r["config"] == cfg.name and not r.get("failed")), None)
    try:
        saved = _trained_config(Path(cfg.out_dir))
    except (ValueError, OSError):  # no run folder, or no readable config.json: nothing to vouch for the row
        return None
    run_digest = _digest(saved)
    if row is None:  # renamed: the row of this very run folder's run, under its old name
        row = next((r for r in rows if not r.get("failed") and r.get("run_digest", r["digest"]) == run_digest), None)
    if row is None:
        return None
    if row.get("run_digest", row["digest"]) != run_digest \
            or any(not k.startswith(_COSMETIC) for k in _changes(saved, cfg.to_dict())):
        return None
    ref = cfg.reference
    return {**row, "config": cfg.name, "measured": ref.measured, "differs": ref.differs, "source": ref.source,
            "digest": config_digest(cfg), "run_digest": run_digest, "renamed_from": row["config"]}


def _failed_before(rows: list[dict], cfg: Config) -> str | None:
    """The reason recorded for ``cfg`` when its last try, with this very config, failed; or when it
    diverged with any config (its last.pt holds NaN weights: more epochs would not resume it). An error
    row does not count: it stopped before training (a locked folder, unreadable data), so its run
    folder holds what was trained before, which the next try resumes."""
    return next((r["failed"] for r in rows if r["config"] == cfg.name and r.get("failed")
                 and r.get("stop_reason") != "error"
                 and (r["digest"] == config_digest(cfg) or r.get("stop_reason") == "diverged")), None)


def _write_rows(results: Path, rows: list[dict]) -> None:
    with atomic_path(results) as tmp:  # a kill mid-write keeps the previous rows
        tmp.write_text(json.dumps(rows, indent=2) + "\n")
    _write_table(results, rows)


def _write_table(results: Path, rows: list[dict]) -> None:
    with atomic_path(results.with_suffix(".md")) as tmp:
        tmp.write_text(markdown_table(rows) + "\n")


@contextlib.contextmanager
def _locked(results: Path):
    """``<results>.lock`` held: two grids on one results file (``--only`` in the background) take turns."""
    try:
        import fcntl
    except ImportError:  # Windows: no flock; run one grid per results file there
        yield
        return
    with open(results.with_name(results.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        yield


def _save_row(results: Path, row: dict) -> list[dict]:
    """Put ``row`` into ``results`` as it is on disk now (another grid may have added rows since this
    one read it): only this config's row is replaced (and, for a renamed config, its run's row: the
    row of the run whose config digest is ``renamed_digest`` when given, else the row named ``renamed_from``).
    Returns every row."""
    old, old_digest = row.pop("renamed_from", row["config"]), row.pop("renamed_digest", None)

    def replaced(r: dict) -> bool:
        if r["config"] == row["config"]:
            return True
        # by the run's digest, not its old name: a row refreshed under a newer name (config.json still
        # holds the first one) is the same run's, and another run's row of the old name is not
        return r.get("run_digest", r["digest"]) == old_digest if old_digest else r["config"] == old

    with _locked(results):
        rows = [r for r in _read_rows(results) if not replaced(r)] + [row]
        _write_rows(results, rows)
    return rows


def run_grid(configs: list[str | Path], results: str | Path, *, full: bool = False, progress: bool = True,
             echo=print) -> GridRows:
    """Run every config not yet in ``results`` (JSON list of rows); returns all rows (a list whose
    ``failed`` names the configs that failed in this call).

    Rows are written after each run, with ``<results>.md`` (the Markdown table) beside them; the
    table is written again at the end, so it is there when every config was done before. Every
    config, the results file and each pending run's data are checked before the first run trains
    (ValueError naming the file). A run stopped by SIGINT/SIGTERM raises KeyboardInterrupt after its
    last.pt is saved: the same call continues it. A run that ends with no best.pt to score (it
    diverged, or was never validated) is recorded as a failed row saying why, and the grid goes on.
    """
    results = Path(results)
    _check_outputs(results)
    rows = _read_rows(results)
    cfgs = _load_all(configs, full)
    for path, cfg in zip(configs, cfgs):
        if not _finished(rows, cfg):
            _check_inputs(cfg, path)
    failed = []
    for path, cfg in zip(configs, cfgs):
        rows = _read_rows(results)  # as on disk now: another grid on this file may have run it meanwhile
        if done := _finished(rows, cfg):
            echo(f"{cfg.name}: done ({done[0]['finished']}), RMSE {done[0]['rmse']:.3f}")
            continue
        if row := _refreshed(rows, cfg):
            rows = _save_row(results, row)
            echo(f"{cfg.name}: done ({row['finished']}), RMSE {row['rmse']:.3f}; only its name or reference.* changed "
                 "since: row refreshed, not retrained")
            continue
        echo(f"{cfg.name}: {cfg.model.name}, {cfg.train.epochs} epochs")
        try:
            row = _run_one(cfg, progress, echo, _failed_before(rows, cfg))
        except WriteError:  # a full disk or the like: every later config would fail alike
            raise
        except (ValueError, OSError) as err:  # this config's data cannot be read or split: record it, go on
            row = _error_row(cfg, _error_reason(cfg, path, err))
        if row.get("stop_reason") == "error" and any(r["config"] == cfg.name and r.get("stop_reason") != "error"
                                                     for r in rows):
            # the row of the last training stays (finished, or failed: a diverged run's row is what makes the
            # next grid start it afresh): an error before training (a locked folder, an unreadable mount) took
            # nothing from its run
            failed.append(f"{cfg.name}: {row['failed']}")
            echo(f"{cfg.name}: failed, {row['failed']} (its previous row is kept; going on with the other configs)")
            continue
        rows = _save_row(results, row)
        if row.get("failed"):
            failed.append(f"{cfg.name}: {row['failed']}")
            echo(f"{cfg.name}: failed, {row['failed']} (recorded; going on with the other configs)")
            continue
        echo(f"{cfg.name}: RMSE {row['rmse']:.3f}, MAE {row['mae']:.3f}, NME {_cell('nme', row.get('nme'))} in "
             f"{row['minutes']} min")
    with _locked(results):  # the table, also when no row changed (every config done): the grid names it
        rows = _read_rows(results)
        _write_table(results, rows)
    return GridRows(rows, failed)


def _cell(key: str, value) -> str:
    """One value as the table (and the grid's progress line) shows it."""
    if key in ("rmse", "mae", "nme") and (value is None or not value == value):  # NaN: undefined (one keypoint
        return "-"  # has no NME); None: a failed run, which has no scores
    if key in ("rmse", "mae"):
        return f"{value:.3f}"
    return f"{value:.1%}" if key == "nme" else str(value).replace("|", "/")


def markdown_table(rows: list[dict]) -> str:
    """The results as a Markdown table, one row per run, in config order."""
    lines = ["| " + " | ".join(title for _, title in _COLUMNS) + " |",
             "|" + "|".join("---:" if key in ("epochs", "minutes", "rmse", "mae", "nme") else "---"
                            for key, _ in _COLUMNS) + "|"]
    for row in sorted(rows, key=lambda r: r["config"]):
        # a "|" splits a cell even inside a code span: the name escaped as every other column is
        values = [f"`{_cell(key, row['config'])}`" if key == "config" else _cell(key, row.get(key, ""))
                  for key, _ in _COLUMNS]
        if row.get("failed"):  # in the RMSE column, where its score would be: "failed (diverged)"
            why = "error" if row.get("stop_reason") == "error" else str(row["failed"]).split(":")[0].replace("|", "/")
            values[[key for key, _ in _COLUMNS].index("rmse")] = f"failed ({why})"
        lines.append("| " + " | ".join(values) + " |")
    return "\n".join(lines)
