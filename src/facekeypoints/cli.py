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
def _add_data(sub) -> None:
    p = sub.add_parser("data", help="inspect, verify and convert keypoint data")
    dsub = p.add_subparsers(dest="data_cmd", required=True)
    # data subcommands are added below this line


# ---- train / evaluate / submit / compare / models (section owned by the training engine) ---------
def _add_training(sub) -> None:
    pass


# ---- predict / export / bench / demo (section owned by inference) --------------------------------
def _add_inference(sub) -> None:
    pass


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="facekeypoints", description=__doc__.splitlines()[0], epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="mode", required=True)
    for add in (_add_schemas, _add_data, _add_training, _add_inference):
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
