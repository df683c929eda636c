"""The explanation map a model ships with: the default method and layers chosen by
`neuroscan localise` (artifacts.LOCALISATION), the targets maps are judged by, and the one line the
Predict page shows on how well the default finds the lesion. Read by the CLI and the dashboard."""

from __future__ import annotations

import json
from pathlib import Path

TOLERANCES = (0, 8)  # pointing-game tolerances, px in the map's frame
TOLERANCE = 8  # the one the rule and the targets use
LATENCY_BUDGET_MS = 300.0
# Issue 33: on each box source and sequence, pointing game (8 px) >= 85%, energy ratio >= 3 and
# >= 50% of the map's top-10% pixels inside the box; one map within the latency budget.
TARGETS = {
    "pointing": 0.85,
    "energy_ratio": 3.0,
    "top10_in_box": 0.5,
    "latency_ms": LATENCY_BUDGET_MS,
}


def summary_line(default: dict) -> str:
    """One line of the default's report-half figures (the Predict page shows it)."""
    from tumor_model.serving.explain import METHOD_NAMES

    r = default["report"]
    share = r.get("top10_in_box")
    ok = isinstance(share, (int, float)) and not isinstance(share, bool)
    top = f"{share:.0%} of its top-10% pixels in the box, " if ok else ""
    where_ = " + ".join(default["layers"]) or "the input pixels"
    return (
        f"{METHOD_NAMES.get(default['method'], default['method'])} on {where_}: lesion hit by "
        f"the map's peak on {r[f'pointing_{TOLERANCE}px']:.0%} of {r['n']} unseen slices "
        f"(within {TOLERANCE} px; {r['pointing_0px']:.0%} exactly inside the box), "
        f"{r['energy_ratio']:.1f}x the map energy an even spread over the head would put in the "
        f"box, {top}{r['latency_ms']:.0f} ms a map"
    )


def measured_on(entry: dict) -> str:
    """Which tumour boxes a shipped entry was measured on: its box sources with the pointing game
    of each (report half), or, in an entry without groups, its `measured_on`."""
    key = f"pointing_{TOLERANCE}px"
    groups = entry.get("groups") if isinstance(entry.get("groups"), dict) else {}
    per = {
        g: v[key]
        for g, v in groups.items()
        if "/" not in g and isinstance(v, dict) and isinstance(v.get(key), (int, float))
    }
    if not per:
        return f"the tumour boxes of {entry.get('measured_on', '?')}"
    names = list(per)
    listed = " and ".join([", ".join(names[:-1]), names[-1]] if len(names) > 1 else names)
    each = ", ".join(f"{g} {v:.0%}" for g, v in per.items())
    return f"the tumour boxes of {listed}, pooled (pointing game per source: {each})"


def shipped(artifacts_dir: str | Path) -> dict | None:
    """The artifacts folder's `artifacts.LOCALISATION` (None when absent or unreadable)."""
    from tumor_model.artifacts import LOCALISATION  # pandas: not for the CLI's parser

    path = Path(artifacts_dir) / LOCALISATION
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    ok = isinstance(value, dict) and isinstance(value.get("method"), str)
    return value if ok and isinstance(value.get("layers", []), list) else None


def default_explanation(
    artifacts_dir: str | Path, model=None
) -> tuple[str, tuple[str, ...] | None]:
    """(method, layers) to explain with: the benchmark's choice shipped in the artifacts folder,
    else Grad-CAM on the model card's `last_conv` (layers None). A choice naming a method or a
    layer this model lacks falls back too."""
    from tumor_model.serving.explain import CAMS, METHODS

    entry = shipped(artifacts_dir)
    if entry is None or entry["method"] not in METHODS:
        return "gradcam", None
    layers = tuple(entry.get("layers") or ())
    if entry["method"] not in CAMS:
        return entry["method"], None
    if model is not None and not all(n in {lay.name for lay in model.layers} for n in layers):
        return "gradcam", None
    return entry["method"], layers or None


def benchmark_line(artifacts_dir: str | Path, model_sha256: str | None) -> str | None:
    """The Predict page's line on the default explanation (None without a shipped choice)."""
    entry = shipped(artifacts_dir)
    if entry is None or not isinstance(entry.get("report"), dict):
        return None
    try:
        line = summary_line(entry)
    except (KeyError, TypeError, ValueError):
        return None
    ran = entry.get("ran") or {}
    stale = "" if entry.get("model_sha256") == model_sha256 else " (measured on an earlier model)"
    missed = [k for k, ok in (entry.get("meets") or {}).items() if not ok]
    targets = entry.get("targets") or TARGETS
    goals = {
        "pointing": f"pointing game >= {targets['pointing']:.0%}",
        "energy_ratio": f"energy ratio >= {targets['energy_ratio']:g}",
        "top10_in_box": f"top-10% share in the box >= {targets.get('top10_in_box', 0):.0%}",
        "latency_ms": f"latency <= {targets['latency_ms']:g} ms",
    }
    verdict = f" Not met: {', '.join(goals.get(k, k) for k in missed)}." if missed else ""
    return (
        f"Default map: {line}{stale}.{verdict} Measured by `neuroscan localise` on "
        f"{measured_on(entry)}; {ran.get('cpu', '?')}, "
        f"{ran.get('cores', '?')} cores, {ran.get('date', '?')}."
    )
