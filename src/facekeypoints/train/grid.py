"""Run a folder of experiment configs to the end of their budgets, one after another, and keep a table.

``facekeypoints grid configs/seeds`` trains every config, scores each on its own person-disjoint
validation part (single pass: RMSE, MAE, NME) and records a row per finished run in a results file
(``results/seeds.json``, committed), with a Markdown table beside it. A config whose row is already
there, for the same config content, is skipped; a run that was stopped resumes from its last.pt;
a stopped grid started again picks up where it was. ``--full`` trains the epoch counts the source
reports used (their ``reference.epochs``), on the GPU when there is one, into separate run folders.

Examples
--------
>>> rows = [{"config": "000_simple_cnn", "model": "simple_cnn", "data": "70/30 by person, drop", "epochs": 200,
...          "minutes": 21.0, "device": "cpu", "rmse": 3.1, "mae": 2.2, "nme": 0.11, "measured": "", "differs": ""}]
>>> print(markdown_table(rows).splitlines()[2])
| `000_simple_cnn` | simple_cnn | 70/30 by person, drop | 200 | 21.0 | cpu | 3.100 | 2.200 | 11.0% |  |  |
"""
from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

from facekeypoints.evaluate.runner import evaluate
from facekeypoints.train.config import Config, load_config
from facekeypoints.train.loop import fit

__all__ = ["run_grid", "markdown_table", "config_digest"]

_COLUMNS = [("config", "run (config)"), ("model", "model"), ("data", "split, labels"), ("epochs", "epochs"),
            ("minutes", "train minutes"), ("device", "device"), ("rmse", "RMSE px"), ("mae", "MAE px"),
            ("nme", "NME"), ("measured", "the source measured"), ("differs", "what differs")]


def config_digest(cfg: Config) -> str:
    """A short hash of everything that shapes the result (the output folder aside)."""
    values = cfg.to_dict()
    values.pop("out_dir")
    return hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()[:12]


def _describe_model(cfg: Config) -> str:
    pretrained = cfg.model.pretrained
    if cfg.model.name.endswith("_tl"):  # transfer-learning models: say where the weights came from
        return f"{cfg.model.name} ({'ImageNet, ' + Path(str(pretrained)).name if pretrained else 'from scratch'})"
    stem = cfg.model.options.get("stem_stride")
    return f"{cfg.model.name} (stem stride {stem})" if stem else cfg.model.name


def _describe_data(cfg: Config) -> str:
    split = cfg.data.split if isinstance(cfg.data.split, str) else "/".join(f"{round(100 * r)}" for r in cfg.data.split)
    return f"{split} by person, {cfg.data.missing}" + (" + completed" if cfg.data.complete_labels else "")


def _run_one(cfg: Config, progress: bool, echo) -> dict | None:
    """Train (or resume) one config and score it; None when training was interrupted."""
    out = Path(cfg.out_dir)
    resume = (out / "last.pt").is_file()
    if resume and json.loads((out / "config.json").read_text())["config"] != cfg.to_dict():
        stale = out.with_name(f"{out.name}.stale-{time.strftime('%Y%m%d-%H%M%S')}")
        out.rename(stale)  # another recipe trained there: keep it, start this one afresh
        echo(f"  {out} held a run of a different config: moved to {stale}")
        resume = False
    echo(f"  {'resuming' if resume else 'starting'} {out}")
    summary = fit(cfg, resume=resume, progress=progress)
    if summary["stop_reason"] == "interrupted":
        return None
    scores = evaluate(out / "best.pt", None, split="val", device=summary["device"])
    return {"config": cfg.name or out.name, "model": _describe_model(cfg), "data": _describe_data(cfg),
            "epochs": summary["epochs"], "minutes": summary["minutes"], "device": summary["device"],
            "rmse": scores["rmse"], "mae": scores["mae"], "nme": scores["nme"], "best_epoch": summary["best_epoch"],
            "stop_reason": summary["stop_reason"], "measured": cfg.reference.measured,
            "differs": cfg.reference.differs, "source": cfg.reference.source, "digest": config_digest(cfg),
            "finished": time.strftime("%Y-%m-%d %H:%M")}


def run_grid(configs: list[str | Path], results: str | Path, *, full: bool = False, progress: bool = True,
             echo=print) -> list[dict]:
    """Run every config not yet in ``results`` (JSON list of rows); returns all rows.

    Rows are written after each run, with ``<results>.md`` (the Markdown table) beside them.
    """
    results = Path(results)
    rows = json.loads(results.read_text()) if results.is_file() else []
    for path in configs:
        cfg = load_config(path)
        cfg.name = cfg.name or Path(path).stem
        if full:
            if not cfg.reference.epochs:
                raise ValueError(f"{path}: reference.epochs is not set, so --full has no epoch count for it")
            cfg.train.epochs, cfg.train.device = cfg.reference.epochs, "auto"
            cfg.name, cfg.out_dir = f"{cfg.name}_full", f"{cfg.out_dir}_full"
        done = [r for r in rows if r["config"] == cfg.name and r["digest"] == config_digest(cfg)]
        if done:
            echo(f"{cfg.name}: done ({done[0]['finished']}), RMSE {done[0]['rmse']:.3f}")
            continue
        echo(f"{cfg.name}: {cfg.model.name}, {cfg.train.epochs} epochs")
        row = _run_one(cfg, progress, echo)
        if row is None:
            echo(f"{cfg.name}: interrupted; run the same command again to resume")
            break
        rows = [r for r in rows if r["config"] != cfg.name] + [row]
        results.parent.mkdir(parents=True, exist_ok=True)
        results.write_text(json.dumps(rows, indent=2) + "\n")
        results.with_suffix(".md").write_text(markdown_table(rows) + "\n")
        echo(f"{cfg.name}: RMSE {row['rmse']:.3f}, MAE {row['mae']:.3f}, NME {row['nme']:.1%} in {row['minutes']} min")
    return rows


def markdown_table(rows: list[dict]) -> str:
    """The results as a Markdown table, one row per run, in config order."""
    def cell(key, value):
        if key in ("rmse", "mae", "nme") and not value == value:  # NaN: undefined (one keypoint has no NME)
            return "-"
        if key in ("rmse", "mae"):
            return f"{value:.3f}"
        return f"{value:.1%}" if key == "nme" else str(value).replace("|", "/")

    lines = ["| " + " | ".join(title for _, title in _COLUMNS) + " |",
             "|" + "|".join("---:" if key in ("epochs", "minutes", "rmse", "mae", "nme") else "---"
                            for key, _ in _COLUMNS) + "|"]
    for row in sorted(rows, key=lambda r: r["config"]):
        values = [f"`{row['config']}`" if key == "config" else cell(key, row.get(key, "")) for key, _ in _COLUMNS]
        lines.append("| " + " | ".join(values) + " |")
    return "\n".join(lines)
