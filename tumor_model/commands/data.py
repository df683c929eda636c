"""summarize, pack, refit-guard: commands that write a dataset summary, a pack or a guard."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

from tumor_model.commands.args import artifacts_arg, model_folder, print_json
from tumor_model.config import GEOMETRIES, Settings

SUMMARY_KEYS = ("files", "classes", "image_sizes", "duplicate_groups", "single_class")


def cmd_summarize(args) -> int:
    from tumor_model.artifacts import write_json
    from tumor_model.training import data, metadata, split

    files = data.find_all(args.data_dirs or Settings().data_dirs)
    scanned = data.scan(files, args.dup_thumb)
    groups = split.duplicate_groups(list(scanned.images.sha256), scanned.thumbs, args.dup_threshold)
    summary = data.summarize(scanned, groups)
    write_json(summary, args.out)
    sources = {  # and what a source's files.csv gave: patients, sequences, institutions
        name: {k: src[k] for k in (*SUMMARY_KEYS, *metadata.SUMMARY_KEYS) if k in src}
        for name, src in summary["sources"].items()
    }
    print_json(
        {
            "images": summary["images"],
            "per_class": {k: v["count"] for k, v in summary["classes"].items()},
            "unreadable": len(summary["unreadable"]),
            "groups_per_class": summary["duplicates"]["groups_per_class"],
            "sources": sources,
            "written": str(Path(args.out).resolve()),
        },
        indent=None,
    )
    return 0


def cmd_pack(args) -> int:
    from tumor_model.training.pack import pack

    with contextlib.redirect_stdout(sys.stderr):  # progress on stderr, the result on stdout
        info = pack(
            args.data_dir or Settings().data_dirs,
            args.out,
            args.size,
            args.geometry,
            args.quality,
            args.dup_thumb,
            args.weights,
            args.codec,
        )
    print_json({k: v for k, v in info.items() if k != "unreadable"})
    return 0


def cmd_refit_guard(args) -> int:
    from tumor_model.release.pipeline import refit_guard

    folder = model_folder(args)
    with contextlib.redirect_stdout(sys.stderr):
        entry = refit_guard(folder, args.data_dir or (), args.seed)
    print_json({"artifacts": str(folder), **entry}, indent=None)
    return 0


def add_parsers(sub, parent) -> None:
    p = sub.add_parser(
        "summarize", parents=[parent], help="scan a dataset and write dataset_summary.json"
    )
    p.add_argument("--data-dir", action="append", dest="data_dirs", metavar="DIR")
    p.add_argument("--out", default="dataset_summary.json")
    p.add_argument("--dup-thumb", type=int, default=Settings.dup_thumb)
    p.add_argument("--dup-threshold", type=float, default=Settings.dup_threshold)
    p.set_defaults(func=cmd_summarize)

    p = sub.add_parser(
        "pack",
        parents=[parent],
        help="pack images (as the model sees them, JPEG) and their scan records into a small "
        "folder that --data-dir reads like the original: for a machine with an upload limit",
    )
    p.add_argument("--data-dir", action="append", metavar="DIR", help="default: the shared set")
    p.add_argument("--out", required=True, help="a new folder")
    p.add_argument("--size", type=int, default=224, help="input side in pixels (default 224)")
    p.add_argument("--geometry", choices=GEOMETRIES, default=Settings.geometry)
    p.add_argument("--quality", type=int, default=80, help="quality 1-95 (default 80)")
    p.add_argument(
        "--codec",
        choices=("jpeg", "webp"),
        default="jpeg",
        help="image codec (default jpeg); webp stores about a third less at the same error",
    )
    p.add_argument("--dup-thumb", type=int, default=Settings.dup_thumb)
    p.add_argument("--weights", default=None, help="a backbone weights file to take along")
    p.set_defaults(func=cmd_pack)

    p = sub.add_parser(
        "refit-guard",
        parents=[parent],
        help="refit a trained model's out-of-distribution guard (ood.npz) with this version",
    )
    artifacts_arg(p)
    p.add_argument(
        "--data-dir",
        action="append",
        metavar="DIR",
        help="also fit it on this root (repeat): a source split.csv lacks is split by duplicate "
        "group, half held out for measuring; a source it has replaces that source's root",
    )
    p.add_argument("--seed", type=int, default=None, help="that split's seed (default: model's)")
    p.set_defaults(func=cmd_refit_guard)
