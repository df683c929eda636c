"""neuroscan (or python -m tumor_model): summarize | train | cv | report-protocol | evaluate |
predict | localise | pack | refit-guard | adapt | anchor.

Top to bottom: one `cmd_*` handler per command (each reads its arguments, calls the package and
prints JSON), then the parser, built in three groups (data, training, model commands)."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import sys
from pathlib import Path

from .config import GEOMETRIES, Settings
from .explain import METHODS
from .overlay import COLORMAPS

SKIP_FIELDS = {"data_dirs", "extra"}


def _settings_args(parser: argparse.ArgumentParser) -> None:
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


def _settings(args) -> Settings:
    values = {
        f.name: getattr(args, f.name)
        for f in dataclasses.fields(Settings)
        if f.name not in SKIP_FIELDS
    }
    if args.data_dirs:
        values["data_dirs"] = tuple(args.data_dirs)
    return Settings(**values)


def cmd_summarize(args) -> int:
    from . import data, split
    from .artifacts import write_json

    files = data.find_all(args.data_dirs or Settings().data_dirs)
    scanned = data.scan(files, args.dup_thumb)
    groups = split.duplicate_groups(list(scanned.images.sha256), scanned.thumbs, args.dup_threshold)
    summary = data.summarize(scanned, groups)
    write_json(summary, args.out)
    per = {k: v["count"] for k, v in summary["classes"].items()}
    print(
        json.dumps(
            {
                "images": summary["images"],
                "per_class": per,
                "unreadable": len(summary["unreadable"]),
                "groups_per_class": summary["duplicates"]["groups_per_class"],
                "sources": {
                    name: {
                        k: src[k]
                        for k in (
                            "files",
                            "classes",
                            "image_sizes",
                            "duplicate_groups",
                            "single_class",
                        )
                    }
                    for name, src in summary["sources"].items()
                },
                "written": str(args.out),
            }
        )
    )
    return 0


def cmd_train(args) -> int:
    from . import pipeline

    settings = _settings(args)
    pipeline.run(
        settings, cv_folds=args.cv, shortcut=args.shortcut, report_protocol=args.report_protocol
    )
    return 0


def cmd_cv(args) -> int:
    from . import crossval
    from .artifacts import CV_GROUPS

    with contextlib.redirect_stdout(sys.stderr):  # progress on stderr, the result on stdout
        result = crossval.cv_artifacts(
            args.artifacts,
            args.data_dir,
            args.folds,
            args.save,
            full=args.fine_tune,
            by=tuple(args.by or CV_GROUPS),
            cache_dir=args.cache_dir,
            hold_out=tuple(args.hold_out or ()),
            twin=args.twin,
        )
    from .artifacts import SOURCE_BLOCKS
    from .evaluate import cv_rows

    summary = {}  # one headline per CV block; "rows" has every block and held-out source
    for name, block in result.items():
        pooled = block["pooled"] if name in SOURCE_BLOCKS else block
        summary[name] = {
            **{k: block[k] for k in ("groups", "recipe", "folds") if k in block},
            **{
                k: _round4(pooled["metrics"][k]["value"])
                for k in ("accuracy", "balanced_accuracy", "roc_auc", "sensitivity", "specificity")
                if k in pooled["metrics"]
            },
        }
    print(json.dumps({**summary, "rows": cv_rows(result), "saved": args.save}, indent=2))
    return 0


def _round4(value):
    return None if value is None or value != value else round(value, 4)  # NaN: not defined


def cmd_report_protocol(args) -> int:
    from . import protocols

    with contextlib.redirect_stdout(sys.stderr):  # progress on stderr, the result on stdout
        result = protocols.protocol_artifacts(args.artifacts, args.save, args.cache_dir)
    summary = {k: round(result["metrics"][k]["value"], 4) for k in ("accuracy", "roc_auc")}
    summary["test_files_with_copy_in_train"] = result["test_files_with_copy_in_train"]
    print(json.dumps({**result["protocol"], **summary, "saved": args.save}, indent=2))
    return 0


def cmd_evaluate(args) -> int:
    from . import evaluate_folder

    if args.shortcut:
        print(
            json.dumps(
                evaluate_folder.shortcut(
                    args.artifacts, (args.data_dir or [None])[0], args.shortcut
                )
            )
        )
        return 0
    result = evaluate_folder.run(
        args.artifacts, args.data_dir, args.all, args.bootstrap, args.threshold, args.save
    )
    text = json.dumps(result, indent=2)
    if args.out:
        Path(args.out).write_text(text)
    print(text if not args.out else json.dumps({"written": args.out, **result["summary"]}))
    return 0


def cmd_predict(args) -> int:
    from .predict import Predictor
    from .volume import predict_inputs  # volumes: one line each, per-slice results inside

    if not 0.0 <= args.alpha <= 1.0:
        raise ValueError(f"--alpha must be in [0, 1], got {args.alpha!r}")
    predictor = Predictor(args.artifacts)
    if args.explain:
        _explain_choice(predictor, args)
        Path(args.explain).mkdir(parents=True, exist_ok=True)
    failed, used = 0, set()
    for result in predict_inputs(predictor, [Path(f) for f in args.files], args.files):
        if args.predict_anyway and "slices" not in result:
            result = predictor.predict_anyway(result)
        withheld = result.get("label") is None  # no verdict (not a brain-MRI slice): no map
        if args.explain and "error" not in result and "slices" not in result and not withheld:
            result = _explain_one(predictor, result, args, used)
        failed += "error" in result
        print(json.dumps(_shown(result)), flush=True)
    return 1 if failed else 0


def _shown(result: dict) -> dict:
    """A prediction as the user reads it: "label" and "explained" in config.DISPLAY_NAMES
    ("tumour" / "no tumour"), not the machine-readable class names of the artifacts."""
    from .config import DISPLAY_NAMES

    return {
        k: DISPLAY_NAMES.get(v, v) if k in ("label", "explained") else v for k, v in result.items()
    }


def _explain_choice(predictor, args) -> None:
    """--method / --layer, defaulting to the choice of `neuroscan localise` shipped with the model
    (else Grad-CAM on last_conv); checked before any scan is read."""
    from .localise import default_explanation

    method, layers = default_explanation(predictor.dir, predictor.model)
    if args.method is not None and args.method != method:
        method, layers = args.method, None  # another method: its default layer
    args.method = method
    args.layer = predictor.explainer().layers(args.layer or layers, method) or None


def _explain_one(predictor, result: dict, args, used: set) -> dict:
    """Write <DIR>/<stem>_<method>.png (a numbered suffix when two inputs share a stem) and add
    its path as "overlay"; the map explains the predicted class."""
    from .imageio import ImageLoadError, load_scan
    from .overlay import overlay, to_png

    try:
        image, _ = load_scan(Path(result["file"]), result["file"])
    except ImageLoadError as err:  # the file changed since it was predicted
        return {"file": result["file"], "error": str(err)}
    target = predictor.class_names.index(result["label"])
    pixels = predictor.pixels(image)
    expl = predictor.explainer().explain(pixels, args.method, target, args.layer)
    stem, n = f"{Path(result['file']).stem}_{args.method}", 1
    path = Path(args.explain) / f"{stem}.png"
    while str(path) in used or (n > 1 and path.exists()):
        n += 1
        path = Path(args.explain) / f"{stem}_{n}.png"
    used.add(str(path))
    path.write_bytes(to_png(overlay(pixels, expl.heatmap, args.alpha, args.colormap)))
    return {
        **result,
        "overlay": str(path),
        "explained": predictor.class_names[target],
        "method": args.method,
        "layers": list(expl.layers),
    }


def cmd_localise(args) -> int:
    from . import localise

    result = localise.run(
        args.artifacts,
        args.boxes,
        args.per_half,
        args.scorecam_per_half,
        args.smoothgrad_per_half,
        args.latency_n,
        args.seed,
    )
    written = localise.write(result, args.out, args.artifacts if args.save else None)
    print(json.dumps({"default": result["default"], "written": written}, indent=2))
    return 0


def cmd_pack(args) -> int:
    from .pack import pack

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
    print(json.dumps({k: v for k, v in info.items() if k != "unreadable"}, indent=2))
    return 0


def cmd_refit_guard(args) -> int:
    from .pipeline import refit_guard

    with contextlib.redirect_stdout(sys.stderr):
        entry = refit_guard(args.artifacts, args.data_dir or (), args.seed)
    print(json.dumps({"artifacts": str(args.artifacts), **entry}))
    return 0


def cmd_adapt(args) -> int:
    from . import adapt

    with contextlib.redirect_stdout(sys.stderr):
        record = adapt.adapt(args.artifacts, args.data_dirs, args.out, args.local_share)
    keys = ("balanced_accuracy", "sensitivity", "specificity", "roc_auc", "ece")
    figures = {
        step: {
            "how": record[step]["how"],
            **{k: _rounded(record[step]["metrics"][k]) for k in keys},
        }
        for step in ("before", "recalibrated", "retrained")
    }
    head = {k: record[k] for k in ("local_scans", "local_classes", "local_fingerprint")}
    print(json.dumps({**head, **figures, "out": args.out}, indent=2))
    return 0


def _rounded(m: dict) -> dict:
    return {k: _round4(v) for k, v in m.items()}


def cmd_anchor(args) -> int:
    from . import adapt

    with contextlib.redirect_stdout(sys.stderr):
        entry = adapt.write_anchor(args.artifacts)
    print(json.dumps({"artifacts": str(args.artifacts), **entry}))
    return 0


def _cache_dir_arg(p: argparse.ArgumentParser) -> None:
    """--cache-dir for commands that rerun a trained model's recipe on this machine."""
    p.add_argument(
        "--cache-dir",
        default=Settings.cache_dir,
        help="frozen-feature cache on this machine (default: %(default)s; the path recorded in "
        "settings.json is where the model was trained)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="neuroscan", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    _data_commands(sub)
    _training_commands(sub)
    _model_commands(sub)
    return parser


def _data_commands(sub) -> None:
    """summarize, pack, refit-guard: commands that write a summary, a pack or a guard."""
    p = sub.add_parser("summarize", help="scan a dataset and write dataset_summary.json")
    p.add_argument("--data-dir", action="append", dest="data_dirs", metavar="DIR")
    p.add_argument("--out", default="dataset_summary.json")
    p.add_argument("--dup-thumb", type=int, default=Settings.dup_thumb)
    p.add_argument("--dup-threshold", type=float, default=Settings.dup_threshold)
    p.set_defaults(func=cmd_summarize)

    p = sub.add_parser(
        "pack",
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
        help="refit a trained model's out-of-distribution guard (ood.npz) with this version",
    )
    p.add_argument("--artifacts", default="artifacts")
    p.add_argument(
        "--data-dir",
        action="append",
        metavar="DIR",
        help="also fit it on this root (repeat): a source split.csv lacks is split by duplicate "
        "group, half held out for measuring; a source it has replaces that source's root",
    )
    p.add_argument("--seed", type=int, default=None, help="that split's seed (default: model's)")
    p.set_defaults(func=cmd_refit_guard)


def _training_commands(sub) -> None:
    """train, cv, report-protocol."""
    p = sub.add_parser("train", help="train, evaluate and write artifacts")
    _settings_args(p)
    p.add_argument(
        "--cv",
        type=int,
        default=0,
        metavar="K",
        help="also run grouped K-fold CV of the frozen-feature recipe (0 = off)",
    )
    p.add_argument(
        "--shortcut",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="re-encode test images as padded PNGs and report the accuracy change",
    )
    p.add_argument(
        "--report-protocol",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="also train and test the same recipe on the report's random split",
    )
    p.set_defaults(func=cmd_train)

    p = sub.add_parser(
        "cv",
        help="grouped and cross-source K-fold CV of a trained model's recipe (frozen stage, "
        "or the whole recipe with --fine-tune)",
    )
    p.add_argument("--artifacts", default="artifacts", help="reads its settings.json")
    p.add_argument("--data-dir", action="append", metavar="DIR", help="default: the model's data")
    p.add_argument("--folds", type=int, default=10)
    p.add_argument(
        "--by",
        action="append",
        choices=("duplicate", "source", "loso"),
        help="fold grouping, repeatable (default: duplicate and source). 'source': the "
        "cross-source CV (image sizes kept whole) and, with several sources (--data-dir "
        "repeated), leave-one-source-out of the frozen stage; 'loso': leave-one-source-out "
        "alone (of the whole recipe with --fine-tune: a training run per source)",
    )
    p.add_argument(
        "--fine-tune",
        action="store_true",
        help="CV of the whole recipe, fine-tuning included: a training run per fold (about "
        "20 min per fold on 2 CPU cores for the shipped recipe); stored as cv_fine_tuned / "
        "cv_source_fine_tuned / loso_fine_tuned",
    )
    p.add_argument(
        "--hold-out",
        action="append",
        metavar="SOURCE",
        help="with --by loso: hold out only this source (a root's folder name), repeatable",
    )
    p.add_argument(
        "--twin",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="with --by loso: also test each held-out one-class source with a recipe trained "
        "on the two-class sources alone ('twin absent': one more training run)",
    )
    _cache_dir_arg(p)
    p.add_argument(
        "--save", action="store_true", help="store the results in <artifacts>/metrics.json"
    )
    p.set_defaults(func=cmd_cv)

    p = sub.add_parser(
        "report-protocol",
        help="retrain a trained model's recipe on the report's random split and test it",
    )
    p.add_argument("--artifacts", default="artifacts", help="reads its settings.json")
    _cache_dir_arg(p)
    p.add_argument(
        "--save", action="store_true", help="store the result in <artifacts>/metrics.json"
    )
    p.set_defaults(func=cmd_report_protocol)


def _model_commands(sub) -> None:
    """evaluate, predict, adapt, anchor: commands that read a trained model."""
    from .adapt import LOCAL_SHARE

    p = sub.add_parser(
        "adapt",
        help="check the model on a folder of labelled local scans, refit temperature and "
        "threshold, retrain the head, and write the adapted artifacts folder",
    )
    p.add_argument("--artifacts", default="artifacts", help="the model to adapt")
    p.add_argument(
        "--data-dir",
        action="append",
        dest="data_dirs",
        metavar="DIR",
        required=True,
        help="labelled local scans in class folders (the layouts `train` reads); repeatable",
    )
    p.add_argument(
        "--out", default=None, help="a new folder for the adapted model (omit: check only)"
    )
    p.add_argument(
        "--local-share",
        type=float,
        default=LOCAL_SHARE,
        help=f"share of the head's loss the local scans weigh (default {LOCAL_SHARE})",
    )
    p.set_defaults(func=cmd_adapt)

    p = sub.add_parser(
        "anchor", help="write anchor.npz (what adapt retrains on) for a model trained without it"
    )
    p.add_argument("--artifacts", default="artifacts")
    p.set_defaults(func=cmd_anchor)

    p = sub.add_parser("evaluate", help="metrics of a trained model on its test split or a folder")
    p.add_argument("--artifacts", default="artifacts")
    p.add_argument(
        "--data-dir",
        action="append",
        metavar="DIR",
        help="labelled folder(s); default: the model's own test split",
    )
    p.add_argument("--all", action="store_true", help="evaluate every image under --data-dir")
    p.add_argument("--threshold", type=float, default=None, help="default: the model card's")
    p.add_argument("--bootstrap", type=int, default=1000)
    p.add_argument("--out", default=None, help="write the full JSON here")
    p.add_argument(
        "--save",
        action="store_true",
        help="with --all: record the figures (per source) in the model's metrics.json as how "
        "it does on sources it never saw; refused if any file is in its split.csv",
    )
    p.add_argument(
        "--shortcut",
        type=int,
        default=0,
        metavar="SIDE",
        help="instead: test accuracy after padding to SIDE x SIDE and re-encoding as PNG",
    )
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("predict", help="predict scans; one JSON object per line per file")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--artifacts", default="artifacts")
    p.add_argument(
        "--explain",
        metavar="DIR",
        default=None,
        help="write an explanation overlay <DIR>/<stem>_<method>.png per scan",
    )
    p.add_argument(
        "--method",
        choices=METHODS,
        default=None,
        help="explanation method for --explain (default: the one `neuroscan localise` chose, "
        "shipped in <artifacts>/localisation.json; without it gradcam)",
    )
    p.add_argument(
        "--layer",
        action="append",
        metavar="NAME",
        default=None,
        help="target layer of a CAM method (repeat to fuse several, as Layer-CAM does); default: "
        "the chosen layer(s) for the chosen method, else the model card's last_conv",
    )
    p.add_argument("--alpha", type=float, default=0.4, help="overlay opacity 0-1 (default 0.4)")
    p.add_argument(
        "--colormap",
        choices=tuple(COLORMAPS),
        default="jet",
        help="overlay colormap (default: jet)",
    )
    p.add_argument(
        "--predict-anyway",
        action="store_true",
        help="also give a label to a file the guard says is not a brain-MRI slice (is_mri "
        "false; without this its label and band are null); the warning stays on the line",
    )
    p.set_defaults(func=cmd_predict)

    from . import localise as loc

    p = sub.add_parser(
        "localise",
        help="localisation benchmark: pointing game and energy ratio of every explanation "
        "method and target layer on tumour boxes; --save ships the chosen default",
    )
    p.add_argument("--artifacts", default="artifacts")
    p.add_argument("--boxes", default=loc.DEFAULT_BOXES, help="default: %(default)s")
    for flag, default, what in (
        ("--per-half", loc.PER_HALF, "slices per half"),
        ("--scorecam-per-half", loc.SCORECAM_PER_HALF, "Score-CAM slices per half"),
        ("--smoothgrad-per-half", loc.SMOOTHGRAD_PER_HALF, "SmoothGrad slices per half"),
        ("--latency-n", loc.LATENCY_N, "explain calls timed per gradient CAM"),
        ("--seed", loc.SEED, "the halves' shuffle"),
    ):
        p.add_argument(flag, type=int, default=default, help=f"{what} (default %(default)s)")
    p.add_argument("--out", default="docs/localisation.json", help="JSON; the .md table beside it")
    p.add_argument(
        "--save",
        action="store_true",
        help="write the chosen default to <artifacts>/localisation.json (the CLI and app read it)",
    )
    p.set_defaults(func=cmd_localise)


def main(argv=None) -> int:
    from .artifacts import ArtifactError

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, ArtifactError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
