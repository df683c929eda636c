"""predict: one JSON line per scan or volume (files, or folders read recursively), with an
explanation overlay per scan under --explain."""

from __future__ import annotations

import sys
from pathlib import Path

from tumor_model.commands.args import artifacts_arg, model_folder, print_json
from tumor_model.config import DISPLAY_NAMES, SKIP_SUFFIXES
from tumor_model.serving.explain import METHODS
from tumor_model.serving.overlay import COLORMAPS

SHOWN_KEYS = ("label", "explained")  # spelt as users read them (config.DISPLAY_NAMES)
DECIMALS = 4  # the threshold as printed
PROGRESS_EVERY = 100  # a progress line on stderr every this many results of a larger batch


def inputs(paths: list[str]) -> list[Path]:
    """The files to predict: each path as given, a folder replaced by the files under it
    (recursively, sorted; hidden files, folders and config.SKIP_SUFFIXES skipped: metadata,
    not scans). A missing path stays in the list,
    so that its line says so; an empty folder is refused."""
    out = []
    for text in paths:
        path = Path(text)
        if not path.is_dir():
            out.append(path)
            continue
        found = sorted(
            p
            for p in path.rglob("*")
            if p.is_file()
            and p.suffix.lower() not in SKIP_SUFFIXES
            and not any(part.startswith(".") for part in p.relative_to(path).parts)
        )
        if not found:
            raise ValueError(f"{text}: the folder holds no files to predict")
        out.extend(found)
    return out


def shown(result: dict) -> dict:
    """A result as the user reads it: labels in config.DISPLAY_NAMES ("tumour" / "no tumour",
    a volume's slices too), the threshold to DECIMALS, and no probability where the guard
    withheld the verdict (is_mri false, not predicted anyway)."""
    out = {k: DISPLAY_NAMES.get(v, v) if k in SHOWN_KEYS else v for k, v in result.items()}
    if isinstance(out.get("threshold"), float):
        out["threshold"] = round(out["threshold"], DECIMALS)
    if out.get("is_mri") is False and not out.get("predicted_anyway"):
        out["probability"] = None
    if isinstance(out.get("slices"), list):
        out["slices"] = [shown(s) for s in out["slices"]]
    return out


def cmd_predict(args) -> int:
    from tumor_model.commands.explaining import Overlays
    from tumor_model.serving.predict import Predictor
    from tumor_model.serving.volume import predict_inputs

    if not 0.0 <= args.alpha <= 1.0:
        raise ValueError(f"--alpha must be in [0, 1], got {args.alpha!r}")
    files = inputs(args.files)
    runtime = "keras" if args.explain and args.runtime == "auto" else args.runtime
    predictor = Predictor(model_folder(args), runtime)
    overlays = Overlays(predictor, args) if args.explain else None
    failed = 0
    for done, result in enumerate(predict_inputs(predictor, files, [str(f) for f in files]), 1):
        if len(files) > PROGRESS_EVERY and done % PROGRESS_EVERY == 0:
            print(f"predicted {done} of about {len(files)} inputs", file=sys.stderr, flush=True)
        if args.predict_anyway and "slices" not in result:
            result = predictor.predict_anyway(result)
        if overlays is not None and "error" not in result:
            result = overlays.add(result)
        failed += "error" in result
        print_json(shown(result), indent=None)
    return 1 if failed else 0


def add_parsers(sub, parent) -> None:
    p = sub.add_parser(
        "predict",
        parents=[parent],
        help="predict scans and volumes (files or folders); one JSON object per line per input",
    )
    p.add_argument("files", nargs="+", metavar="PATH", help="image, DICOM, NIfTI, zip or folder")
    artifacts_arg(p)
    p.add_argument(
        "--explain",
        metavar="DIR",
        default=None,
        help="write an explanation overlay <DIR>/<stem>_<method>.png per scan (a volume: one "
        "per slice) and the raw map beside it as .map.npy",
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
    p.add_argument(
        "--runtime",
        choices=("auto", "onnx", "keras"),
        default="auto",
        help="the network's runtime: auto (default) uses the model's ONNX export when it has "
        "one, without TensorFlow (Keras with --explain: maps need gradients)",
    )
    p.set_defaults(func=cmd_predict)
