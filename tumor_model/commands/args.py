"""Flags several commands share, and how their values are read back."""

from __future__ import annotations

import argparse
import dataclasses
import json

from tumor_model.config import Settings

SKIP_FIELDS = {"data_dirs", "extra"}
ARTIFACTS_HELP = (
    "the model folder (default: $NEUROSCAN_ARTIFACTS, else the model shipped with neuroscan)"
)


def artifacts_arg(parser: argparse.ArgumentParser, what: str = "") -> None:
    """--artifacts DIR; None means artifacts.locate's order (env, then the shipped model)."""
    parser.add_argument("--artifacts", default=None, metavar="DIR", help=ARTIFACTS_HELP + what)


def model_folder(args):
    """The artifacts folder a command reads: --artifacts, $NEUROSCAN_ARTIFACTS or the shipped."""
    from tumor_model.artifacts import locate

    return locate(args.artifacts)


def cache_dir_arg(parser: argparse.ArgumentParser) -> None:
    """--cache-dir for commands that rerun a trained model's recipe on this machine."""
    parser.add_argument(
        "--cache-dir",
        default=None,
        help="frozen-feature cache on this machine (default: the one settings.json records, "
        f"where the model was trained, when that folder is here, else {Settings.cache_dir})",
    )


def settings_args(parser: argparse.ArgumentParser) -> None:
    """One --flag per Settings field, with the field's default."""
    parser.add_argument(
        "--data-dir",
        action="append",
        dest="data_dirs",
        metavar="DIR",
        help="image root (repeat for several sources); default: the shared dataset",
    )
    for f in dataclasses.fields(Settings):
        if f.name in SKIP_FIELDS:
            continue
        flag = "--" + f.name.replace("_", "-")
        if f.type == "bool":
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=f.default)
        else:
            kind = {"int": int, "float": float}.get(f.type, str)
            parser.add_argument(flag, type=kind, default=f.default, help=f"default: {f.default}")


def settings_from_args(args) -> Settings:
    values = {
        f.name: getattr(args, f.name)
        for f in dataclasses.fields(Settings)
        if f.name not in SKIP_FIELDS
    }
    if args.data_dirs:
        values["data_dirs"] = tuple(args.data_dirs)
    return Settings(**values)


def round4(value):
    """A figure as printed: 4 decimals; None for a missing or undefined (NaN) value."""
    return None if value is None or value != value else round(value, 4)


def rounded(figures: dict) -> dict:
    return {k: round4(v) for k, v in figures.items()}


def print_json(value, indent: int | None = 2) -> None:
    print(json.dumps(value, indent=indent), flush=True)
