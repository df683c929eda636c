"""The artifacts contract: what a trained model's folder holds, stated once.

The trainer writes it, the CLI, predictor, dashboard, benchmarks and tests read it, and all of
them import the names below instead of restating them: file names, CSV columns, metrics.json
keys, protocol names and their labels, the model card, the one `ArtifactError`, and the atomic
writers (a killed run never leaves a half-written file or folder).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

# ----------------------------------------------------------------------------- files

MODEL, CARD, SETTINGS = "model.keras", "model_card.json", "settings.json"
HISTORY, METRICS, PREDICTIONS = "history.csv", "metrics.json", "predictions.csv"
SPLIT, SUMMARY, GUARD = "split.csv", "dataset_summary.json", "ood.npz"
SAMPLES, SAMPLES_CSV = "samples", "samples/samples.csv"
ANCHOR = "anchor.npz"  # pool-layer features of training rows: what `adapt` retrains the head on
FILES = (
    MODEL,
    CARD,
    SETTINGS,
    HISTORY,
    METRICS,
    PREDICTIONS,
    SPLIT,
    SUMMARY,
    GUARD,
    ANCHOR,
    SAMPLES,
)
# Optional, written by `neuroscan localise --save`: the explanation method and layer chosen on
# tumour boxes, with its localisation figures (read by the CLI and the Predict page).
LOCALISATION = "localisation.json"
# Optional, written by `neuroscan volume-rule --save`: how the volume rule (serving.volume.RULE)
# was chosen and checked on this model, with its sha256 (read by the Predict page and `report`).
VOLUME_RULE = "volume_rule.json"
# Written with the model by `train`, `adapt` and `neuroscan export`: the same network for ONNX
# Runtime (outputs: the probability and the pool features the guard reads); the model card's
# "export" block holds its sha256, and `predict` refuses an export that does not match it.
EXPORT = "model.onnx"
EXPORT_OUTPUTS = ("probability", "pool")
# Optional, written by `neuroscan lesion-head`: a decoder on the frozen backbone trained on lesion
# masks and boxes (serving.lesion), and its record (the classifier's and the head's sha256, the
# pixel threshold, the figures measured on held-out slices; read by `report` and the Predict page).
LESION_HEAD, LESION_RECORD = "lesion_head.keras", "lesion_head.json"

HISTORY_COLUMNS = [
    "epoch",
    "phase",
    "loss",
    "accuracy",
    "auc",
    "val_loss",
    "val_accuracy",
    "val_auc",
    "lr",
    "seconds",
]  # one row per epoch
COLUMNS = {
    HISTORY: HISTORY_COLUMNS,
    PREDICTIONS: ["path", "root", "source", "split", "group", "label", "probability"],
    SPLIT: ["path", "root", "source", "sha256", "group", "label", "split"],
    SAMPLES_CSV: ["file", "label", "class_name"],
}
# Per-file metadata a source's files.csv may give (training.metadata): patient, MRI sequence,
# institution. Optional columns of split.csv and predictions.csv: written when some file carries
# them, never required, so folders written before them still read.
PATIENT, SEQUENCE, INSTITUTION = "patient_id", "sequence", "institution"
FILE_METADATA = (PATIENT, SEQUENCE, INSTITUTION)
OPTIONAL_COLUMNS = {SPLIT: list(FILE_METADATA), PREDICTIONS: list(FILE_METADATA)}

WEIGHTS = "../shared/weights/mobilenet_v2_1.0_224_tfslim_imagenet_no_top.h5"
REBUILD = f"neuroscan train --data-dir <dataset> --weights {WEIGHTS}"
ENV = "NEUROSCAN_ARTIFACTS"  # the model folder to read when --artifacts is not given
SHIPPED_PACKAGE = "tumor_model.shipped"  # the wheel's copy of the repository's artifacts/


def shipped_dir() -> Path:
    """The model shipped with the package: the installed wheel's package data
    (`tumor_model/shipped/`, a copy of the repository's `artifacts/`), else, in a source
    checkout, `artifacts/` at the top of the repository."""
    installed = Path(__file__).resolve().parent / "shipped"
    if (installed / CARD).is_file():
        return installed
    return Path(__file__).resolve().parents[1] / "artifacts"


def locate(folder: str | Path | None = None, env: dict | None = None) -> Path:
    """The artifacts folder to read: `folder` (a command's --artifacts) when given, else
    $NEUROSCAN_ARTIFACTS, else the shipped model (`shipped_dir`), from any working folder."""
    if folder not in (None, ""):
        return Path(folder).expanduser()
    value = (os.environ if env is None else env).get(ENV, "").strip()
    return Path(value).expanduser() if value else shipped_dir()


class ArtifactError(RuntimeError):
    """An artifact is missing, incomplete or corrupt; the message names the folder read, the
    file, and how to point elsewhere (or rebuild)."""

    def __init__(self, directory: str | Path, name: str, problem: str):
        self.directory, self.name, self.problem = str(directory), name, problem
        super().__init__(
            f"Artifact {name!r} in {os.path.abspath(self.directory)!r} {problem}. Point "
            f"--artifacts or ${ENV} at a model folder written by `neuroscan train` (the shipped "
            f"one: {shipped_dir()}), or rebuild one with `{REBUILD}`"
        )

    def __reduce__(self):
        return (type(self), (self.directory, self.name, self.problem))


# ----------------------------------------------------------------------------- metrics.json

TEST, TEST_GROUPS, VAL, VAL_GROUPS = "test", "test_groups", "val", "val_groups"
RANDOM_SPLIT, SHORTCUT, PROTOCOL = "random_split", "shortcut", "protocol"
LOSO, ADAPTED = "loso", "adapted"  # leave-one-source-out CV; what `adapt` changed
LOSO_FINE_TUNED = "loso_fine_tuned"  # the same CV of the whole recipe (`--by loso --fine-tune`)
# leave-one-institution-out CV (`cv --by institution`): one block per institution a source's
# files.csv names, trained on every other file (same layout as LOSO: "pooled" and "sources")
LIOO, LIOO_FINE_TUNED = "lioo", "lioo_fine_tuned"
# `evaluate --all --save`: the model itself on whole sources none of whose files it was trained,
# validated or tested on (same layout as LOSO: "pooled" and "sources")
EXTERNAL = "external"
# files the out-of-distribution guard flagged: a count in EXTERNAL, {n, share} in its per-source,
# per-sequence and per-institution blocks
FLAGGED = "flagged_out_of_distribution"
# the blocks laid out as "pooled" + "sources"
SOURCE_BLOCKS = (LOSO, LOSO_FINE_TUNED, LIOO, LIOO_FINE_TUNED, EXTERNAL)
TEST_SOURCES = "test_sources"  # the test split per source
# Inside a per-source block: {sequence: block} and {institution: block} for files that carry
# one (a source's files.csv); `neuroscan report` shows these figures wherever they are present.
SEQUENCES, INSTITUTIONS = "sequences", "institutions"
BREAKDOWNS = {SEQUENCES: SEQUENCE, INSTITUTIONS: INSTITUTION}  # block key -> file column
CV_GROUPS = {
    "duplicate": "duplicate groups kept whole",
    "source": "duplicate groups and image sizes kept whole (a proxy for unseen sources)",
}


def cv_key(by: str, full: bool = False) -> str:
    """metrics.json key of a CV: "cv", "cv_source", "loso", "lioo", each with "_fine_tuned" for
    the whole recipe."""
    keys = {"duplicate": "cv", "source": "cv_source", LOSO: LOSO, "institution": LIOO}
    if by not in keys:
        raise ValueError(f"CV groups must be one of {tuple(keys)}, got {by!r}")
    return keys[by] + ("_fine_tuned" if full else "")


# Every evaluation block a metrics.json may hold -> (short label, long label), in display order.
PROTOCOLS = {
    TEST: ("Group split", "Duplicate-group split, test files (default, honest)"),
    TEST_GROUPS: ("Per group", "Duplicate-group split, test groups (each group once)"),
    RANDOM_SPLIT: ("Random split", "Random split (the report's protocol, leaks duplicates)"),
    "cv": ("Grouped CV", "Grouped cross-validation (frozen features + head)"),
    "cv_source": (
        "Cross-source CV",
        "Cross-source CV: image sizes kept whole across folds (frozen features + head)",
    ),
    "cv_fine_tuned": (
        "Grouped CV, fine-tuned",
        "Grouped cross-validation of the whole recipe (head + fine-tuning per fold)",
    ),
    "cv_source_fine_tuned": (
        "Cross-source CV, fine-tuned",
        "Cross-source CV of the whole recipe (head + fine-tuning per fold)",
    ),
}
TEST_SPLITS = {  # the model's own split (metrics.json "protocol") -> (short, long) test name
    "group": PROTOCOLS[TEST],
    "source": (
        "Source split",
        "Source split, test files: duplicate groups and image sizes kept whole, so every test "
        "image has a size never seen in training",
    ),
    "random": ("Random split", "Random split, test files (the report's protocol, leaks copies)"),
}


def protocol_names(metrics: dict | None) -> dict[str, tuple[str, str]]:
    """(short, long) label of every evaluation block in `metrics`, in display order; the test
    blocks are named after the split the model was trained on."""
    metrics = metrics or {}
    names = dict(PROTOCOLS)
    split = (metrics.get(PROTOCOL) or {}).get("split", "group")
    if split != "group":
        names[TEST] = TEST_SPLITS.get(split, (f"{split} split", f"{split} split, test files"))
        per_group = f"{names[TEST][0]}, test groups (each group once)"
        names[TEST_GROUPS] = (PROTOCOLS[TEST_GROUPS][0], per_group)
    return {k: v for k, v in names.items() if isinstance(metrics.get(k), dict)}


# ----------------------------------------------------------------------------- model card


@dataclass
class ModelCard:
    """model_card.json: what the model needs to be used (torchxrayvision-style) and its record."""

    class_names: list
    input_size: int
    geometry: str
    preprocessing: str
    threshold: float
    temperature: float
    backbone: str
    last_conv: str
    head: str
    weights_origin: str
    weights_sha256: str | None
    model_sha256: str
    data_fingerprint: str
    data_counts: dict
    split: str
    seed: int
    test_metrics: dict
    versions: dict
    device: dict  # backend, devices and strategy the model was trained with
    sources: dict  # source -> files, files per class, single_class (data.per_source)
    train_seconds: float
    trained_at: str
    settings: dict
    ood: dict = field(default_factory=dict)
    export: dict = field(default_factory=dict)  # the ONNX export (serving.export), once written
    name: str = "NeuroScan brain-MRI tumour classifier"
    output: str = "sigmoid probability of class_names[1] (tumor), temperature-calibrated"
    input: str = "RGB 0-255, (input_size, input_size, 3), made by tumor_model.io.geometry.prepare"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def required(cls) -> tuple[str, ...]:
        """Fields a reader cannot do without (the others have defaults or are records)."""
        return ("class_names", "input_size", "geometry", "threshold", "model_sha256")


# ----------------------------------------------------------------------------- writing


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def write_json(obj, path: str | Path) -> None:
    """Write JSON atomically: a temporary file renamed over the target."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps(obj, indent=2, default=_json_default))
    os.replace(tmp, path)


def temp_dir(final: str | Path) -> Path:
    """A fresh temporary folder beside `final`, to be swapped in by `replace_dir`."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.tmp-{int(time.time() * 1000)}-{os.getpid()}")
    tmp.mkdir()
    return tmp


def replace_dir(tmp: Path, final: Path) -> None:
    """Swap a finished temporary folder into place; the old one is removed only afterwards."""
    final = Path(final)
    old = final.with_name(final.name + ".old")
    if old.exists():
        shutil.rmtree(old)
    if final.exists():
        final.rename(old)
    Path(tmp).rename(final)
    if old.exists():
        shutil.rmtree(old)


def update_metrics(folder: str | Path, result: dict, drop=()) -> None:
    """Merge `result` into `folder`/metrics.json, first removing the keys in `drop`."""
    metrics = read_json(folder, METRICS)
    for key in drop:
        metrics.pop(key, None)
    metrics.update(result)
    write_json(metrics, Path(folder) / METRICS)


# ----------------------------------------------------------------------------- reading


def read_json(directory: str | Path, name: str) -> dict:
    path = Path(directory) / name
    if not path.is_file():
        raise ArtifactError(directory, name, "is missing")
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ArtifactError(directory, name, f"is unreadable ({err})") from err
    if not isinstance(value, dict):
        raise ArtifactError(directory, name, "is not a JSON object")
    return value


def read_csv(directory: str | Path, name: str) -> pd.DataFrame:
    """A CSV artifact, checked for the columns the contract names."""
    import pandas as pd  # not at import: `predict` on the light runtime never reads a CSV

    path = Path(directory) / name
    if not path.is_file():
        raise ArtifactError(directory, name, "is missing")
    try:
        frame = pd.read_csv(path)
    except (OSError, ValueError) as err:
        raise ArtifactError(directory, name, f"is unreadable ({err})") from err
    missing = [c for c in COLUMNS.get(name, []) if c not in frame.columns]
    if missing:
        raise ArtifactError(directory, name, f"lacks the columns {missing}")
    return frame


def read_card(directory: str | Path) -> dict:
    """model_card.json, checked for the fields a reader needs."""
    card = read_json(directory, CARD)
    missing = [k for k in ModelCard.required() if k not in card]
    if missing:
        raise ArtifactError(directory, CARD, f"lacks the fields {missing}")
    return card
