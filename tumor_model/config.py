"""Settings of one training run: one frozen dataclass, saved as JSON beside the model.

Label convention, stated once for the whole project: label 1 = tumour, label 0 = healthy.
The model's single sigmoid output is the probability of label 1.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

CLASS_NAMES = ("healthy", "tumor")  # index = label = model output order (sigmoid gives P(tumor))
# How every user-facing place (dashboard, CLI output, downloads) names the classes: "tumour"
# throughout. CLASS_NAMES stay the machine-readable values of the artifacts (model card,
# metrics.json keys, CSV columns); README/docs/recipe.md say so.
DISPLAY_NAMES = {"healthy": "no tumour", "tumor": "tumour"}
TUMOR, HEALTHY = 1, 0

SPLITS = ("group", "source", "random")
# What augment.augmenter does to each fine-tuning image, in words (the dashboard shows it;
# resample is added when settings.resample > 0).
AUGMENTATIONS = ("flip", "rotation", "zoom", "contrast", "brightness", "gamma", "noise")
GEOMETRIES = ("crop-pad", "pad", "squash")
HEADS = ("gap", "flatten")
STRATEGIES = ("default", "mirrored")

# Files that are never scans, skipped when a folder is read (a dataset root, `predict DIR`)
SKIP_SUFFIXES = {".csv", ".json", ".txt", ".md", ".xlsx", ".py", ".db", ".ini"}

# `adapt`: the share of the head's retraining loss that a site's own scans weigh (plan P kept 0.5)
LOCAL_SHARE = 0.5


@dataclass(frozen=True)
class Settings:
    # --- data ---
    data_dirs: tuple[str, ...] = ("../shared/data/brain-tumor-dataset",)  # image roots, merged
    geometry: str = "crop-pad"  # crop-pad: crop to head, pad square; pad: pad square; squash
    stretch: bool = True  # per-image min-max intensity stretch inside the model
    # --- split ---
    split: str = "group"  # group: by duplicate group (honest); source: by duplicate group and
    # image size, so val/test hold only sizes never seen in train (a proxy for new sources);
    # random: the report's protocol
    seed: int = 314  # split and training seed
    val_fraction: float = 0.1  # share of images (group split: of groups) for validation
    test_fraction: float = 0.1  # share of images for the test split
    dup_thumb: int = 32  # near-duplicate thumbnail side, pixels (greyscale)
    dup_threshold: float = 0.02  # near duplicate if mean |thumb a - thumb b| <= this (0-1 scale)
    # --- model ---
    backbone: str = "mobilenetv2"  # key of tumor_model.model.BACKBONES
    weights: str = "imagenet"  # "imagenet" (download), a local .h5 path, or "none"
    input_size: int = 0  # square input side in pixels; 0 = the backbone's default
    head: str = "gap"  # gap: GlobalAveragePooling; flatten: the report's Flatten head
    dense_units: int = 250  # units of the hidden Dense(relu) layer
    dropout: float = 0.3  # dropout rate after the hidden layer
    # --- phase 1: frozen base, head on cached features ---
    batch_size: int = 40  # images per batch (the report's 40)
    head_epochs: int = 100  # maximum epochs of head training
    head_lr: float = 1e-3  # Adam learning rate of the head
    patience: int = 10  # early-stopping patience on validation loss, epochs
    class_weights: bool = False  # weight the loss by inverse class frequency (of groups
    # while fine-tuning with sample_groups, since that is what an epoch then shows)
    label_smoothing: float = 0.0  # targets 0/1 become s/2 and 1 - s/2 in both phases' loss
    mixup: float = 0.0  # mix each training row with another of its batch, inputs and labels,
    # by a weight drawn from Beta(mixup, mixup), in both phases (features, then pixels); 0 = off
    balance_sources: bool = False  # each training epoch (both phases) draws as many rows from
    # every source: a small source is repeated, a large one shown in part
    # --- phase 2: optional fine-tuning ---
    fine_tune_layers: int = 0  # unfreeze the top N base layers (0 = no fine-tuning)
    fine_tune_epochs: int = 8  # maximum fine-tuning epochs
    fine_tune_lr: float = 1e-5  # Adam learning rate while fine-tuning
    augment: bool = True  # light augmentation while fine-tuning (flip, crop, contrast, noise)
    resample: float = 0.0  # with augment: shrink each image by a random factor in
    # [1 - resample, 1] and enlarge it back (the blur of lower-resolution scans); 0 = off
    contrast_curve: float = 0.0  # with augment: the share of images given a random intensity
    # curve and bias field (augment.ContrastCurve: one sequence standing in for another); 0 = off
    sample_groups: bool = False  # each fine-tuning epoch shows one random file of every
    # duplicate group instead of every file: copies cost time and add nothing new
    strategy: str = "default"  # "mirrored": data-parallel on every local device (distribute.py)
    # --- decision ---
    threshold: float = -1.0  # decision threshold; -1 = choose on validation (Youden's J)
    calibrate: bool = True  # temperature scaling fitted on validation
    bootstrap: int = 1000  # bootstrap resamples for 95% confidence intervals
    # --- places ---
    cache_dir: str = ".cache/features"  # frozen-base feature cache
    out_dir: str = "artifacts"  # where the model and its artifacts are written
    export: bool = True  # also write model.onnx (serving.export; TensorFlow backend only), so
    # that `predict` runs without TensorFlow; `neuroscan export` adds one later
    extra: dict = field(default_factory=dict, hash=False, compare=False)  # free-form notes

    def __post_init__(self):
        _check_choice("split", self.split, SPLITS)
        _check_choice("geometry", self.geometry, GEOMETRIES)
        _check_choice("head", self.head, HEADS)
        _check_choice("strategy", self.strategy, STRATEGIES)
        if isinstance(self.data_dirs, (str, Path)):
            object.__setattr__(self, "data_dirs", (str(self.data_dirs),))
        object.__setattr__(self, "data_dirs", tuple(str(d) for d in self.data_dirs))
        if not self.data_dirs:
            raise ValueError("data_dirs is empty: give at least one image root")
        for name in ("val_fraction", "test_fraction"):
            value = getattr(self, name)
            if not 0.0 < value < 0.5:
                raise ValueError(f"{name} must be in (0, 0.5), got {value!r}")
        if not 0.0 <= self.contrast_curve <= 1.0:
            raise ValueError(f"contrast_curve must be in [0, 1], got {self.contrast_curve!r}")
        for name in ("dropout", "resample"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)!r}")
        if not 0.0 <= self.label_smoothing < 0.5:
            raise ValueError(f"label_smoothing must be in [0, 0.5), got {self.label_smoothing!r}")
        if not self.mixup >= 0.0:
            raise ValueError(f"mixup must be >= 0 (0 = off), got {self.mixup!r}")
        if self.threshold != -1.0 and not 0.0 < self.threshold < 1.0:
            raise ValueError(
                f"threshold must be in (0, 1) or -1 (choose on validation), got {self.threshold!r}"
            )
        for name in ("batch_size", "dense_units", "dup_thumb"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        if self.input_size < 0 or self.fine_tune_layers < 0 or self.bootstrap < 0:
            raise ValueError("input_size, fine_tune_layers and bootstrap must be >= 0")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_json(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2))

    @classmethod
    def from_dict(cls, values: dict) -> Settings:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown settings: {sorted(unknown)}")
        values = dict(values)
        if "data_dirs" in values:
            values["data_dirs"] = tuple(values["data_dirs"])
        return cls(**values)

    @classmethod
    def from_json(cls, path: str | Path) -> Settings:
        return cls.from_dict(json.loads(Path(path).read_text()))


def _check_choice(name: str, value, choices) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")
