"""Command line: ``facekeypoints MODE ...``. Each mode parses flags and calls the public API.

Each mode imports what it uses when it runs (not at the top): torch alone takes seconds to import,
and ``facekeypoints data info`` or ``--help`` should not wait for it.

Examples
--------
  facekeypoints data info ../shared/data/fkd15-ytf/training.zip
  facekeypoints schemas
"""
from __future__ import annotations

import os
import signal
import sys

_SIGNALS_WHILE_STARTING: list[int] = []  # SIGINT/SIGTERM received while the command imported its modules


def _note_signal(signum, frame) -> None:
    """SIGINT/SIGTERM while the command starts: noted, and said by main() as an interruption (a
    KeyboardInterrupt raised inside the console script's ``from facekeypoints.cli import main`` would
    end in a traceback)."""
    _SIGNALS_WHILE_STARTING.append(signum)


def _started_as_the_command() -> bool:
    """Whether this process is the ``facekeypoints`` command (its console script, ``python -m
    facekeypoints``), not a program (a test) that imports this module and keeps its own signals."""
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    if spec is not None:
        return spec.name in ("facekeypoints.__main__", "facekeypoints.cli")
    script = os.path.basename(sys.argv[0] if sys.argv else "").removesuffix(".exe")
    return __name__ == "__main__" or script == "facekeypoints"


# before any other import: a Ctrl-C in the command's first tenth of a second is said as one, too
if _started_as_the_command():
    for _signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(_signum, _note_signal)

import argparse  # noqa: E402 (the imports follow the handler above on purpose)
import contextlib  # noqa: E402
import difflib  # noqa: E402
import errno  # noqa: E402
import json  # noqa: E402
import re  # noqa: E402
import warnings  # noqa: E402
from importlib.metadata import version  # noqa: E402
from pathlib import Path  # noqa: E402

from facekeypoints.atomic import WriteError, atomic_path, check_target  # noqa: E402
from facekeypoints.models.threads import max_threads  # noqa: E402

__all__ = ["main", "build_parser"]

def at_least(low: int, high: int | None = None):
    """An argparse type: an integer no smaller than ``low`` (and, given, no larger than ``high``);
    argparse then prints a usage line."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        shown = text if len(text) <= 20 else text[:20] + "..."  # 10**400 is not echoed whole
        if value < low:
            raise argparse.ArgumentTypeError(f"must be {low} or more, got {shown}")
        if high is not None and value > high:
            raise argparse.ArgumentTypeError(f"must be {low}..{high}, got {shown}")
        return value
    parse.__name__ = f"integer >= {low}"
    return parse


def add_tta_options(p: argparse.ArgumentParser,
                    mirror_help: str = "average with the prediction on the mirrored face") -> None:
    """--mirror-tta and --rotate-tta, for every command that predicts keypoints."""
    p.add_argument("--mirror-tta", action="store_true", help=mirror_help)
    p.add_argument("--rotate-tta", type=tta_degrees, default=0.0, metavar="DEG",
                   help="also predict each face turned by +/-DEG degrees and average (3x the model time; 4 helps kaggle15)")


def tta_degrees(text: str) -> float:
    """An argparse type for --rotate-tta: degrees in [0, 90)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of degrees, got {text!r}") from None
    if not 0 <= value < 90:
        raise argparse.ArgumentTypeError(f"must be at least 0 and under 90 degrees, got {text}")
    return value


