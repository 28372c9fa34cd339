"""Command line: ``facekeypoints MODE ...``. Each mode parses flags and calls the public API.

Examples
--------
  facekeypoints data info ../shared/data/fkd15-ytf/training.zip
  facekeypoints schemas
"""
from __future__ import annotations

import argparse
import json
import sys

__all__ = ["main", "build_parser"]

EXAMPLES = """examples:
  facekeypoints demo
  facekeypoints data info ../shared/data/fkd15-ytf/training.zip --json
  facekeypoints schemas
"""


# ---- schemas -------------------------------------------------------------------------------------
def _cmd_schemas(args: argparse.Namespace) -> int:
    from facekeypoints.schema import list_schemas, load_schema

    for name in list_schemas():
        s = load_schema(name)
        print(f"{name:10s} {s.num_keypoints:3d} keypoints, {len(s.flip_pairs)} flip pairs")
    return 0


def _add_schemas(sub) -> None:
    p = sub.add_parser("schemas", help="list keypoint schemas")
    p.set_defaults(func=_cmd_schemas)


# ---- data (section owned by the data layer) ------------------------------------------------------
DATA_CONVERT_EXAMPLES = """examples:
  facekeypoints data convert ../shared/data/ytf68/train.csv --to kaggle15 -o ytf_kaggle.csv
  facekeypoints data convert ../shared/data/imm/imm_face_db --to nose1 -o imm_nose.csv --size 96
"""


def _cmd_data_convert(args: argparse.Namespace) -> int:
    import time

    from facekeypoints.data.convert import to_kaggle_task
    from facekeypoints.data.io import read
    from facekeypoints.data.kaggle import write_kaggle_csv

    start = time.perf_counter()
    faces, report = to_kaggle_task(read(args.src, skip_bad=args.skip_bad), args.to, size=args.size)
    write_kaggle_csv(faces, args.output)
    print(report)
    print(f"wrote {args.output} ({len(faces)} rows) in {time.perf_counter() - start:.1f} s")
    return 0


def _add_data_convert(dsub) -> None:
    p = dsub.add_parser("convert", help="turn a landmark dataset into the Kaggle task (96x96 grey, aligned)",
                        epilog=DATA_CONVERT_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("src", help="any readable keypoint data (.csv, .pts/.asf folder, .xml, .json, ...)")
    p.add_argument("--to", default="kaggle15", help="target schema (kaggle15, nose1); default kaggle15")
    p.add_argument("-o", "--output", required=True, help="output CSV in Kaggle training format")
    p.add_argument("--size", type=int, default=96, help="output side in pixels (default 96, as Kaggle)")
    p.add_argument("--skip-bad", action="store_true", help="leave out bad rows/files (listed) instead of failing")
    p.set_defaults(func=_cmd_data_convert)


def _add_data(sub) -> None:
    p = sub.add_parser("data", help="inspect, verify and convert keypoint data")
    dsub = p.add_subparsers(dest="data_cmd", required=True)
    # data subcommands are added below this line
    _add_data_convert(dsub)


# ---- models (section owned by the model registry) --------------------------------------------------
def _add_training(sub) -> None:
    pass


# ---- train / evaluate / submit / compare (training engine) ----------------------------------------
TRAIN_EXAMPLES = """examples:
  facekeypoints train --config configs/default.yaml
  facekeypoints train --config configs/seeds/000_resnet18.yaml --set train.epochs=5 --set out_dir=runs/r18
  facekeypoints train --config configs/default.yaml --resume        # continue runs/default after Ctrl-C
  torchrun --nproc_per_node 2 -m facekeypoints.cli train --config configs/default.yaml   # 2-process DDP
"""


def _cmd_train(args: argparse.Namespace) -> int:
    from facekeypoints.train.config import load_config
    from facekeypoints.train.loop import fit

    cfg = load_config(args.config, args.set)
    if args.out:
        cfg.out_dir = args.out
    summary = fit(cfg, resume=args.resume, progress=not args.quiet)
    print(json.dumps(summary, indent=2, default=str))
    if summary["stop_reason"] == "interrupted":
        print(f"interrupted: saved {summary['out_dir']}/last.pt; continue with --resume", file=sys.stderr)
        return 130
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from facekeypoints.evaluate.runner import evaluate

    result = evaluate(args.model, args.data, mirror_tta=args.mirror_tta)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"{result['data']}  model {result['model']}  rows {result['rows']}")
    for key in ("rmse", "mae", "nme", "fr_8", "fr_10", "auc_10"):
        print(f"  {key:7s} {result[key]:.4f}")
    print("  per-keypoint RMSE:")
    for name, value in result["per_keypoint_rmse"].items():
        print(f"    {name:26s} {'-' if value is None else f'{value:.3f}'}")
    return 0


def _cmd_submit(args: argparse.Namespace) -> int:
    from facekeypoints.evaluate.submit import make_submission

    report = make_submission(args.test_csv, args.lookup, args.output, model=args.model, mirror_tta=args.mirror_tta)
    print(report)
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    from facekeypoints.evaluate.compare import compare_runs

    print(compare_runs(args.runs, report_dir=args.report))
    return 0


def _add_train_commands(sub) -> None:
    fmt = argparse.RawDescriptionHelpFormatter
    p = sub.add_parser("train", help="train a keypoint model", epilog=TRAIN_EXAMPLES, formatter_class=fmt)
    p.add_argument("--config", help="YAML experiment file (configs/...); defaults apply without one")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config value, e.g. train.epochs=5")
    p.add_argument("--out", help="run directory (overrides out_dir)")
    p.add_argument("--resume", action="store_true", help="continue from <out_dir>/last.pt")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_train)
    p = sub.add_parser("evaluate", help="score a model on labelled data (RMSE, MAE, NME, FR, AUC)")
    p.add_argument("data", help="labelled keypoint file, e.g. ../shared/data/fkd15-ytf/training.zip")
    p.add_argument("--model", help="checkpoint (.pt); the shipped default model when omitted")
    p.add_argument("--mirror-tta", action="store_true", help="average with the prediction on the mirrored face")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_evaluate)
    p = sub.add_parser("submit", help="write a Kaggle submission (RowId,Location)")
    p.add_argument("test_csv", help="Kaggle test.csv or test.zip")
    p.add_argument("--lookup", required=True, help="IdLookupTable.csv")
    p.add_argument("--model", help="checkpoint (.pt); the shipped default model when omitted")
    p.add_argument("--mirror-tta", action="store_true")
    p.add_argument("-o", "--output", required=True, help="submission CSV to write")
    p.set_defaults(func=_cmd_submit)
    p = sub.add_parser("compare", help="table and report comparing training runs")
    p.add_argument("runs", nargs="+", help="run directories (each holds metrics.csv and best.pt)")
    p.add_argument("--report", help="folder for the report (plots, worst/best faces, filters)")
    p.set_defaults(func=_cmd_compare)


# ---- predict / export / bench / demo (section owned by inference) --------------------------------
def _add_inference(sub) -> None:
    pass


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="facekeypoints", description=__doc__.splitlines()[0], epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="mode", required=True)
    for add in (_add_schemas, _add_data, _add_training, _add_train_commands, _add_inference):
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError) as err:  # bad input: a clear message, no traceback
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
