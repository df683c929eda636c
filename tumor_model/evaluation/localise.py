"""Do the explanation maps find the lesion? A localisation benchmark on tumour boxes
(`neuroscan localise`), and the explanation default it chose (read by the CLI and the app).

Data: box sources (`--boxes`, repeatable), each a CSV (`file, x_center, y_center, width, height`,
fractions of the ORIGINAL image's width and height; `sha256`, `sequence`, `patient_id` optional)
named by its folder; by default Figshare's (Cheng et al.) T1ce boxes.csv and tcga-lgg's files.csv
(a CSV with a `label` column gives its tumour rows that have a box). Reading, unseen rows, halves:
`localise_data`. Unseen slices only, per source: when some of its sha256 are in the model's
`split.csv` (a training source), only those in the TEST split are used; when none is, every row.

Each box goes through the same crop / pad / resize as the image (`geometry.prepare_placed`) into
the map's frame (S x S, 224 px for the shipped model); a pixel belongs to the box when it overlaps
it. Every map explains the TUMOUR class (target 1, whatever the model predicted).

Measures, per slice (`lesion_scores`), then averaged over slices:
- pointing game: the map's peak (its first maximum) lies within N px of the box, N = 0 and 8
  (`TOLERANCES`; the rule and the targets use `TOLERANCE` = 8 px, 3.6% of 224);
- energy ratio: the share of the map's energy (sum of its 0..1 values) inside the box divided by
  the box's share of the head, |box & head| / |head|; head = the non-background pixels of the
  prepared image (`geometry.foreground_mask`: grey > max(12, 0.08 x 99th percentile)), holes
  filled. 1 = no better than spreading the map evenly over the head; an empty map scores 0;
- top-10% share (`top10_in_box`): the share of the map's top 10% head pixels (at or above its
  90th percentile over the head, ties included) that lie inside the box;
- latency: the median time of one `Explainer.explain` call (the app's call), after a warm-up.

Halves: per source, its patients (`patient_id`; a source without it: its files) are shuffled with
a fixed seed and cut in two, so a patient's slices all fall in one half and every source is in
both; each half measures the first `--per-half` slices of each source. The default is chosen on
the selection half, pooled over the sources, and reported on the other, pooled and per source
and per source + sequence, by this rule, written before the first run: among the configurations
with median latency <= `LATENCY_BUDGET_MS`, the highest pointing game at 8 px; ties by the higher
mean energy ratio, then the lower latency (none within budget: the same rule over all).
Score-CAM and SmoothGrad cost 1-3 s a map on 2 CPU cores, so they run on fewer slices per source
and half (stated in the output).
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from tumor_model import artifacts
from tumor_model.evaluation.lesion_scores import group_scores, meets, slice_scores, summarise
from tumor_model.evaluation.localise_data import (
    count_units,
    halves,
    load_slices,
    read_sources,
    sample,
    unseen,
)
from tumor_model.evaluation.localise_plan import (
    DEFAULT_BOXES,
    GRADIENT_METHODS,
    HALVES_BY,
    LATENCY_N,
    LAYER_SETS,
    PER_HALF,
    RULE,
    SAMPLES_ARE,
    SCORECAM_LAYERS,
    SCORECAM_PER_HALF,
    SEED,
    SMOOTHGRAD_PER_HALF,
)
from tumor_model.serving.maps import LATENCY_BUDGET_MS, TARGETS, TOLERANCE, TOLERANCES

# ----------------------------------------------------------------------------- the benchmark


def config_name(method: str, layers: tuple[str, ...]) -> str:
    return f"{method}:{'+'.join(layers)}" if layers else method


def configs_for(model) -> list[tuple[str, tuple[str, ...]]]:
    """(method, layers) pairs to measure on `model`: every gradient CAM on every layer set,
    Score-CAM on `SCORECAM_LAYERS`, SmoothGrad; layer sets the model lacks are left out."""
    names = {layer.name for layer in model.layers}
    have = [s for s in LAYER_SETS if all(n in names for n in s)]
    out = [(m, s) for m in GRADIENT_METHODS for s in have]
    out += [("scorecam", s) for s in SCORECAM_LAYERS if s in have]
    return [*out, ("smoothgrad", ())]


def _resolution(model, layers) -> str:
    return "+".join("{}x{}".format(*model.get_layer(n).output.shape[1:3]) for n in layers)


def _measure(explainer, configs, slices, limits: dict, log, label):
    """One half: ({config name: ([slice index], [slice_scores])}, {config name: [seconds]},
    [P(tumour)]). The gradient CAMs share one pass per slice; Score-CAM and SmoothGrad run on the
    first `limits[method]` slices of each source."""
    gradient = [c for c in configs if c[0] in GRADIENT_METHODS]
    found: dict = {config_name(*c): ([], []) for c in configs}
    seconds: dict = {config_name(*c): [] for c in configs}
    probs, seen = [], {}
    for i, one in enumerate(slices):
        rank = seen[one.source] = seen.get(one.source, -1) + 1
        for c, expl in zip(
            gradient, explainer.explain_many(one.pixels, gradient, target=1), strict=True
        ):
            found[config_name(*c)][0].append(i)
            found[config_name(*c)][1].append(slice_scores(expl.heatmap, one))
        probs.append(explainer.probability(one.pixels))
        for m, layers in configs:
            if m in GRADIENT_METHODS or rank >= limits.get(m, 0):
                continue
            expl = explainer.explain(one.pixels, m, 1, layers or None)
            found[config_name(m, layers)][0].append(i)
            found[config_name(m, layers)][1].append(slice_scores(expl.heatmap, one))
            seconds[config_name(m, layers)].append(expl.seconds)
        if (i + 1) % 25 == 0 or i + 1 == len(slices):
            log(f"{label}: {i + 1} of {len(slices)} slices")
    return found, seconds, probs


def _latency(explainer, configs, slices, n: int) -> dict:
    """Median ms of one `explain` call per gradient-CAM configuration, after a warm-up call."""
    out = {}
    for method, layers in configs:
        if method not in GRADIENT_METHODS:
            continue
        explainer.explain(slices[0].pixels, method, 1, layers)  # traces its graph
        times = [explainer.explain(one.pixels, method, 1, layers).seconds for one in slices[:n]]
        out[config_name(method, layers)] = round(1000 * float(np.median(times)), 1)
    return out


def choose(scores: dict) -> str:
    """The name of the configuration `RULE` picks from {name: scores}."""
    if not scores:
        raise ValueError("no configuration was measured")
    key = f"pointing_{TOLERANCE}px"
    fast = {k: v for k, v in scores.items() if v.get("latency_ms", np.inf) <= LATENCY_BUDGET_MS}
    pool = fast or scores
    return max(
        pool,
        key=lambda k: (
            pool[k][key],
            pool[k]["energy_ratio"] if pool[k]["energy_ratio"] is not None else -np.inf,
            -pool[k].get("latency_ms", np.inf),
        ),
    )


def where() -> dict:
    """Where a run happened: CPU, cores, load, versions, date."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import keras

    try:
        load = [round(v, 2) for v in os.getloadavg()]
    except OSError:
        load = None
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "load_average_at_end": load,
        "backend": keras.backend.backend(),
        "keras": keras.__version__,
        "python": platform.python_version(),
        "date": dt.date.today().isoformat(),
    }


