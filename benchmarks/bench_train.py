"""Accuracy per CPU minute: train recipes on fkd15-ytf (person-disjoint split) over several seeds
and print validation RMSE against training minutes, as mean and spread over the seeds.

    python benchmarks/bench_train.py                                   # default recipe vs seed 000 simple CNN
    python benchmarks/bench_train.py --configs configs/default.yaml --minutes 30 --json bench_train.json
    python benchmarks/bench_train.py --configs configs/default.yaml --seeds 0 1 2 --jobs 2 \\
        --variant base:train.label_offset=false --variant offset:train.label_offset=true --set train.epochs=60

Each run is a normal `facekeypoints train` run (runs/bench_<config>_<variant>_s<seed>/), capped by
--minutes of training; a finished run is read back, not retrained, so an interrupted benchmark resumes
where it stopped (--fresh retrains; a killed benchmark stops its training runs too, which save first once they train). Its summary.json records its settings' digest: a folder holding a
run of other settings (an edited config, other --set or --minutes) is refused, naming what differs;
move it away or give the new settings another --variant name. With --jobs N, N runs train at once, one
torch thread each unless --set train.num_threads says otherwise.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from multiprocessing import get_context
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "fkd15-ytf" / "training.zip"


def _variant(text: str) -> tuple[str, list[str]]:
    """``name[:key=value;key=value]`` -> (name, overrides); ';' separates settings (a value may hold
    commas, e.g. data.split=[0.5, 0.5]); a ',' between settings is read as ';' outside brackets, braces
    and quotes (train.loss_params={w: 0.1, epsilon: 0.02}, name="a,b")."""
    name, _, sets = text.partition(":")
    if not name or not name.replace("_", "").replace("-", "").isalnum():
        raise argparse.ArgumentTypeError(f"--variant {text!r}: give a name of letters, digits, - and _, "
                                         "e.g. offset:train.label_offset=true")
    parts, depth, quote, current = [], 0, "", ""
    for ch in sets:
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"" and current.rstrip()[-1:] in ("=", "[", "{", ",", ":"):  # YAML quotes a value (bob's is none)
            quote = ch
        else:
            depth += (ch in "[{") - (ch in "]}")
        if not quote and (ch == ";" or (ch == "," and depth == 0)):
            parts.append(current)
            current = ""
        else:
            current += ch
    parts.append(current)
    overrides = [p.strip() for p in parts if p.strip()]
    bad = [o for o in overrides if "=" not in o]
    if bad:
        raise argparse.ArgumentTypeError(f"--variant {text!r}: {bad[0]!r} is not key=value")
    return name, overrides


def _stop_with(parent: int) -> None:
    """Pool initializer: the worker gets SIGTERM when the benchmark process ends (killed, or stopped by
    `timeout`), as Ctrl-C in a terminal stops both. Its training then saves and stops, and the next
    benchmark resumes it; without this it trained on, orphaned and unseen, beside the next one. Linux only
    (prctl); elsewhere workers outlive a killed benchmark as before."""
    import ctypes
    import signal

    try:
        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # 1: PR_SET_PDEATHSIG
    except (AttributeError, OSError):
        return
    if os.getppid() != parent:  # the benchmark ended before the line above
        os.kill(os.getpid(), signal.SIGTERM)


def _one_run(path: str, variant: str, overrides: list[str], seed: int, minutes: float, fresh: bool) -> dict:
    """Train (or read back) one run; returns its summary and curve."""
    import torch

    from facekeypoints.train.grid import config_digest
    from facekeypoints.train.loop import fit

    cfg = _run_config(path, [*overrides, f"train.seed={seed}", f"train.time_limit_min={minutes}"])
    # what the run learns, recorded in its summary.json: the config's content and overrides (not where the
    # file lies: a moved checkout keeps its runs); threads change the speed, not what is learnt
    digest = config_digest(replace(cfg, train=replace(cfg.train, num_threads=0)))
    cfg.out_dir = str(ROOT / "runs" / f"bench_{_run_name(cfg, path)}_{variant}_s{seed}")
    done = Path(cfg.out_dir) / "summary.json"
    if not fresh:
        result = _check_recipe(Path(cfg.out_dir), cfg, digest)
        if result is not None:
            return result
    start = time.perf_counter()
    resume = (Path(cfg.out_dir) / "last.pt").is_file() and not fresh
    summary = fit(cfg, resume=resume, progress=False, overwrite=not resume)  # the benchmark owns its run folders
    if summary["stop_reason"] == "interrupted":
        raise SystemExit(f"{cfg.out_dir}: interrupted; run the benchmark again to resume")
    with open(Path(cfg.out_dir) / "metrics.csv") as f:
        history = [{k: float(v) for k, v in row.items() if v} for row in csv.DictReader(f)]
    result = {"config": path, "config_digest": digest, "variant": variant,
              "overrides": overrides, "minutes": minutes, "seed": seed,
              "summary": summary,
              "curve": history, "wall_minutes": (time.perf_counter() - start) / 60,
              "threads": torch.get_num_threads(), "load_average": os.getloadavg()[0]}
    from facekeypoints.atomic import atomic_path

    with atomic_path(done) as tmp:
        tmp.write_text(json.dumps(result, indent=2, default=str))
    return result


def _run_config(path: str, overrides: list[str]):
    from facekeypoints.train.config import load_config

    return load_config(ROOT / path, overrides)


def _run_name(cfg, path: str) -> str:
    """The config's part of its run folders' names: its name, or its file's stem."""
    return cfg.name or Path(path).stem


