"""How `neuroscan report` writes figures: one style per column (rates in percent with one
decimal, scores as fractions with three), Markdown tables, the evaluation blocks of a metrics.json
found wherever they nest, and which command measured each block (and when, where recorded)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from tumor_model import artifacts
from tumor_model.metrics import POINT_METRICS, SCORE_METRICS

LABELS = {
    "accuracy": "accuracy %",
    "balanced_accuracy": "balanced accuracy %",
    "sensitivity": "sensitivity %",
    "specificity": "specificity %",
    "precision": "precision %",
    "f1": "F1 %",
    "roc_auc": "ROC AUC",
    "pr_auc": "PR AUC",
    "brier": "Brier",
    "ece": "ECE",
}
RATES, SCORES = POINT_METRICS, SCORE_METRICS  # percent, one decimal | fraction, three decimals
UNITS = (
    "Rates (accuracy, balanced accuracy, sensitivity, specificity, precision, F1) in percent with "
    "one decimal; ROC AUC, PR AUC, Brier score and ECE as fractions with three; 95% bootstrap CIs "
    "in brackets; - where a figure is undefined (a one-class set has no AUC)."
)
CURVES = ("roc", "pr", "calibration", "confusion", "metrics")  # not walked into for blocks
EXTRA_LABELS = {  # evaluation blocks artifacts.PROTOCOLS does not name
    artifacts.VAL: ("Validation", "Duplicate-group split, validation files (chose the threshold)"),
    artifacts.VAL_GROUPS: ("Validation groups", "Validation groups (each group once)"),
    artifacts.LOSO: ("Leave-one-source-out", "Leave-one-source-out CV (frozen features + head)"),
    artifacts.LOSO_FINE_TUNED: (
        "Leave-one-source-out, fine-tuned",
        "Leave-one-source-out CV of the whole recipe",
    ),
    artifacts.LIOO: (
        "Leave-one-institution-out",
        "Leave-one-institution-out CV (frozen features + head)",
    ),
    artifacts.LIOO_FINE_TUNED: (
        "Leave-one-institution-out, fine-tuned",
        "Leave-one-institution-out CV of the whole recipe",
    ),
    artifacts.EXTERNAL: ("Unseen sources", "The model itself on whole sources it never saw"),
    artifacts.TEST_SOURCES: ("Test split per source", "The model's test split, per source"),
    artifacts.ADAPTED: ("Adapted", "What `neuroscan adapt` measured on the site's scans"),
}


def number(value) -> float | None:
    """A finite float, or None (missing, NaN, not a number)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return None if math.isnan(value) or math.isinf(value) else float(value)


def fmt(value, key: str) -> str:
    """One figure in its column's style: rates as percent (1 decimal), anything else 3 decimals."""
    v = number(value)
    if v is None:
        return "-"
    return f"{100 * v:.1f}" if key in RATES else f"{v:.3f}"


def metric(block: dict, key: str) -> float | None:
    return number(((block.get("metrics") or {}).get(key) or {}).get("value"))


def cell(block: dict, key: str, ci: bool = True) -> str:
    """A block's metric in its style, with its CI in brackets when recorded."""
    entry = (block.get("metrics") or {}).get(key) or {}
    text = fmt(entry.get("value"), key)
    low, high = number(entry.get("ci_low")), number(entry.get("ci_high"))
    if ci and text != "-" and low is not None and high is not None:
        text += f" [{fmt(low, key)}, {fmt(high, key)}]"
    return text


def count(value) -> str:
    v = number(value)
    return "-" if v is None else f"{int(v):,}" if float(v).is_integer() else f"{v:.3f}"


def table(headers: list[str], rows: list[list]) -> str:
    """A Markdown table (cells' pipes escaped)."""

    def line(cells) -> str:
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"

    return "\n".join([line(headers), "|" + "---|" * len(headers), *map(line, rows)])


def labels(metrics: dict) -> dict[str, tuple[str, str]]:
    """(short, long) label of every top-level evaluation key of `metrics`."""
    return {**EXTRA_LABELS, **artifacts.protocol_names(metrics)}


def is_block(value) -> bool:
    return isinstance(value, dict) and isinstance(value.get("metrics"), dict)