def unseen_rows(boxes_paths, artifacts_dir) -> tuple[pd.DataFrame, dict]:
    """Every box source's unseen rows (one frame), and {source: its file, how its rows were
    picked, rows, patients, rows per sequence}; a source with under 2 unseen units (patients,
    else files) cannot fill both halves and is refused."""
    paths = [boxes_paths] if isinstance(boxes_paths, (str, Path)) else list(boxes_paths)
    frames, sources = [], {}
    for path, frame in zip(paths, read_sources(paths), strict=True):
        rows, picked = unseen(frame, artifacts_dir)
        marked = "patient_id" in rows.columns
        if len(rows) == 0 or count_units(rows) < 2:
            unit = "patients" if marked else "rows"
            raise ValueError(f"boxes file {str(path)!r}: fewer than 2 unseen {unit} ({picked})")
        sequences = rows.sequence[rows.sequence.ne("")].value_counts().sort_index()
        sources[frame.source.iloc[0]] = {
            "boxes": str(path),
            "unseen": picked,
            "rows": len(rows),
            "patients": int(rows.patient_id.nunique()) if marked else None,
            "sequences": {str(k): int(v) for k, v in sequences.items()},
        }
        frames.append(rows)
    return pd.concat(frames, ignore_index=True), sources


def benchmark(
    artifacts_dir: str | Path = "artifacts",
    boxes_paths=DEFAULT_BOXES,
    per_half: int = PER_HALF,
    scorecam_per_half: int = SCORECAM_PER_HALF,
    smoothgrad_per_half: int = SMOOTHGRAD_PER_HALF,
    latency_n: int = LATENCY_N,
    seed: int = SEED,
    log=None,
) -> dict:
    """Measure every configuration on both halves, choose on the selection half, report on the
    other (pooled and per group); returns the result (see `localise_report.write`)."""
    from tumor_model.serving.explain import Explainer
    from tumor_model.serving.predict import load_checked_model

    check_samples(per_half, latency_n, scorecam_per_half, smoothgrad_per_half)
    log = log or (lambda msg: print(f"[{dt.datetime.now():%H:%M:%S}] {msg}", file=sys.stderr))
    rows, sources = unseen_rows(boxes_paths, artifacts_dir)
    card = artifacts.read_card(artifacts_dir)  # the model alone: no OOD guard needed
    if not card.get("last_conv"):
        raise artifacts.ArtifactError(artifacts_dir, artifacts.CARD, "has no 'last_conv'")
    model = load_checked_model(Path(artifacts_dir), card["model_sha256"])
    explainer = Explainer(model, card["last_conv"], float(card["threshold"]))
    size, geometry = int(card["input_size"]), str(card["geometry"])
    configs = configs_for(explainer.model)
    start = time.perf_counter()
    result = {
        "boxes": [s["boxes"] for s in sources.values()],
        "sources": sources,
        "rows": len(rows),
        "halves_by": HALVES_BY,
        "seed": seed,
        "model_sha256": card["model_sha256"],
        "input_size": size,
        "geometry": geometry,
        "target": "tumour (class 1) for every slice",
        "tolerances_px": list(TOLERANCES),
        "rule": RULE,
        "targets": TARGETS,
        "layers": {config_name(m, s): _resolution(explainer.model, s) for m, s in configs if s},
        "samples": {
            "per_half": per_half,
            "scorecam_per_half": scorecam_per_half,
            "smoothgrad_per_half": smoothgrad_per_half,
            "latency_n": latency_n,
        },
        "samples_are": SAMPLES_ARE,
        "halves": {},
        "unreadable": [],
    }
    records = {}
    for label, half in zip(("selection", "report"), halves(rows, seed), strict=True):
        result["halves"][label], records[label] = measure_half(
            explainer, configs, half, label, result, log
        )
    result["default"] = chosen_default(result["halves"], records["report"])
    result["seconds"] = round(time.perf_counter() - start, 1)
    result["ran"] = where()
    return result