def _check_recipe(out: Path, cfg, digest: str) -> dict | None:
    """The finished run in ``out`` if it is of these settings (or from a bench_train that recorded no
    digest: reused as before); None when there is none, or a partial run of these settings to resume.
    A finished or partial run of other settings is refused, naming what differs: its results would be
    given as these settings'."""
    from facekeypoints.train.loop import recipe_changes

    done, saved = out / "summary.json", out / "config.json"
    result = None
    if done.is_file():
        try:
            result = json.loads(done.read_text())
            if not isinstance(result, dict):
                raise ValueError("not a JSON object")
        except ValueError as err:
            raise SystemExit(f"{done}: damaged ({err}); delete it (or run with --fresh) to retrain that run")
        if result.get("config_digest") in (None, digest):
            return result
    elif not (out / "last.pt").is_file():
        return None
    try:
        changed = recipe_changes(json.loads(saved.read_text())["config"], cfg,
                                 ("out_dir", "train.num_threads", "name", "reference."))
    except (OSError, ValueError, KeyError, TypeError):  # no readable config.json: the digests say it
        changed = []
    if result is None and not changed:
        return None  # a partial run of these settings: resumed (fit checks its last.pt)
    what = ", ".join(changed[:4]) if changed else f"config digest {result['config_digest']}, now {digest}"
    raise SystemExit(f"{out}: holds a run of other settings ({what}); move that folder away, or give these settings "
                     "another --variant name")


def _check_names(ap, configs: list[str], sets: list[str]) -> None:
    """Two configs of one name would train into the same run folders: refused before any training."""
    named: dict[str, str] = {}
    for path in configs:
        try:
            name = _run_name(_run_config(path, sets), path)
        except ValueError as err:
            ap.error(f"--configs {path}: {err}")
        if name in named:
            ap.error(f"--configs {named[name]} and {path} are both named {name!r}: their runs would share the folders "
                     f"runs/bench_{name}_<variant>_s<seed>; set another name: in one of them")
        named[name] = path


def _check_output(ap, path: str) -> None:
    from facekeypoints.atomic import check_target

    try:
        check_target(path)
    except ValueError as err:
        ap.error(str(err))


def _spread(values: list[float]) -> str:
    if not values:
        return "-"
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.3f} ± {sd:.3f}"


