"""neuroscan (or python -m tumor_model): predict, explain, evaluate, train, adapt, report and
the dashboard, each a command below.

The parser is declared here from one module per command group (`data`, `training`, `model`,
`predict`, `release`, `dashboard`); each handler imports what it needs when it runs, so
`--help` and argument errors answer without loading TensorFlow. Framework log lines are hidden
unless --verbose.

The model read by every command that takes --artifacts is, in order: --artifacts, else
$NEUROSCAN_ARTIFACTS, else the model shipped with the package (from any working folder)."""

from __future__ import annotations

import argparse
import os
import sys

from tumor_model.commands import dashboard, data, model, predict, release, training


def common() -> argparse.ArgumentParser:
    """Flags every command takes (a parent parser)."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument(
        "--verbose", action="store_true", help="show TensorFlow's and Keras's own log lines"
    )
    return parent


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="neuroscan",
        description=__doc__.split("\n\n")[0],
        epilog="The model: --artifacts DIR, else $NEUROSCAN_ARTIFACTS, else the shipped model.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    parent = common()
    for group in (data, training, model, predict, release, dashboard):
        group.add_parsers(sub, parent)
    return parser


def quiet_frameworks() -> None:
    """Hide TensorFlow's C++ and Python log lines and Keras's progress bars (before they load)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("ABSL_MIN_LOG_LEVEL", "3")
    import logging
    import warnings

    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    logging.getLogger("absl").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module="keras")
    warnings.filterwarnings("ignore", module="tensorflow")


def main(argv=None) -> int:
    """The console script: exit 0, 1 when some input failed (predict), 2 on a refused command."""
    args = build_parser().parse_args(argv)
    if not args.verbose:
        quiet_frameworks()
    from tumor_model.artifacts import ArtifactError

    try:
        return args.func(args)
    except (ValueError, ArtifactError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