def walk(value, path: tuple = ()):
    """(path, block) of every evaluation block in `value`, itself first, then nested ones."""
    if not isinstance(value, dict):
        return
    if is_block(value):
        yield path, value
    for key in sorted(value, key=lambda k: k != "pooled"):  # pooled rows first
        if key not in CURVES and isinstance(value[key], dict):
            yield from walk(value[key], (*path, str(key)))


# A per-source block's nested breakdowns (artifacts.BREAKDOWNS) -> how one of their rows is named
BREAKDOWN_WORDS = {artifacts.SEQUENCES: "sequence", artifacts.INSTITUTIONS: "institution"}


def row_name(path: tuple) -> str:
    """How a nested block is named in a table: `sources / x / twin_absent` -> `x, its one-class
    twin absent`; `sources / x / sequences / t1` -> `x, sequence t1`."""
    words, prefix = [], ""
    for p in path:
        if p in BREAKDOWN_WORDS:
            prefix = BREAKDOWN_WORDS[p] + " "
        elif p not in ("sources", "by_source"):
            words.append(prefix + p.replace("twin_absent", "its one-class twin absent"))
            prefix = ""
    return ", ".join(words) or "all files"


def short_sha(sha: str | None) -> str:
    return str(sha)[:12] if sha else "?"


def duration(seconds) -> str:
    v = number(seconds)
    if v is None:
        return "-"
    minutes, secs = divmod(int(round(v)), 60)
    return f"{minutes} min {secs} s" if minutes else f"{secs} s"


def trained(card: dict) -> str:
    """Where and when the model was trained (from its card)."""
    device = card.get("device") or {}
    devices = ", ".join(device.get("devices") or ()) or "?"
    return (
        f"`neuroscan train`, {str(card.get('trained_at', '?'))[:10]}, "
        f"{device.get('backend', '?')} on {devices}"
    )


def cv_command(key: str) -> str:
    base = key.removesuffix("_fine_tuned")
    flags = {"cv": "", "cv_source": " --by source", artifacts.LOSO: " --by loso"}
    flags = {**flags, artifacts.LIOO: " --by institution"}.get(base, "")
    return f"`neuroscan cv{flags}{' --fine-tune' if key.endswith('_fine_tuned') else ''}`"


def measured(key: str, block: dict, card: dict) -> str:
    """Which command measured a top-level metrics.json block, and when and where as recorded."""
    if key in (artifacts.TEST, artifacts.TEST_GROUPS, artifacts.VAL, artifacts.VAL_GROUPS):
        return trained(card)
    if key in (artifacts.TEST_SOURCES, artifacts.SHORTCUT, artifacts.PROTOCOL):
        if not block.get("measured_by"):  # a test_sources block `evaluate --save` rewrote has
            return trained(card)
        command = block["measured_by"]
    elif key == artifacts.RANDOM_SPLIT:
        command = "`neuroscan report-protocol`"
    elif key == artifacts.EXTERNAL:
        command = "`neuroscan evaluate --all --save`"
    elif key == artifacts.ADAPTED:
        command = "`neuroscan adapt`"
    elif key.startswith(("cv", artifacts.LOSO, artifacts.LIOO)):
        command = cv_command(key)
    else:
        command = f"`{key}`"
    ran = block.get("ran") if isinstance(block.get("ran"), dict) else {}
    date = block.get("date") or ran.get("date")
    where = block.get("backend") or ran.get("backend")
    parts = [command, str(date) if date else "date not recorded"]
    if where:
        parts.append(str(where))
    sha = block.get("model_sha256")
    if sha and sha != card.get("model_sha256"):
        parts.append(f"measured on an earlier model ({short_sha(sha)})")
    return ", ".join(parts)


@dataclass(frozen=True)
class Facts:
    """What a report is rendered from: an artifacts folder's JSON files (the optional ones None
    when absent) and how the folder is named in the documents."""

    folder: str
    card: dict
    metrics: dict
    localisation: dict | None = None
    volume_rule: dict | None = None
    summary: dict | None = None
    lesion_head: dict | None = None

    @property
    def sha(self) -> str:
        return short_sha(self.card.get("model_sha256"))

    def fresh(self, entry: dict | None) -> bool:
        """Whether a check's recorded model sha256 is this model's."""
        return bool(entry) and entry.get("model_sha256") == self.card.get("model_sha256")