def _report(results: list[dict]) -> None:
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in results:
        groups.setdefault((r["config"], r["variant"]), []).append(r)
    print(f"\n{'config':28s} {'variant':12s} {'seeds':>5s} {'best val RMSE':>15s} {'last val RMSE':>15s} "
          f"{'best epoch':>10s} {'minutes':>8s}")
    for (path, variant), runs in groups.items():
        best = [r["summary"]["best_val_rmse"] for r in runs if r["summary"]["best_val_rmse"] is not None]
        last = [r["curve"][-1]["val_rmse"] for r in runs if "val_rmse" in r["curve"][-1]]
        epochs = [r["summary"]["best_epoch"] for r in runs if r["summary"]["best_epoch"] is not None] or [0]
        minutes = [r["summary"]["minutes"] for r in runs]
        print(f"{path:28s} {variant:12s} {len(runs):5d} {_spread(best):>15s} {_spread(last):>15s} "
              f"{statistics.mean(epochs):10.0f} {statistics.mean(minutes):8.1f}")
    print("\nvalidation RMSE against training minutes (mean over seeds, by epoch):")
    for (path, variant), runs in groups.items():
        n = min(len(r["curve"]) for r in runs)
        marks = sorted({max(1, round(n * f)) for f in (0.1, 0.25, 0.5, 0.75, 1.0)})
        points = []
        for epoch in marks:
            rows = [r["curve"][epoch - 1] for r in runs]
            rmse = [row["val_rmse"] for row in rows if "val_rmse" in row]
            if rmse:
                points.append(f"{statistics.mean(row['minutes'] for row in rows):.1f} min {statistics.mean(rmse):.3f}")
        print(f"  {path} {variant}: " + ", ".join(points))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--configs", nargs="+", default=["configs/default.yaml", "configs/seeds/000_simple_cnn.yaml"])
    ap.add_argument("--variant", action="append", type=_variant, default=[],
                    help="name[:key=value,...], repeatable; every config is trained once per variant (default: base)")
    ap.add_argument("--seeds", nargs="+", type=int, default=[0], help="train.seed of each repeat")
    ap.add_argument("--minutes", type=float, default=30.0, help="training time cap per run")
    ap.add_argument("--set", action="append", default=[], help="extra override for every run")
    ap.add_argument("--jobs", type=int, default=1, help="runs trained at once (one torch thread each)")
    ap.add_argument("--fresh", action="store_true", help="retrain runs that already finished")
    ap.add_argument("--json", help="write every run's summary and curve here")
    ap.add_argument("--plot", help="draw validation RMSE against training minutes here (.png or .svg)")
    ap.add_argument("--from-json", nargs="+", metavar="JSON", help="report (and plot) earlier --json files; no training")
    args = ap.parse_args()
    if args.minutes <= 0 or args.jobs < 1:
        ap.error("--minutes must be > 0 and --jobs >= 1")
    names = [name for name, _ in args.variant]
    if len(set(names)) < len(names) or len(set(args.seeds)) < len(args.seeds):
        ap.error("each --variant name and each seed once: two runs would share one folder")
    for out in (args.json, args.plot):  # checked before hours of training, not after
        if out is not None:
            _check_output(ap, out)
    if args.plot and Path(args.plot).suffix.lower() not in (".png", ".svg", ".pdf"):
        ap.error(f"--plot {args.plot}: name a .png, .svg or .pdf file")
    if args.from_json:
        results = []
        for path in args.from_json:
            try:
                rows = json.loads(Path(path).read_text())
                if not isinstance(rows, list) or not all(isinstance(r, dict) and "summary" in r and "curve" in r
                                                         for r in rows):
                    raise ValueError("not a list of bench_train runs")
            except (OSError, ValueError) as err:
                ap.error(f"--from-json {path}: {err}")
            results += rows
        _report(results)
        if args.plot:
            _plot(results, args.plot)
        return 0
    _check_names(ap, args.configs, args.set)
    if not DATA.is_file():
        print(f"skipped: {DATA} is absent (the benchmark needs ../shared/data)")
        return 0
    variants = args.variant or [("base", [])]
    if args.jobs > 1 and not any(s.startswith("train.num_threads=") for s in args.set):
        args.set.append("train.num_threads=1")  # several runs at once: one thread each shares the cores best
    plan = [(path, name, [*args.set, *sets], seed, args.minutes, args.fresh)
            for path in args.configs for name, sets in variants for seed in args.seeds]
    print(f"{len(plan)} runs ({len(args.configs)} configs x {len(variants)} variants x {len(args.seeds)} seeds), "
          f"{args.jobs} at a time, at most {args.minutes:g} training minutes each", flush=True)
    results = []
    with ProcessPoolExecutor(max_workers=max(args.jobs, 1), mp_context=get_context("spawn"),
                             initializer=_stop_with, initargs=(os.getpid(),)) as pool:
        for result in pool.map(_one_run, *zip(*plan)):
            s = result["summary"]
            best = "none (no finite epoch)" if s["best_val_rmse"] is None else f"{s['best_val_rmse']:.3f}"
            print(f"  {result['config']} {result['variant']} seed {result['seed']}: best val RMSE "
                  f"{best} (epoch {s['best_epoch']}), {s['minutes']:.1f} min, stop: {s['stop_reason']}, in "
                  f"{s.get('out_dir')}", flush=True)
            results.append(result)
    _report(results)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, default=str))
    if args.plot:
        _plot(results, args.plot)
    return 0


def _plot(results: list[dict], path: str) -> None:
    """One line per config and variant: mean validation RMSE over the seeds by epoch, against the
    mean training minutes at that epoch; the band is the seeds' lowest to highest."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups: dict[str, list[dict]] = {}
    for r in results:
        groups.setdefault(f"{Path(r['config']).stem} {r['variant']} ({r['summary']['epochs']} epochs)", []).append(r)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for label, runs in groups.items():
        n = min(len(r["curve"]) for r in runs)
        rows = [[r["curve"][i] for r in runs] for i in range(n)]
        keep = [i for i in range(n) if all("val_rmse" in row for row in rows[i])]
        minutes = [statistics.mean(row["minutes"] for row in rows[i]) for i in keep]
        rmse = [[row["val_rmse"] for row in rows[i]] for i in keep]
        ax.plot(minutes, [statistics.mean(v) for v in rmse], label=f"{label}, {len(runs)} seeds")
        ax.fill_between(minutes, [min(v) for v in rmse], [max(v) for v in rmse], alpha=0.2)
    low, high = ax.get_ylim()
    ax.set(xlabel="training minutes (mean over seeds)", ylabel="validation RMSE, px (person-disjoint)",
           ylim=(low, min(high, 2.5 * max(low, 0.1))),  # the early epochs' large errors would hide the ends
           title="fkd15-ytf: validation RMSE against training time")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"wrote {path}")


if __name__ == "__main__":
    sys.exit(main())