# ----------------------------------------------------------------------------- output


def check_samples(per_half, latency_n, scorecam_per_half, smoothgrad_per_half) -> None:
    for name, value, least in (
        ("per-half", per_half, 1),
        ("latency-n", latency_n, 1),
        ("scorecam-per-half", scorecam_per_half, 0),
        ("smoothgrad-per-half", smoothgrad_per_half, 0),
    ):
        if value < least:
            raise ValueError(f"--{name} must be at least {least}, got {value!r}")


def by_source(half: pd.DataFrame, slices, predicted: np.ndarray) -> dict:
    """{source: its rows and patients in the half, slices measured, share predicted tumour}."""
    out = {}
    for source, rows in half.groupby("source", sort=False):
        mine = [i for i, one in enumerate(slices) if one.source == source]
        marked = "patient_id" in rows.columns and rows.patient_id.notna().any()
        out[source] = {
            "rows": len(rows),
            "patients": int(rows.patient_id.nunique()) if marked else None,
            "measured": len(mine),
            "predicted_tumour": round(float(predicted[mine].mean()), 4) if mine else None,
        }
    return out


def measure_half(explainer, configs, half, label, result, log) -> tuple[dict, tuple]:
    """One half's scores, pooled over its sources (on the selection half with latencies), and
    its records for `group_scores`; unreadable files are added to result["unreadable"]."""
    samples = result["samples"]
    slices, failed = load_slices(
        sample(half, samples["per_half"]), result["input_size"], result["geometry"], log
    )
    result["unreadable"] += failed
    missing = sorted(set(half.source) - {one.source for one in slices})
    if missing:
        raise ValueError(f"box source {missing[0]!r}: no readable image in the {label} half")
    limits = {
        "scorecam": samples["scorecam_per_half"],
        "smoothgrad": samples["smoothgrad_per_half"],
    }
    found, seconds, probs = _measure(explainer, configs, slices, limits, log, label)
    scores = {name: summarise(values) for name, (_, values) in found.items() if values}
    for name, times in seconds.items():
        if times and name in scores:
            scores[name]["latency_ms"] = round(1000 * float(np.median(times)), 1)
    if label == "selection":
        for name, ms in _latency(explainer, configs, slices, samples["latency_n"]).items():
            scores[name]["latency_ms"] = ms
    predicted = np.asarray(probs) >= explainer.threshold
    summary = {
        "files": len(half),
        "measured": len(slices),
        "predicted_tumour": round(float(predicted.mean()), 4),
        "by_source": by_source(half, slices, predicted),
        "scores": scores,
    }
    return summary, (found, slices)


def chosen_default(halves_measured: dict, report_records: tuple | None = None) -> dict:
    """The default chosen on the selection half by RULE, with its report-half figures: pooled,
    and with the report half's records (`measure_half`) per group as `report_groups`."""
    selection = halves_measured["selection"]["scores"]
    best = choose(selection)
    method, _, layers = best.partition(":")
    report = dict(halves_measured["report"]["scores"][best])
    report["latency_ms"] = selection[best].get("latency_ms")
    out = {
        "method": method,
        "layers": layers.split("+") if layers else [],
        "name": best,
        "selection": selection[best],
        "report": report,
        "meets": meets(report),
    }
    if report_records is not None:
        found, slices = report_records
        out["report_groups"] = group_scores(found[best], slices)
    return out