DEVICE_HELP = "cpu (default), auto (the GPU when there is one), cuda, cuda:N or mps"

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
    p = sub.add_parser("schemas", help="list keypoint schemas",
                       epilog="examples:\n  facekeypoints schemas                  # kaggle15, ibug68, imm58, nose1\n",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.set_defaults(func=_cmd_schemas)


# ---- data (section owned by the data layer) ------------------------------------------------------
DATA_CONVERT_EXAMPLES = """examples:
  facekeypoints data convert ../shared/data/ytf68/train.csv --to kaggle15 -o runs/ytf_kaggle.csv
  facekeypoints data convert ../shared/data/samples/300w-pts -o 300w_kaggle.csv.gz
"""


def _check_output(source, output) -> None:
    """An output of a data command: outside the folder it reads (else read as input next time) and writable."""
    from facekeypoints.data.convert import check_output_outside

    check_output_outside(source, output)
    check_target(output, inputs=(source,))


def _data_files(source, data) -> tuple[set[Path], set[Path]]:
    """The files of the data read from ``source`` (its label file and every photo it lists, each as
    listed and as resolved: a link and its target), and the folders holding them, resolved."""
    listed = ([] if Path(source).is_dir() else [source]) + [p for p in (data.paths or []) if p]
    files = {f for p in listed for f in (Path(p).absolute(), Path(p).resolve())}
    folders = {f.parent.resolve() for f in files} | ({Path(source).resolve()} if Path(source).is_dir() else set())
    return files, folders


def _check_clear_of_data(output, source, data, *, folder: bool = False) -> None:
    """An output (--report, -o) of a command that read ``data`` never replaces a file of it: checked
    once the labels are read, before any work. A file output may not be one of its files; a folder
    output may not hold any of them, nor lie inside the folder read. A face --skip-bad left out is not
    listed: a photo-named file that exists in a folder of the data is refused too, as it may be one."""
    files, folders = _data_files(source, data)
    out = Path(output)
    if folder:
        place = out.resolve()
        held = place in folders or (Path(source).is_dir() and place.is_relative_to(Path(source).resolve()))
        if held:
            raise ValueError(f"{output}: is a folder of the data being read ({source}), whose photos or label files "
                             "the report's files could overwrite; give a folder outside it")
        return
    same = out.resolve() in files or (out.exists() and any(f.exists() and out.samefile(f) for f in files))
    if same:
        raise ValueError(f"{output}: is a file of the data being read ({source}), which the output would "
                         "overwrite; choose another name")
    from facekeypoints.data.formats.landmarks import IMAGE_SUFFIXES

    photo_like = out.suffix.lower() in {*IMAGE_SUFFIXES, *(Path(p).suffix.lower() for p in data.paths or [] if p)}
    if data.skipped_count and photo_like and out.exists() and out.parent.resolve() in folders:
        raise ValueError(f"{output}: exists in a folder of the data being read, where it may be the photo of a "
                         "face --skip-bad left out; choose another name")


def _applies(given: list[str], joiner: str) -> str:
    """"--a applies" or "--a, --b apply": options given where they mean nothing."""
    return f"{joiner.join(given)} {'apply' if len(given) > 1 else 'applies'}"


def _cmd_data_convert(args: argparse.Namespace) -> int:
    import time

    from facekeypoints.data.convert import to_kaggle_task
    from facekeypoints.data.formats.io import read
    from facekeypoints.data.formats.kaggle import MAX_ROWS, write_kaggle_csv
    from facekeypoints.schema import list_schemas

    schemas = list_schemas()
    if args.to not in schemas:  # a typo: named, with the closest schema, before the 96x96 rule
        close = difflib.get_close_matches(args.to, schemas, n=1)
        raise ValueError(f"--to {args.to!r}: unknown target" + (f"; did you mean {close[0]}?" if close else
                                                                f"; schemas: {', '.join(schemas)}"))
    if (args.to, args.size) != ("kaggle15", 96):  # checked first: converting can take a while
        raise ValueError(f"the Kaggle CSV holds kaggle15 faces at 96x96, not {args.to} at {args.size}x{args.size}; "
                         "for other targets call facekeypoints.data.to_kaggle_task from Python")
    if not args.output.lower().endswith((".csv", ".csv.gz", ".zip")):
        raise ValueError(f"{args.output}: a Kaggle CSV is written as .csv, .csv.gz or .zip")
    _check_output(args.src, args.output)
    if args.report:  # checked before converting, as the output is
        if Path(args.report).resolve() == Path(args.output).resolve():
            raise ValueError(f"{args.report}: --report and -o name the same file; give the report another name")
        _check_output(args.src, args.report)
    start = time.perf_counter()
    # labels first; each photo is then read, cut and dropped in turn (a folder of 12 MP photos held 1.75 GB)
    data = read(args.src, skip_bad=args.skip_bad, load_images=False)
    for output in filter(None, (args.output, args.report)):  # the photos are known now: none is replaced
        _check_clear_of_data(output, args.src, data)
    if len(data) > MAX_ROWS:  # before any photo is read: the crops alone would take len x 9 KB
        raise ValueError(f"{args.src}: {len(data)} faces, over the {MAX_ROWS} rows a Kaggle CSV may hold; "
                         "convert a part (a subfolder) at a time")
    faces, report = to_kaggle_task(data, args.to, size=args.size, skip_bad=args.skip_bad)
    del data
    write_kaggle_csv(faces, args.output)
    print(report)
    print(f"wrote {args.output} ({len(faces)} rows) in {time.perf_counter() - start:.1f} s")
    if args.report:  # every left-out face with its reason, however many (the summary names the first few)
        _write_skipped(args.report, faces.skipped)
    left_out = report.faces_in - report.faces_out  # counts faces a reader left unlisted too
    if left_out:  # written, but not every face: exit 1, as predict does for a partial run
        if args.report:
            where = f"listed in {args.report}"
        elif report.unlisted:  # never "listed above" for a partial list
            where = f"{report.unlisted} not shown above; --report FILE writes them all"
        else:
            where = "listed above"
        print(f"partial: {left_out} of {report.faces_in} faces left out ({where})", file=sys.stderr)
    return 1 if left_out else 0


def _write_skipped(report: str, messages: list[str]) -> None:
    """Write one line per left-out row or face to ``report`` (data info, data convert --report)."""
    text = "".join(f"{message}\n" for message in messages)
    try:  # a file name that is not UTF-8 (b\xe9.pts) is written as its own bytes, as ls shows it
        raw = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # another lone surrogate: escaped rather than a codec error
        raw = text.encode("utf-8", "backslashreplace")
    with atomic_path(report) as tmp:  # which also removes a killed earlier run's half-written report
        tmp.write_bytes(raw)


def _add_data_convert(dsub) -> None:
    p = dsub.add_parser("convert", help="turn a landmark dataset into the Kaggle task (96x96 grey, aligned)",
                        epilog=DATA_CONVERT_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("src", help="any readable keypoint data (.csv, .pts/.asf folder, .xml, .json, ...)")
    p.add_argument("--to", default="kaggle15", help="target schema (the Kaggle CSV holds kaggle15)")
    p.add_argument("-o", "--output", required=True, help="output CSV in Kaggle training format (.csv, .gz, .zip)")
    p.add_argument("--size", type=at_least(1), default=96, help="output side in pixels: 96 only, the Kaggle CSV's "
                   "(other sizes: facekeypoints.data.to_kaggle_task from Python)")
    p.add_argument("--skip-bad", action="store_true", help="leave out bad rows/files (listed) instead of failing")
    p.add_argument("--report", metavar="FILE", help="write one line per face left out (bad or not alignable)")
    p.set_defaults(func=_cmd_data_convert)


DATA_INFO_EXAMPLES = """examples:
  facekeypoints data info ../shared/data/fkd15-ytf/training.zip
  facekeypoints data info ../shared/data/kaggle-fkd/training_keypoints_only.csv --json
  facekeypoints data info my_training.csv --skip-bad --report skipped.txt
"""

DATA_VERIFY_EXAMPLES = """examples:
  facekeypoints data verify ~/Downloads/facial-keypoints-detection   # training.zip, test.zip, IdLookupTable.csv
"""


def _cmd_data_info(args: argparse.Namespace) -> int:
    from facekeypoints.data.info import describe, format_description, read_for_info

    if args.report and not args.skip_bad:
        raise ValueError("--report lists the rows --skip-bad leaves out; add --skip-bad")
    if args.report:
        _check_output(args.path, args.report)  # inside the folder read, it would be read as input next time
    data = read_for_info(args.path, skip_bad=args.skip_bad)
    if args.report:
        _check_clear_of_data(args.report, args.path, data)  # the photos are known now: none is replaced
        _write_skipped(args.report, data.skipped)
    info = describe(data)
    print(json.dumps(info, indent=2) if args.json else format_description(info))
    if data.skipped:
        where = f"; listed in {args.report}" if args.report else ""
        print(f"skipped {data.skipped_count} bad rows{where}", file=sys.stderr)
    return 1 if data.skipped else 0  # partial, as every --skip-bad command that left something out


def _cmd_data_verify(args: argparse.Namespace) -> int:
    from facekeypoints.data.formats.verify import REQUIRED_FILES, verify_kaggle_download

    report = verify_kaggle_download(args.folder)
    for check in report.checks:
        optional = " (optional)" if check.status == "missing" and check.name not in REQUIRED_FILES else ""
        print(f"{check.name:22s} {check.status + optional:20s} {check.detail}")
    print("all files genuine" if report.ok else "NOT a genuine Kaggle download (see above)")
    return 0 if report.ok else 1


def _add_data_info(dsub) -> None:
    p = dsub.add_parser("info", help="rows, image sizes, labels per keypoint, missing-label patterns",
                        epilog=DATA_INFO_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("path", help="any readable keypoint data (.csv/.zip/.gz, folder of .pts, .xml, .json, ...)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--skip-bad", action="store_true", help="leave out bad rows instead of failing")
    p.add_argument("--report", metavar="FILE", help="with --skip-bad: write one line per skipped row")
    p.set_defaults(func=_cmd_data_info)
    p = dsub.add_parser("verify", help="check a Kaggle download against the genuine sizes and sha256",
                        epilog=DATA_VERIFY_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folder", help="folder holding training.csv/zip, test.csv/zip, IdLookupTable.csv, ...")
    p.set_defaults(func=_cmd_data_verify)


DATA_EXAMPLES = """examples:
  facekeypoints data info ../shared/data/fkd15-ytf/training.zip           # rows, labels, missing-label patterns
  facekeypoints data verify ~/Downloads/facial-keypoints-detection          # is my Kaggle download genuine?
  facekeypoints data convert ../shared/data/ytf68/train.csv --to kaggle15 -o runs/ytf_kaggle.csv
  facekeypoints data info --help                                            # each sub-mode's own options
"""


def _add_data(sub) -> None:
    p = sub.add_parser("data", help="inspect, verify and convert keypoint data", epilog=DATA_EXAMPLES,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    dsub = p.add_subparsers(dest="submode", required=True)  # the name an error gives it ("required: submode")
    # data subcommands are added below this line
    _add_data_convert(dsub)
    _add_data_info(dsub)


# ---- models (section owned by the model registry) --------------------------------------------------
def _cmd_models(args: argparse.Namespace) -> int:
    from facekeypoints.models import list_models, model_info

    pattern = args.pattern if any(c in args.pattern for c in "*?[") else f"*{args.pattern}*"  # a word finds its family
    names = list_models(pattern.lower())  # registered names are lower case: RESNET18 finds resnet18
    if not names:
        raise ValueError(f"no model matches {args.pattern!r}; models: {', '.join(list_models())}")
    from facekeypoints.models.registry import MIN_INPUT_SIZES

    small = {n: MIN_INPUT_SIZES[n] for n in names if args.size < MIN_INPUT_SIZES.get(n, 1)}  # before torch runs
    if len(small) == 1 and len(names) == 1:
        raise ValueError(f"--size {args.size}: {names[0]} needs at least {small[names[0]]} pixels")
    if small:  # several: the ones that fit are listed, the others named with what they need
        names = [n for n in names if n not in small]
        needs = ", ".join(f"{n} {least}" for n, least in small.items())
        if not names:
            raise ValueError(f"--size {args.size}: too small for every model matched; each needs at least "
                             f"(pixels): {needs}")
        print(f"--size {args.size}: not listed, as they need more pixels: {needs}", file=sys.stderr)
    if args.json:
        print(json.dumps([model_info(name, input_size=args.size) for name in names], indent=2))
        return 0
    print(f"{'model':18s} {'params':>12s} {'MMACs@' + str(args.size):>10s}  description", flush=True)
    for name in names:  # one line as each is counted: building and counting a model takes a while
        info = model_info(name, input_size=args.size)
        print(f"{info['name']:18s} {info['params']:12,d} {info['macs'] / 1e6:10.1f}  {info['description']}", flush=True)
    return 0


def _add_training(sub) -> None:
    p = sub.add_parser("models", help="list registered models with parameters and MACs per image",
                       epilog="examples:\n  facekeypoints models\n  facekeypoints models 'resnet*' --json",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("pattern", nargs="?", default="*", help="a word (resnet) or a shell-style pattern (default: all)")
    p.add_argument("--size", type=at_least(1, 1024), default=96, help="input side for the MAC count, 1..1024 (default 96)")
    p.add_argument("--json", action="store_true", help="print JSON (name, description, reference, params, macs, options)")
    p.set_defaults(func=_cmd_models)


# ---- train / evaluate / submit / compare (training engine) ----------------------------------------
TRAIN_EXAMPLES = """examples:
  facekeypoints train --config configs/default.yaml
  facekeypoints train --config configs/seeds/000_resnet18.yaml --set train.epochs=5 --set out_dir=runs/r18
  facekeypoints train --config configs/default.yaml --resume        # continue runs/default after Ctrl-C
  torchrun --nproc_per_node 2 -m facekeypoints.cli train --config configs/default.yaml   # 2-process DDP
"""


TRAIN_DETECTOR_EXAMPLES = """examples:
  facekeypoints train-detector --minutes 60                # runs/detector: last.pt, face_detector.onnx (run again: resumes)
  facekeypoints train-detector --minutes 5 --out runs/det5 # a short run in its own folder
"""

EVALUATE_EXAMPLES = """examples:
  facekeypoints evaluate --model runs/default/best.pt --split val --json     # the run's own held-out people
  facekeypoints evaluate ../shared/data/fkd15-ytf/training.zip --model runs/default/best.pt --mirror-tta
  facekeypoints evaluate ../shared/data/samples/300w-pts --boxes haar       # photos: detector + refinement scored
  facekeypoints evaluate --split val --mirror-tta --rotate-tta 4
"""

SUBMIT_EXAMPLES = """examples:
  facekeypoints submit ../shared/data/fkd15-ytf/test.zip --lookup ../shared/data/fkd15-ytf/IdLookupTable.csv -o submission.csv
  facekeypoints submit ../shared/data/fkd15-ytf/test.zip --lookup ../shared/data/fkd15-ytf/IdLookupTable.csv \\
      --model runs/default/best.pt --mirror-tta -o submission_tta.csv
"""

COMPARE_EXAMPLES = """examples:
  facekeypoints compare runs/000_simple_cnn runs/default                    # the table
  facekeypoints compare runs/000_simple_cnn runs/default --report report/   # table + plots; report/index.html
"""

GRID_EXAMPLES = """examples:
  facekeypoints grid                                   # every seed config; finished rows are skipped
  facekeypoints grid --only 000_resnet18 004           # these first (prefixes), e.g. in the background
  facekeypoints grid --full --results results/seeds_full.json   # the seeds' epoch counts, on a GPU
"""


def _check_data_paths(cfg, config: str | None) -> None:
    """The recipe's relative data paths, read from the working folder: a missing one is named with its
    key and that folder, and where the data is (the repository's or the config's folder) when it is there."""
    from facekeypoints.data.pipeline import DATA_PATH_KEYS
    from facekeypoints.data.walk import check_path
    from facekeypoints.evaluate.runner import _repository

    places = {"the repository folder": _repository()}
    if config:  # a config run from elsewhere: its paths may be meant relative to it
        places["the config's folder"] = Path(os.path.expanduser(config)).resolve().parent
    for key in DATA_PATH_KEYS:
        value = getattr(cfg.data, key)
        if value is not None:
            check_path(os.path.expanduser(value), f"data.{key} {value}")
        if value is None or Path(os.path.expanduser(value)).exists():
            continue
        if Path(os.path.expanduser(value)).is_absolute():  # named with its setting, as a relative one is
            raise ValueError(f"data.{key} {value}: no such file or folder")
        there = next((f"; it is in {what}: run from {folder}" for what, folder in places.items()
                      if (folder / value).exists()), "; the data must be there")
        whose = "the default recipe's, " if not config else ""
        raise ValueError(f"data.{key} {value} ({whose}relative to the working folder {Path.cwd()}): "
                         f"no such file or folder{there}, or give " + ("--config / " if not config else "") +
                         f"--set data.{key}=FILE")


def _cmd_train(args: argparse.Namespace) -> int:
    from facekeypoints.train.config import default_recipe, load_config
    from facekeypoints.train.loop import fit

    if args.out:  # --out overrides out_dir: both given with different values, one would be ignored without a word
        for item in args.set:
            key, _, value = item.partition("=")
            if key.strip() == "out_dir" and Path(os.path.expanduser(value.strip())) != Path(os.path.expanduser(args.out)):
                raise ValueError(f"--out {args.out} and --set {item} both name the run folder; give one")
    cfg = load_config(os.path.expanduser(args.config) if args.config else default_recipe(), args.set)
    _check_data_paths(cfg, args.config)  # relative data paths are read from the working folder
    if args.out:
        cfg.out_dir = os.path.expanduser(args.out)  # as the config's own paths are
    if args.resume and args.overwrite:
        raise ValueError("--resume continues a run and --overwrite starts it over; give one")
    summary = fit(cfg, resume=args.resume, progress=not args.quiet, overwrite=args.overwrite)
    if summary["rank"] != 0:  # under torchrun every process returns; rank 0 speaks for the run
        return 130 if summary["stop_reason"] == "interrupted" else 0
    print(json.dumps(summary, indent=2, default=str))
    if summary["stop_reason"] == "interrupted":
        print(f"interrupted: saved {summary['out_dir']}/last.pt; continue with --resume", file=sys.stderr)
        return 130
    if summary["stop_reason"] == "diverged":
        print(f"diverged: the training loss became NaN or infinite in epoch {summary['epochs']}; lower train.lr "
              f"(best.pt holds the best finite epoch, if any)", file=sys.stderr)
        return 1
    if summary["best_epoch"] is None:  # every validation gave NaN: there is no model to use
        _say_error(f"no validated epoch gave a finite RMSE, so {summary['out_dir']}/best.pt was not written; see "
                   f"{summary['out_dir']}/metrics.csv")
        return 1
    return 0


def _cmd_train_detector(args: argparse.Namespace) -> int:
    from facekeypoints.data.walk import check_path
    from facekeypoints.train.detector import FacePool, check_run, train_detector

    if not 0 < args.minutes < float("inf"):
        raise ValueError(f"--minutes must be a finite number > 0, got {args.minutes}")
    for option, value in (("--ytf68", args.ytf68), ("--imm", args.imm)):  # before a minute of reading photos
        check_path(value, f"{option} {value}")
        if not Path(value).exists():
            raise ValueError(f"{option} {value}: no such file or folder")
    # bounds, --out and its last.pt, --init: before a minute of reading photos
    check_run(args.out, batch_size=args.batch_size, threads=args.threads, distractors=args.distractors, init=args.init)
    pool = FacePool.from_datasets(args.ytf68, args.imm)
    summary = train_detector(args.out, pool, minutes=args.minutes, batch_size=args.batch_size, threads=args.threads,
                             progress=not args.quiet, distractors=args.distractors, init=args.init)
    print(json.dumps(summary, indent=2))
    if summary["interrupted"]:
        print(f"interrupted: saved {args.out}/last.pt; the same command continues", file=sys.stderr)
        return 130
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from facekeypoints.infer.results import finite_json
    from facekeypoints.data.formats.io import detect_format
    from facekeypoints.evaluate.runner import evaluate
    from facekeypoints.models.device import resolve_device

    onnx = bool(args.model) and str(args.model).lower().endswith(".onnx")
    if onnx and args.device not in ("cpu", "auto"):  # ONNX Runtime runs on the CPU: a GPU asked for would go unused
        if not re.fullmatch(r"cuda(:\d+)?|mps", args.device):
            resolve_device(args.device)  # not a device name: that error first
        raise ValueError(f"--device {args.device}: an .onnx model runs in ONNX Runtime on the CPU; pass the .pt "
                         f"checkpoint to evaluate on {args.device}")
    resolve_device(args.device)  # checked whatever the data and model, before any is read
    if args.data is not None and args.split is None and detect_format(args.data) != "kaggle":
        return _evaluate_photos(args)  # whole photos: the detector-and-refinement pipeline is scored
    if args.boxes != "labels":
        raise ValueError("--boxes applies to photo datasets; a Kaggle CSV's faces are framed already")
    given = [o for o, v in (("--report", args.report), ("--limit", args.limit)) if v]
    if given:
        raise ValueError(f"{_applies(given, ', ')} to photo datasets, not to "
                         "a Kaggle CSV or --split")
    if args.skip_bad and args.split:
        raise ValueError("--skip-bad applies to a data file; --split rebuilds the run's own faces, which were read whole")
    runner = None
    if onnx:  # an export scores as its checkpoint did
        from facekeypoints.infer.onnx import OnnxRunner
        from facekeypoints.models.weights import resolve_checkpoint

        runner = OnnxRunner(resolve_checkpoint(args.model))
    # --skip-bad: the good rows scored, the bad ones listed, exit 1 (as data info and photo datasets do)
    result = finite_json(evaluate(args.model, args.data, mirror_tta=args.mirror_tta, rotate_tta=args.rotate_tta,
                              split=args.split, device=args.device,
                              runner=runner, **({"skip_bad": True} if args.skip_bad else {})))
    status = 1 if result.get("skipped_count") else 0
    if status:
        shown = "; ".join(result["skipped"][:3])
        more = f" (first {min(3, len(result['skipped']))} shown; --json lists up to 20)" \
            if result["skipped_count"] > 3 else ""
        print(f"partial: {result['skipped_count']} bad rows skipped, the rest scored: {shown}{more}", file=sys.stderr)
    if args.json:
        print(json.dumps(result, indent=2, allow_nan=False))
        return status
    print(f"{result['data']}  model {result['model']}  rows {result['rows']}")
    coordinates = result["labelled_coordinates"]  # what the figures average over, said as the photo path says it
    print(f"  scored  {coordinates} labelled coordinates ({coordinates // 2} points) of the {result['rows']} rows; "
          f"NME over the {result['rows_with_nme']} rows whose eye labels give a scale")
    for key in ("rmse", "mae", "nme", "fr_8", "fr_10", "auc_10"):  # None: no face has what it needs (e.g. both eyes)
        print(f"  {key:7s} {'-' if result[key] is None else format(result[key], '.4f')}")
    print("  mean signed error x {:+.3f} y {:+.3f} px".format(*result["mean_error_xy"]))
    print("  per-keypoint RMSE:")
    for name, value in result["per_keypoint_rmse"].items():
        print(f"    {name:26s} {'-' if value is None else f'{value:.3f}'}")
    return status


def _tta_words(args: argparse.Namespace) -> str:
    """How each face was predicted, for a summary line."""
    looks = (["mirror"] if args.mirror_tta else []) + ([f"rotate +/-{args.rotate_tta:g} deg"] if args.rotate_tta else [])
    return " + ".join(looks) + " TTA" if looks else "single pass"


def _evaluate_photos(args: argparse.Namespace) -> int:
    from facekeypoints.infer.results import finite_json
    from facekeypoints.data import read
    from facekeypoints.evaluate.photos import evaluate_photos, model_for
    from facekeypoints.infer.detectors import DETECTORS
    from facekeypoints.infer.predictor import KeypointDetector

    args.boxes = args.boxes.lower()
    if args.boxes not in ("labels", *DETECTORS):
        raise ValueError(f"--boxes {args.boxes!r} is not one of labels, {', '.join(sorted(DETECTORS))}")
    data = read(args.data, load_images=False, skip_bad=args.skip_bad)  # photos are read one by one as scored
    if args.report is not None:  # before the scoring, not after
        _check_clear_of_data(args.report, args.data, data, folder=True)
        check_target(args.report, folder=True)  # can be made and written (made here)
        from facekeypoints.evaluate.photo_report import check_photo_report_folder

        check_photo_report_folder(args.report)  # a user's files there are refused before the scoring
    labels, model = args.boxes == "labels", str(args.model or model_for(data.schema.name))
    with warnings.catch_warnings():  # a whole-photo model's "uses no face detector": evaluate_photos refuses --boxes
        warnings.filterwarnings("ignore", message=".*uses no face detector", category=UserWarning)
        detector = KeypointDetector(model, detector=None if labels else args.boxes,
                                    box_frame="landmarks" if labels else None, mirror_tta=args.mirror_tta,
                                    rotate_tta=args.rotate_tta, device=args.device)
    details: dict = {}
    r = evaluate_photos(data, detector, boxes=args.boxes, limit=args.limit, details=details)
    r["model"] = model  # the name asked for, not the file it resolved to
    r["skipped"], r["skipped_count"] = list(data.skipped), data.skipped_count
    # faces left out (bad labels skipped, photos unreadable) make the figures partial: exit 1, as predict does
    status = 1 if r["skipped_count"] or r["unusable_count"] else 0
    if r["rows_with_nme"] == 0:
        raise ValueError(f"{args.data}: no scored face has both of the {r['schema']} points that NME divides by "
                         "(the eye labels are missing or coincide)")
    if args.json:
        print(json.dumps(finite_json(r), indent=2, allow_nan=False))
    else:
        _print_photo_figures(r, status)
    if args.report is not None:  # after the figures are out: a report that cannot be written loses none of them
        from facekeypoints.evaluate.photo_report import write_photo_report

        print(f"report: {write_photo_report(args.report, data, details, finite_json(r))}", file=sys.stderr)
    return status


def _print_photo_figures(r: dict, status: int) -> None:
    found = f"; the {r['boxes']} detector missed {r['missed']}" if r["boxes"] != "labels" else ""
    found += f"; {r['unusable_count']} unusable (e.g. {r['unusable'][0]})" if r["unusable_count"] else ""
    found += f"; {r['skipped_count']} skipped as bad (e.g. {r['skipped'][0]})" if r["skipped_count"] else ""
    unlabelled = f", {r['unlabelled']} without labelled points" if r["unlabelled"] else ""
    print(f"{r['data']}  model {r['model']} ({r['schema']})  faces {r['faces']}, scored {r['scored']}{unlabelled}"
          f"{found}; boxes: {r['boxes']}, then refinement")
    if r["rows_with_nme"] < r["scored"]:
        print(f"  NME over the {r['rows_with_nme']} of {r['scored']} faces whose eye labels give a scale")
    print(f"  NME {100 * r['nme']:.2f}%  FR@8 {100 * r['fr_8']:.1f}%  FR@10 {100 * r['fr_10']:.1f}%  "
          f"AUC@8 {r['auc_8']:.3f}  AUC@10 {r['auc_10']:.3f}  RMSE {r['rmse']:.2f} px")
    print("  mean signed error x {:+.2f} y {:+.2f} px".format(*r["mean_error_xy"]))
    print("  NME by region: " + ", ".join(f"{k} {100 * v:.2f}%" for k, v in r["regions"].items()))
    print("  NME by head turn: " + ", ".join(f"{k}: {v['faces']} faces" + (f" {100 * v['nme']:.2f}%" if v["faces"] else "")
                                             for k, v in r["by_turn"].items()))
    if status:  # every face left out, with why: the first LISTED here, all in --json and the --report page
        from facekeypoints.data.convert import LISTED
        from facekeypoints.data.dataset import printable
        from facekeypoints.evaluate.photos import left_out

        missing = left_out(r)
        for line in missing[:LISTED]:
            print(f"  {printable(line)}", file=sys.stderr)
        more = f"; {len(missing) - LISTED} more not shown" if len(missing) > LISTED else ""
        print(f"  partial: {r['unusable_count'] + r['skipped_count']} faces left out (listed above{more}; "
              "all in --json and --report)", file=sys.stderr)


def _cmd_submit(args: argparse.Namespace) -> int:
    from facekeypoints.data.walk import check_path
    from facekeypoints.infer.kaggle import make_submission
    from facekeypoints.infer.predictor import KeypointDetector

    if not args.output.lower().endswith(".csv"):
        raise ValueError(f"{args.output}: a submission is written as a .csv file")
    for given in (args.test_csv, args.lookup):  # both checked before the model loads
        check_path(given)
        if not Path(given).exists():
            raise ValueError(f"{given}: no such file or folder")
        if Path(given).is_dir():
            raise ValueError(f"{given}: is a folder; give the CSV file")
    check_target(args.output, inputs=(args.test_csv, args.lookup))
    detector = KeypointDetector(args.model, backend=args.backend, detector=None, mirror_tta=args.mirror_tta,
                                rotate_tta=args.rotate_tta)
    report = make_submission(detector, args.test_csv, args.lookup, args.output)
    clipped = f", RowIds {list(report.clipped_row_ids[:10])}{' ...' if report.clipped > 10 else ''}" if report.clipped else ""
    print(f"wrote {report.path}: {report.rows} rows, model {detector.runner.source} ({detector.card.model}, "
          f"{_tta_words(args)}); {report.clipped} values clipped to the image{clipped}")
    return 0


def _cmd_grid(args: argparse.Namespace) -> int:
    from facekeypoints.data.walk import check_path
    from facekeypoints.train.grid import config_files, run_grid

    check_path(args.folder)
    if not Path(args.folder).exists():
        raise ValueError(f"{args.folder}: no such folder of configs (or config file)")
    folder = Path(args.folder)
    configs = config_files(folder) if folder.is_dir() else [folder]  # hidden files (._a.yaml) are no configs
    if args.only:
        # a config answers to its file name and to its name: (what grid prints); a name matches its config
        # exactly if there is one (000_resnet18 is not 000_resnet18_clahe_mirror)
        names = {c: {c.stem, _config_name(c)} for c in configs}

        def matching(name: str) -> list[Path]:
            return [c for c in configs if name in names[c]] or \
                [c for c in configs if any(n.startswith(name) for n in names[c])]

        unmatched = [name for name in args.only if not matching(name)]
        if unmatched:
            raise ValueError(f"--only {' '.join(unmatched)}: no config in {folder} has that file name or name:, "
                             "or one starting with it")
        configs = list(dict.fromkeys(c for name in args.only for c in matching(name)))
    if not configs:
        raise ValueError(f"{args.folder}: no .yaml configs" + (f" named or starting with {args.only}" if args.only else ""))
    rows = run_grid(configs, args.results, full=args.full, progress=not args.quiet)
    finished = sum(not r.get("failed") for r in rows)
    print(f"{finished} finished runs in {args.results} (table: {Path(args.results).with_suffix('.md')})")
    for line in rows.failed:  # recorded as failed rows; the rest of the grid ran: exit 1, as a partial result
        print(f"failed: {line}", file=sys.stderr)
    return 1 if rows.failed else 0


def _config_name(path: Path) -> str:
    """A config's ``name:`` as grid shows it (its file name when it has none, or cannot be read: the
    grid then says what is wrong with it, if it is chosen)."""
    from facekeypoints.train.config import read_yaml

    try:
        name = (read_yaml(path) or {}).get("name")
    except Exception:  # noqa: BLE001 (any unreadable file: matched by its file name alone)
        return path.stem
    return name if isinstance(name, str) and name else path.stem


def _cmd_compare(args: argparse.Namespace) -> int:
    from facekeypoints.evaluate.compare import compare_runs

    result = compare_runs(args.runs, report_dir=args.report)  # --report checked before any figure is drawn
    print(result.table)
    for note in result.notes:  # a run's figures left out: the report is partial, as a partial predict is
        print(f"partial: {note}", file=sys.stderr)
    for line in result.skipped:  # a folder that is not a readable run: named, the others compared
        print(f"skipped: {line}", file=sys.stderr)
    return 1 if result.notes or result.skipped else 0


def _add_train_commands(sub) -> None:
    fmt = argparse.RawDescriptionHelpFormatter
    p = sub.add_parser("train", help="train a keypoint model", epilog=TRAIN_EXAMPLES, formatter_class=fmt)
    p.add_argument("--config", help="YAML experiment file (configs/...); without one, the shipped default recipe "
                   "(configs/default.yaml)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config value, e.g. train.epochs=5")
    p.add_argument("--out", help="run directory (overrides out_dir)")
    p.add_argument("--resume", action="store_true", help="continue from <out_dir>/last.pt")
    p.add_argument("--overwrite", action="store_true", help="start over in an out_dir that holds a run (its files are replaced)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_train)
    p = sub.add_parser("train-detector", help="train the face detector of our own (--detector cnn) on mosaics",
                       epilog=TRAIN_DETECTOR_EXAMPLES, formatter_class=fmt)
    p.add_argument("--out", default="runs/detector", help="run folder: last.pt (resumable), face_detector.onnx")
    p.add_argument("--minutes", type=float, default=60.0, help="training time (default 60); the same command resumes")
    p.add_argument("--ytf68", default="../shared/data/ytf68/train.csv", help="ytf68 train.csv (its training people)")
    p.add_argument("--imm", default="../shared/data/imm/imm_face_db", help="IMM folder (people 1-32)")
    p.add_argument("--batch-size", type=at_least(1), default=16)
    p.add_argument("--threads", type=at_least(1), help="torch threads (default: torch's)")
    p.add_argument("--distractors", type=int, default=0, metavar="N",
                   help="paste up to N skin-like patches that are no face (shuffled face tiles, parts of faces) into "
                        "each mosaic, against false detections (default 0)")
    p.add_argument("--init", metavar="LAST_PT", help="start from another detector run's weights (its last.pt): fine-tuning")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_train_detector)
    p = sub.add_parser("evaluate", help="score a model on labelled data (RMSE, MAE, NME, FR, AUC)",
                       epilog=EVALUATE_EXAMPLES, formatter_class=fmt)
    p.add_argument("data", nargs="?", help="labelled keypoint file, e.g. ../shared/data/fkd15-ytf/training.zip")
    p.add_argument("--model", help="checkpoint (.pt) or shipped model name (kaggle15, ibug68); default: kaggle15, or "
                   "for photos the shipped model of the data's schema")
    p.add_argument("--split", choices=["train", "val", "test"], help="instead of a file: that part of the model's own "
                   "training run (test: the third part of a 3-ratio data.split)")
    p.add_argument("--boxes", default="labels", help="photo datasets: frame each face from its labelled points "
                   "(labels, default) or from a detector's box (haar, cnn, dlib); refinement follows either way")
    p.add_argument("--limit", type=at_least(0), default=0, help="photo datasets: the first N faces only (0: all)")
    p.add_argument("--skip-bad", action="store_true", help="leave out bad rows or label files (listed; exit code "
                   "1) instead of failing; the rest is scored")
    p.add_argument("--report", metavar="DIR", help="photo datasets: also write DIR/index.html: error curve, NME by "
                   "region and turn, the best and worst faces drawn")
    add_tta_options(p)
    p.add_argument("--device", default="cpu", help=DEVICE_HELP)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_evaluate)
    p = sub.add_parser("submit", help="write a Kaggle submission (RowId,Location)", epilog=SUBMIT_EXAMPLES,
                       formatter_class=fmt)
    p.add_argument("test_csv", help="Kaggle test.csv or test.zip")
    p.add_argument("--lookup", required=True, help="IdLookupTable.csv")
    p.add_argument("--model", help="checkpoint (.pt) or shipped model name (kaggle15, ibug68); kaggle15 when omitted")
    add_tta_options(p)
    p.add_argument("--backend", choices=["torch", "onnx"], help="default: onnx (ONNX Runtime) on the CPU")
    p.add_argument("-o", "--output", required=True, help="submission CSV to write")
    p.set_defaults(func=_cmd_submit)
    p = sub.add_parser("grid", help="run every config of a folder to the end of its budget; keep a results table",
                       epilog=GRID_EXAMPLES, formatter_class=fmt)
    p.add_argument("folder", nargs="?", default="configs/seeds", help="folder of .yaml configs (default configs/seeds)")
    p.add_argument("--results", default="results/seeds.json", help="rows of finished runs (default results/seeds.json)")
    p.add_argument("--only", nargs="+", metavar="NAME",
                   help="these configs, in this order: a file name (without .yaml) or a config's name:, or a "
                   "prefix for every config starting with it")
    p.add_argument("--full", action="store_true", help="the sources' own epoch counts, on the GPU when there is one")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_cmd_grid)
    p = sub.add_parser("compare", help="table and report comparing training runs", epilog=COMPARE_EXAMPLES,
                       formatter_class=fmt)
    p.add_argument("runs", nargs="+", help="run directories (each holds metrics.csv and best.pt)")
    p.add_argument("--report", help="folder for the report (plots, worst/best faces, filters)")
    p.set_defaults(func=_cmd_compare)


# ---- predict / export / bench / demo (section owned by inference) --------------------------------
PREDICT_EXAMPLES = """examples:
  facekeypoints predict photo.jpg -o out/                      # out/predictions.jsonl, out/photo.jpg drawn
  facekeypoints predict photos/ clip.mp4 -o out2/ --batch-size 32   # a folder of its own: out/ holds a run
  facekeypoints predict ../shared/data/fkd15-ytf/test.zip -o test_keypoints.csv   # framed 96x96 faces
  facekeypoints predict photo.jpg --model model.onnx --no-draw
"""

EXPORT_EXAMPLES = """examples:
  facekeypoints export -o model.onnx                                        # ONNX with its model card
  facekeypoints export --model runs/exp1/best.pt -o model.onnx
  facekeypoints export --model runs/exp1/best.pt --format pt -o model.pt   # weights + model card only
"""

BENCH_EXAMPLES = """examples:
  facekeypoints bench                                  # ms/face, faces/s, ms per 640x480 frame
  facekeypoints bench --threads 2 --json bench.json
  facekeypoints bench --random keypoint_net --jitter-frames 0
"""

SERVE_EXAMPLES = """examples:
  facekeypoints serve                         # http://127.0.0.1:8000/ : a page to pick, drop or snap a photo
  facekeypoints serve --detector cnn --port 8080
  curl -s -H 'content-type: image/jpeg' --data-binary @photo.jpg 'http://127.0.0.1:8000/v1/keypoints?model=ibug68'
"""

DEMO_EXAMPLES = """examples:
  facekeypoints demo                          # drawn photos and JSON in demo-output/
  facekeypoints demo --model ibug68 -o demo68
"""


def _stem(name: str) -> str:
    """test.v1.csv.gz -> test.v1: the name less its compression and .csv suffixes only."""
    for suffix in (".gz", ".zip", ".csv"):
        name = name[:-len(suffix)] if name.lower().endswith(suffix) and len(name) > len(suffix) else name
    return name


def _overwrite_refused(out: str) -> str:
    """predict --overwrite with a file or - output: it has nothing to allow."""
    where = "standard output replaces nothing" if out == "-" else \
        f"a file output ({out}) is replaced (atomically) whatever it held"
    return f"--overwrite applies to a folder output (-o DIR/): {where}"


def _cmd_predict(args: argparse.Namespace) -> int:
    from facekeypoints.infer.detectors import DETECTORS
    from facekeypoints.infer.files import CSV_SUFFIXES, predict_paths
    from facekeypoints.infer.kaggle import predict_kaggle_csv, write_keypoint_csv
    from facekeypoints.infer.outputs import check_outputs, output_kind
    from facekeypoints.infer.predictor import KeypointDetector

    csvs = [p for p in args.inputs if p.lower().endswith(CSV_SUFFIXES) and not os.path.isdir(p)]
    if csvs and len(args.inputs) > 1:
        raise ValueError(f"a Kaggle CSV ({csvs[0]}) is predicted on its own; give it as the only INPUT")
    chosen = args.detector.lower() if args.detector is not None else None  # HAAR means haar; None: not given
    if chosen is not None and chosen not in [*DETECTORS, "none"]:  # checked whatever the input
        close = difflib.get_close_matches(chosen, [*DETECTORS, "none"], n=1)
        raise ValueError(f"--detector {args.detector}: not a face detector; choose from "
                         f"{', '.join([*DETECTORS, 'none'])}" + (f" (did you mean {close[0]}?)" if close else ""))
    if csvs:  # framed faces: every option of the face search, and of photos alone, is refused alike, none ignored
        given = ([f"--detector {args.detector}"] if chosen not in (None, "none") else []) + \
            (["--min-face"] if args.min_face else []) + (["--max-side"] if args.max_side else [])
        # options left at their defaults (None, False) were not given; --batch-size applies (faces per model call)
        photos = [(flag, why) for flag, why, on in (
            ("--max-pixels", "a photo's size limit", args.max_pixels is not None),
            ("--no-draw", "drawn copies", args.no_draw),
            ("--no-refine", "re-framing found faces", args.no_refine)) if on]
        if given or photos:
            said = ([f"{' and '.join(given)}: for the face search in photos and videos"] if given else []) + \
                ([f"{' and '.join(f for f, _ in photos)}: for photos and videos ({', '.join(w for _, w in photos)})"]
                 if photos else [])
            raise ValueError(f"{'; '.join(said)}; a Kaggle CSV's faces are framed already")
    elif chosen == "none":
        raise ValueError("--detector none is for a Kaggle CSV, whose images are framed faces; photos and videos "
                         "need a face detector (haar, cnn or dlib)")
    face_detector = None if csvs else chosen or "haar"
    if face_detector in ("haar", "cnn"):
        sizing = {"min_face": args.min_face} | ({"max_side": args.max_side} if args.max_side else {})
        try:
            face_detector = DETECTORS[face_detector](**sizing)
        except FileNotFoundError as err:
            raise ValueError(str(err)) from None
        except ValueError as err:  # the detector's own bound (haar: max_side >= 48), said in the flags' names
            flags = re.sub(r"\b(max_side|min_face)\b", lambda m: "--" + m.group(1).replace("_", "-"), str(err))
            raise ValueError(f"--detector {face_detector}: {flags}") from None
    elif args.min_face or args.max_side:
        raise ValueError(f"--min-face and --max-side apply to the haar and cnn detectors, not {chosen!r}")
    with warnings.catch_warnings():  # its warning that a whole-photo model uses no detector: the error below says it
        warnings.filterwarnings("ignore", message=".*uses no face detector", category=UserWarning)
        detector = KeypointDetector(args.model, backend=args.backend, threads=args.threads,
                                    refine=not args.no_refine, detector=face_detector,
                                    mirror_tta=args.mirror_tta, rotate_tta=args.rotate_tta, device=args.device,
                                    **({"batch_size": args.batch_size} if csvs and args.batch_size is not None else {}))
    if not csvs and detector.framing == "resize":  # as for a Kaggle CSV: the face search's options are refused
        given = ([f"--detector {args.detector}"] if args.detector is not None else []) + \
            [flag for flag, on in (("--min-face", args.min_face), ("--max-side", args.max_side),
                                   ("--no-refine", args.no_refine)) if on]
        if given:
            raise ValueError(f"{_applies(given, ' and ')} to finding and re-framing faces; {detector.runner.source} "
                             f"(a {detector.schema.name} model trained on whole photos) frames each whole image as "
                             "one face and uses no face detector; leave them out")
    if csvs:
        from facekeypoints.data.formats.io import detect_format

        if (kind := detect_format(csvs[0])) != "kaggle":
            raise ValueError(f"{csvs[0]}: a {kind} CSV; predict reads Kaggle CSVs (faces framed at 96x96). For its "
                             f"photos, predict their folder; to score the labels, use facekeypoints evaluate")
        kind = output_kind(args.output or "predictions/")  # the rule of -o for photos: a trailing slash names a folder
        dotted = kind == "folder" and args.output and Path(args.output).suffix and \
            not args.output.endswith(("/", os.sep)) and not Path(args.output).is_dir()  # x.txt: a typo, not a folder
        if kind in ("json", "jsonl") or dotted:
            raise ValueError(f"{args.output}: a Kaggle CSV's keypoints are written as a .csv file, into a folder "
                             "(end its name with / if it has a dot), or to standard output (-o -)")
        out = args.output if kind in ("csv", "stdout") else \
            str(Path(args.output or "predictions") / f"{_stem(Path(csvs[0]).name)}_keypoints.csv")  # -o's default
        if args.overwrite and kind != "folder":
            raise ValueError(_overwrite_refused(out))
        if out != "-":
            check_target(out, inputs=(csvs[0],))
        if kind == "folder":  # a name the run chose, in a folder: replaced only with --overwrite, as every other
            check_outputs([Path(out)], args.overwrite)
        # one bad row does not stop the rest; an interrupted run keeps the rows finished so far in `out`
        predictions = predict_kaggle_csv(detector, csvs[0], skip_bad=True, out_csv=None if out == "-" else out)
        written = write_keypoint_csv(predictions, out)
        print(f"wrote {'standard output' if written is None else written}: {len(predictions)} rows",
              file=sys.stderr if written is None else sys.stdout)
        for problem in predictions.skipped:
            print(f"  skipped {problem}", file=sys.stderr)
        return 1 if predictions.skipped else 0
    out = args.output or "predictions"
    to_folder = output_kind(out) == "folder"
    if not to_folder:  # as for a Kaggle CSV: no option is ignored
        if args.no_draw:
            where = "standard output" if out == "-" else f"a file output ({out})"
            raise ValueError(f"--no-draw applies to a folder output (-o DIR/): {where} is never drawn")
        if args.overwrite:
            raise ValueError(_overwrite_refused(out))
    from facekeypoints.data.images import MAX_PIXELS

    batch_size = 16 if args.batch_size is None else args.batch_size  # None: not given (the Kaggle CSV check)
    max_pixels = MAX_PIXELS if args.max_pixels is None else args.max_pixels or None  # 0: no limit
    # folders this run creates (out3/, and any missing parent): removed again if nothing is written into them
    made = [] if not to_folder else [d for d in (Path(out), *Path(out).parents) if not os.path.exists(d)]
    try:
        report = predict_paths(detector, args.inputs, out, draw=not args.no_draw, batch_size=batch_size,
                               progress=not args.quiet, max_pixels=max_pixels, overwrite=args.overwrite)
    except BrokenPipeError as err:  # -o - into `| head`: the reader left; failures found before that still count
        report = getattr(err, "report", None)
        if report is None or not report.failures:
            raise  # main(): a reader that stopped early is no error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second broken pipe at exit
        print(f"{report}\nresults: standard output, closed by its reader before the run ended", file=sys.stderr)
        return 1
    finally:
        for folder in made:  # innermost first; rmdir leaves a folder that holds anything
            with contextlib.suppress(OSError):
                folder.rmdir()
    if out == "-":
        where = "standard output"
    elif not report.written:
        where = None
    else:  # a file output put beside one another run wrote meanwhile (x-2.jsonl) is named as it is
        where = out if to_folder else report.written[-1]
    print(f"{report}\n" + (f"results: {where}" if where else "nothing was written"),
          file=sys.stderr if report.failures or out == "-" else sys.stdout)
    return 1 if report.failures else 0


def _cmd_export(args: argparse.Namespace) -> int:
    from facekeypoints.infer.onnx import export_onnx
    from facekeypoints.models.checkpoint import slim_checkpoint
    from facekeypoints.models.weights import resolve_checkpoint

    if args.format == "pt" and (args.opset is not None or args.device is not None):  # None: not given
        given = [f for f, v in (("--opset", args.opset), ("--device", args.device)) if v is not None]
        raise ValueError(f"{_applies(given, ' and ')} to --format onnx "
                         "(tracing the export); --format pt writes the checkpoint's weights as they are")
    source = resolve_checkpoint(args.model)
    wanted = "." + args.format
    if args.output.endswith(("/", os.sep)):  # a trailing slash names a folder, as predict's -o: never a file
        raise ValueError(f"{args.output}: a folder (it ends with /); export writes one file: name it *{wanted}")
    if Path(args.output).suffix.lower() != wanted:  # model.ONNX is a name as good as model.onnx
        raise ValueError(f"{args.output}: --format {args.format} writes a {wanted} file; name it *{wanted}")
    check_target(args.output, inputs=(source,))
    if args.format == "pt":  # slim and in the current format (older checkpoints are upgraded)
        print(f"wrote {slim_checkpoint(source, args.output)}")
    else:
        opset, device = 17 if args.opset is None else args.opset, args.device or "cpu"
        print(f"wrote {export_onnx(source, args.output, opset=opset, device=device)}")
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    from facekeypoints.infer.bench import run_bench

    if args.model and args.random:
        raise ValueError("--model and --random both choose the model; give one")
    to_stdout = args.json == "-"  # as predict -o -: the JSON alone on standard output, the figure lines on stderr
    echo = (lambda line: print(line, file=sys.stderr)) if to_stdout else print
    report = run_bench(args.model, random_model=args.random, threads=args.threads, batch=args.batch,
                       repeats=args.repeats, jitter_frames=args.jitter_frames,
                       json_out=None if to_stdout else args.json, device=args.device, echo=echo)
    if to_stdout:
        print(json.dumps(report, indent=2, allow_nan=False))
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    import errno
    import socket

    from facekeypoints.models.weights import SHIPPED
    from facekeypoints.serve.app import create_app
    from facekeypoints.serve.server import bind, server

    models = {}
    for item in args.model or []:  # NAME=PATH, or a shipped name
        # a model file whose path holds = (runs/lr=0.01/best.pt) is that file, not NAME=PATH
        name, eq, path = (item, "", "") if os.path.isfile(os.path.expanduser(item)) else item.partition("=")
        if not name or (eq and not path):
            raise ValueError(f"--model {item!r}: give NAME=PATH or a shipped model's name")
        if eq and path not in SHIPPED and not os.path.exists(os.path.expanduser(path)):
            # either reading may be the one meant (a missing runs/lr=0.01/best.pt, or a typo in PATH): both said
            raise ValueError(f"--model {item!r}: read as NAME=PATH (name {name!r}, path {path!r}), but neither "
                             f"{item!r} nor {path!r} exists; give an existing model file, NAME=PATH or a shipped "
                             f"model's name ({', '.join(SHIPPED)})")
        if name in models:
            raise ValueError(f"--model {item!r}: the name {name!r} is already served; give each model its own name")
        models[name] = path or name
    try:  # the port first: taken, it is one error line, before models load and before "serving on"
        sock = bind(args.host, args.port)
    except socket.gaierror as err:
        raise ValueError(f"--host {args.host!r}: not an address this machine can bind ({err.strerror or err})") from None
    except OSError as err:
        hint = " (is another server running there? pick another --port)" if err.errno == errno.EADDRINUSE else ""
        raise ValueError(f"cannot serve on {args.host}:{args.port}: {(err.strerror or str(err)).lower()}{hint}") from None
    with sock:
        app = create_app(models or None, detector=args.detector, workers=args.workers, max_body=args.max_body,
                         max_pixels=args.max_pixels or None, max_uploads=args.max_uploads,
                         upload_timeout=args.upload_timeout)
        host = f"[{args.host}]" if ":" in args.host else args.host  # an IPv6 address is bracketed in a URL
        print(f"serving on http://{host}:{args.port}/ (API: /v1/keypoints, /v1/models, /healthz, "
              "/openapi.json)", file=sys.stderr)
        instance = server(app, answer_timeout=args.upload_timeout)
        try:
            instance.run(sockets=[sock])
        except KeyboardInterrupt:  # Ctrl-C or SIGTERM is how a server stops, as under uvicorn.run: not an error
            pass
    return 0 if instance.started else 3  # 3: uvicorn's code for a failed start-up (it logged why)


def _cmd_demo(args: argparse.Namespace) -> int:
    from facekeypoints.demo import run_demo

    run_demo(args.output, model=args.model, backend=args.backend)
    return 0


def _add_inference(sub) -> None:
    fmt = argparse.RawDescriptionHelpFormatter
    p = sub.add_parser("predict", help="faces and keypoints in images, folders, videos or a Kaggle CSV",
                       epilog=PREDICT_EXAMPLES, formatter_class=fmt)
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image, folder (recursive), video, or Kaggle CSV")
    p.add_argument("-o", "--output", help="a folder (default predictions/: JSON lines + drawings), a .jsonl, .json "
                   "or .csv file, or - for JSON lines on standard output; for a Kaggle CSV input, a .csv file")
    p.add_argument("--model", help="checkpoint .pt, exported .onnx or shipped model name (kaggle15, ibug68); kaggle15 when omitted")
    p.add_argument("--backend", choices=["torch", "onnx"], help="default: onnx (ONNX Runtime) on the CPU; torch runs checkpoints on any device")
    p.add_argument("--detector",
                   help="face detector: haar (default), cnn (ours), dlib (HOG; pip install 'facekeypoints[dlib]') "
                        "or none; a Kaggle CSV uses none (its faces are framed; another is refused)")
    p.add_argument("--min-face", type=at_least(1), help="haar, cnn: find faces down to this many pixels in any image, "
                   "at least 8 (slower on large photos; default: whatever max-side allows)")
    p.add_argument("--max-side", type=at_least(16), help="haar, cnn: scale the image to this longer side before "
                   "searching (defaults: haar 240, 64 px faces in a 640x480 frame; cnn 480, plus a 240 pass for large "
                   "faces; at least: haar 48, cnn 16)")
    p.add_argument("--no-draw", action="store_true", help="write JSON only, no drawn images or video")
    p.add_argument("--overwrite", action="store_true", help="replace files in the -o folder that this run writes "
                   "(predictions.jsonl, drawings, video .jsonl/.mp4); without it a run that would replace any is refused")
    p.add_argument("--no-refine", action="store_true", help="one keypoint pass per face (no re-framing)")
    add_tta_options(p, "also predict each face mirrored and average (about twice the model time)")
    p.add_argument("--max-pixels", type=at_least(0),  # default None: not given (refused for a Kaggle CSV)
                   help="refuse larger images, from their header (default 100000000, under 1 GB each); 0: no limit")
    p.add_argument("--batch-size", type=at_least(1), help="images read and predicted together (default 16); for a "
                   "Kaggle CSV, faces per model call (default 64)")
    p.add_argument("--threads", type=at_least(1, max_threads()), help="backend threads (default: the library's)")
    p.add_argument("--device", default="cpu", help=DEVICE_HELP + "; a GPU runs the model with torch")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_cmd_predict)
    p = sub.add_parser("export", help="export a checkpoint to ONNX (its model card in the metadata), or slim it",
                       epilog=EXPORT_EXAMPLES, formatter_class=fmt)
    p.add_argument("--model", help="checkpoint .pt or shipped model name (kaggle15, ibug68); kaggle15 when omitted")
    p.add_argument("-o", "--output", required=True, help="the file to write (.onnx, or .pt with --format pt)")
    p.add_argument("--format", choices=["onnx", "pt"], default="onnx",
                   help="onnx (default), or pt: a checkpoint without optimizer state, in the current format")
    # defaults None: not given (refused with --format pt); 17 and cpu for onnx
    p.add_argument("--opset", type=int, help="ONNX opset, 9..20 (default 17)")
    p.add_argument("--device", help=DEVICE_HELP + " to trace on (the graph is the same)")
    p.set_defaults(func=_cmd_export)
    p = sub.add_parser("bench", help="ms/face, faces/s (torch, ONNX Runtime), ms per 640x480 frame, video jitter",
                       epilog=BENCH_EXAMPLES, formatter_class=fmt)
    p.add_argument("--model", help="checkpoint .pt, .onnx or shipped model name (kaggle15, ibug68); kaggle15 when omitted")
    p.add_argument("--random", metavar="ARCH",
                   help="time a randomly initialised registered model instead, e.g. keypoint_net")
    p.add_argument("--threads", type=at_least(1, max_threads()), default=2,
                   help="threads for torch, ONNX Runtime and OpenCV (default 2)")
    p.add_argument("--batch", type=at_least(1), default=256, help="large batch for throughput (default 256)")
    p.add_argument("--repeats", type=at_least(1), default=50, help="timed runs per measurement (default 50)")
    p.add_argument("--jitter-frames", type=at_least(0), default=60, help="frames of the still-face clip; 0 skips it")
    p.add_argument("--json", metavar="OUT", help="also write the figures to this JSON file, or - for standard output "
                   "(the figure lines then go to standard error)")
    p.add_argument("--device", default="cpu", help=DEVICE_HELP + " for the torch timings (ONNX Runtime: CPU)")
    p.set_defaults(func=_cmd_bench)
    p = sub.add_parser("serve", help="the keypoint service: JSON API and a web page (FastAPI)",
                       epilog=SERVE_EXAMPLES, formatter_class=fmt)
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=at_least(1, 65535), default=8000, help="1..65535 (default 8000)")
    p.add_argument("--workers", type=at_least(1), default=2, help="threads running models; more requests queue")
    p.add_argument("--model", action="append", metavar="NAME[=PATH]",
                   help="a model to serve (repeat); default: the shipped kaggle15 and ibug68")
    p.add_argument("--detector", default="haar", help="default face detector (haar, cnn, dlib); ?detector= overrides")
    p.add_argument("--max-body", type=at_least(1), default=20 * 1024 * 1024,
                   help="largest upload in bytes (default 20971520, 20 MB)")
    p.add_argument("--max-pixels", type=at_least(0), default=50_000_000,
                   help="largest image, from its header (default 50000000); 0: no limit")
    p.add_argument("--max-uploads", type=at_least(1, 10_000), default=16,
                   help="uploads read, queued, running or being answered at once, 1..10000 (default 16); more are "
                   "answered 503 at once. Memory: each upload is held once until its answer is sent, so about "
                   "max-uploads x max-body bytes on top of the models")
    p.add_argument("--upload-timeout", type=at_least(1, 3600), default=30, metavar="SECONDS",
                   help="an upload that sends nothing for this long is answered 408 and dropped, and a client that "
                   "reads none of its answer for this long is dropped; 1..3600 (default 30)")
    p.set_defaults(func=_cmd_serve)
    p = sub.add_parser("demo", help="find faces and keypoints on photos that ship with the dependencies",
                       epilog=DEMO_EXAMPLES, formatter_class=fmt)
    p.add_argument("-o", "--output", default="demo-output",
                   help="folder for drawn images and JSON (default demo-output); each run replaces the files "
                   "it wrote before (<photo>.jpg, <photo>.json), as `make demo` runs it again, and refuses to "
                   "replace other files of those names")
    p.add_argument("--model", help="checkpoint .pt, .onnx or shipped model name (kaggle15, ibug68); kaggle15 when omitted")
    p.add_argument("--backend", choices=["torch", "onnx"])
    p.set_defaults(func=_cmd_demo)


class _StoreOnce(argparse._StoreAction):  # noqa: SLF001 (argparse's own "store", which every option uses)
    """A single-valued option given twice is refused, as the service refuses a repeated query option:
    argparse would keep the last value without a word (--model ibug68 --model kaggle15)."""

    def __call__(self, parser, namespace, values, option_string=None):
        given = namespace.__dict__.setdefault("_given_once", {})
        if self.dest in given:
            raise argparse.ArgumentError(self, f"given twice ({given[self.dest]}, then {option_string or ''} "
                                               f"{_shown(values)}); give it once")
        given[self.dest] = f"{option_string or ''} {_shown(values)}".strip()
        super().__call__(parser, namespace, values, option_string)


def _shown(values) -> str:
    return " ".join(map(str, values)) if isinstance(values, list) else str(values)


class _Parser(argparse.ArgumentParser):
    """argparse with a suggestion for a mistyped mode (Python 3.11's argparse gives none), and every
    single-valued option refused when given twice (``_StoreOnce``, argparse's default action here)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.register("action", None, _StoreOnce)
        self.register("action", "store", _StoreOnce)

    def parse_known_args(self, args=None, namespace=None):
        self.given = list(sys.argv[1:] if args is None else args)  # a mode's parser gets the words after the mode
        return super().parse_known_args(args, namespace)

    def error(self, message: str):
        match = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
        if match:
            choices = re.findall(r"'([^']*)'", match.group(2))
            # SERVE finds serve: the modes are lower case
            close = difflib.get_close_matches(match.group(1).lower(), choices, n=2, cutoff=0.5)
            message += f"; did you mean {' or '.join(close)}?" if close else ""
        # an input named like an option (-dash.jpg) is read as one: "required: INPUT", "unrecognized arguments"
        given = getattr(self, "given", [])
        given = given[:given.index("--")] if "--" in given else given
        dashed = next((word for word in given if word.startswith("-") and word not in self._option_string_actions
                       and os.path.lexists(word)), None)
        if dashed:
            message += f"; {dashed} is a file: write ./{dashed} or put -- before the inputs"
        self.print_usage(sys.stderr)
        self.exit(2, _error_line(message, self.prog) + "\n")  # argparse's own words, with the rank


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="facekeypoints", description=__doc__.splitlines()[0], epilog=EXAMPLES,
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"facekeypoints {version('facekeypoints')}")
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an unexpected error")
    sub = parser.add_subparsers(dest="mode", required=True, parser_class=_Parser)
    for add in (_add_schemas, _add_data, _add_training, _add_train_commands, _add_inference):
        add(sub)
    return parser


def _parse(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """Parse, and name the closest option of the chosen mode for an unknown one."""
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        mode = parser._subparsers._group_actions[0].choices[args.mode]  # noqa: SLF001 (argparse keeps it there)
        words = args.mode
        while mode._subparsers is not None:  # noqa: SLF001 (data info: the sub-mode's own options and name)
            below = mode._subparsers._group_actions[0]  # noqa: SLF001
            if getattr(args, below.dest, None) not in below.choices:
                break
            words += f" {getattr(args, below.dest)}"
            mode = below.choices[getattr(args, below.dest)]
        options = [o for action in mode._actions for o in action.option_strings]  # noqa: SLF001
        hints = [f"{u} (it goes before the mode: facekeypoints --debug {args.mode} ...)" if u == "--debug"
                 else f"{u} (did you mean {close[0]}?)" if (close := difflib.get_close_matches(u.split("=")[0], options, n=1))
                 # argparse takes the inputs given before the first option only: an existing file said as such
                 else f"{u} (an input after an option: give every input first, facekeypoints {words} INPUT... "
                      "--options)" if not u.startswith("-") and os.path.lexists(u)
                 else u for u in unknown]
        mode.error(f"unrecognized arguments: {' '.join(hints)}")
    # an empty value ("-o ''", a shell variable that was not set) is never a path or a name: said, not
    # quietly taken for the default (which -o '' used to write into)
    command = parser
    while command is not None:  # the mode's parser, and a sub-mode's (data info) below it
        below = None
        for action in command._actions:  # noqa: SLF001 (argparse keeps them there)
            value = getattr(args, action.dest, None)
            if isinstance(action, argparse._SubParsersAction):  # noqa: SLF001
                below = action.choices.get(value)
            elif any(isinstance(v, str) and not v.strip() for v in (value if isinstance(value, list) else [value])):
                command.error(f"{'/'.join(action.option_strings) or action.metavar or action.dest} is empty; "
                              "give a value")
        command = below
    return args


def _error_line(message: str, prog: str = "") -> str:
    """``error: message`` (after ``prog: `` given, as argparse says it). Under torchrun (or a cluster
    job that sets RANK) each rank says its own errors, prefixed with its rank: the rank that lacks its
    data is named, not lost behind rank 0's "connection closed by peer"."""
    rank = os.environ.get("RANK", "")
    return f"{f'rank {rank}: ' if rank else ''}{f'{prog}: ' if prog else ''}error: {message}"


def _say_error(message: str) -> None:
    if sys.stderr is not None:  # closed (2>&-) before main() points it at /dev/null
        print(_error_line(message), file=sys.stderr)


_SIGNALS_SEEN: list[int] = []  # SIGINT/SIGTERM received by this run


def _interrupt(signum, frame):
    """SIGINT and SIGTERM: a KeyboardInterrupt, remembered. An interrupt can surface as another error
    (one that lands inside ``import onnxruntime`` leaves it half registered, and the next import fails
    with an ImportError): that is still said as an interruption."""
    _SIGNALS_SEEN.append(signum)
    raise KeyboardInterrupt


def _interrupted(err: KeyboardInterrupt | None) -> int:
    """Says the run was interrupted; predict says what it kept (README: finished results are kept)."""
    partial = getattr(err, "partial", None)
    print(f"interrupted: {partial}" if partial else "interrupted", file=sys.stderr)
    return 130


def _one_line_warning(message, category, filename, lineno, line=None) -> str:
    """For users: one line (a library's message over several lines is joined), and no source file
    and line of ours under it."""
    from facekeypoints.data.dataset import one_line

    text = " ".join(part.strip() for part in str(message).splitlines() if part.strip())
    return f"warning: {one_line(text)}\n"  # a file name's escape sequences (ESC[2J) shown, not run


def main(argv: list[str] | None = None) -> int:
    # SIGTERM (kill, timeout, docker stop) ends a run as Ctrl-C does: finished results are kept and
    # temporary files removed, instead of the process vanishing mid-write (training has its own handler);
    # first of all, so that a Ctrl-C while the options are read is said as one too
    _SIGNALS_SEEN.clear()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _interrupt)
    if _SIGNALS_WHILE_STARTING:  # noted while this module's imports ran (the command's handler above)
        return _interrupted(None)
    try:
        args = _parse(build_parser(), argv)
    except KeyboardInterrupt:
        return _interrupted(None)
    if not args.debug:
        warnings.formatwarning = _one_line_warning
    # Every command but serve prints its results or summary to standard output: closed (>&-), Python
    # has no sys.stdout and each print would be lost silently (or crash midway), so nothing is started.
    if sys.stdout is None and args.func is not _cmd_serve:
        _say_error("standard output is closed; nothing was written")
        return 2
    stderr = sys.stderr
    if stderr is None:  # closed (2>&-): what is written there (bars, warnings, decoders) goes to /dev/null, not a crash
        devnull = os.open(os.devnull, os.O_WRONLY)  # the lowest free descriptor: 2 itself when it is closed
        if devnull != 2:
            os.dup2(devnull, 2)
            os.close(devnull)
        sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115 (lives as long as the command)
    else:  # a reader of stderr that leaves (2>&1 | head) neither stops the run nor sets its exit code
        sys.stderr = _ReaderMayLeave(stderr)
    try:
        code = args.func(args)
        if sys.stdout is not None:
            sys.stdout.flush()  # a full stdout fails here, not unseen at exit
        return code
    except (ValueError, FileNotFoundError) as err:  # bad input: a clear message, no traceback
        if _SIGNALS_SEEN:
            return _interrupted(None)
        _say_error(str(err))
        return 2
    except WriteError as err:  # full disk and the like: the output named, no traceback
        _say_error(err.strerror)
        return 1
    except BrokenPipeError:  # `facekeypoints data info X | head` closed our stdout early: not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt as err:
        return _interrupted(err)
    except OSError as err:
        if err.errno in (errno.ENOSPC, errno.EFBIG) and err.filename is None and _stdout_failed(err):
            _say_error(f"standard output: {os.strerror(err.errno).lower()}")
            return 1
        return _unexpected(err, args.debug)
    except Exception as err:  # a bug or an environment failure: one line unless --debug asks for more
        return _unexpected(err, args.debug)
    finally:
        sys.stderr = stderr


class _ReaderMayLeave:
    """``sys.stderr`` whose reader may go away (``2>&1 | head``): what is written after that is
    dropped, so the run goes on and its exit code still says whether something failed (a broken
    pipe in a summary line used to end the command with 0). Everything else is the stream's own."""

    def __init__(self, stream):
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            self._gone()
            return len(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            self._gone()

    def _gone(self) -> None:
        """Point the stream's descriptor at /dev/null: what it still buffers goes nowhere, without a
        second broken pipe at exit."""
        with contextlib.suppress(OSError, ValueError, AttributeError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), self._stream.fileno())

    def __getattr__(self, name: str):
        return getattr(self._stream, name)


def _stdout_failed(err: OSError) -> bool:
    """Whether ``err`` (no space, file too large, without a file name) is standard output's: it is
    /dev/full, or a file on a disk with no space left or at the file-size limit. Looked at, not
    written to (a failed flush drops what it held, so a second one would pass). What it holds is
    dropped, so that the flush at exit does not fail again with a traceback."""
    import stat

    try:
        fd = sys.stdout.fileno()
        info = os.fstat(fd)
        if stat.S_ISCHR(info.st_mode):
            full = (os.major(info.st_rdev), os.minor(info.st_rdev)) == (1, 7)  # /dev/full
        elif not stat.S_ISREG(info.st_mode):
            full = False
        elif err.errno == errno.ENOSPC:
            disk = os.fstatvfs(fd)
            full = min(disk.f_bavail, disk.f_bfree) == 0
        else:
            import resource

            limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
            full = limit != resource.RLIM_INFINITY and info.st_size >= limit
    except (OSError, ValueError, AttributeError, ImportError):  # no descriptor (a test's capture), no such call
        return False
    if full:
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), fd)
    return full


def _unexpected(err: Exception, debug: bool) -> int:
    """A bug or an environment failure: one line unless --debug asks for the traceback; an error met
    while an interrupt was handled, or after one, is the interruption."""
    if _SIGNALS_SEEN or any(isinstance(cause, KeyboardInterrupt) for cause in _chain(err)):
        return _interrupted(None)
    if debug:
        raise err
    where = f" ({err.filename})" if isinstance(err, OSError) and err.filename else ""
    _say_error(f"{type(err).__name__}: {err}{where} (run with --debug for the traceback)")
    return 1


def _chain(err: BaseException):
    """``err`` and the exceptions it was raised from or while handling."""
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        yield err
        err = err.__cause__ or err.__context__


if __name__ == "__main__":
    sys.exit(main())
