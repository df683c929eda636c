"""Do the explanation maps find the lesion? A localisation benchmark on tumour boxes
(`neuroscan localise`), and the explanation default it chose (read by the CLI and the app).

Data: a boxes CSV (`file, x_center, y_center, width, height`, fractions of the ORIGINAL image's
width and height; `sha256` optional), by default Figshare's (Cheng et al.) 2,029 T1ce slices.
Unseen slices only: when some of its sha256 are in the model's `split.csv` (Figshare was a
training source), only those in the TEST split are used; when none is, every row is unseen.

Each box goes through the same crop / pad / resize as the image (`geometry.prepare_placed`) into
the map's frame (S x S, 224 px for the shipped model); a pixel belongs to the box when it overlaps
it. Every map explains the TUMOUR class (target 1, whatever the model predicted).

Measures, per slice, then averaged over slices:
- pointing game: the map's peak (its first maximum) lies within N px of the box, N = 0 and 8
  (`TOLERANCES`; the rule and the targets use `TOLERANCE` = 8 px, 3.6% of 224);
- energy ratio: the share of the map's energy (sum of its 0..1 values) inside the box divided by
  the box's share of the head, |box & head| / |head|; head = the non-background pixels of the
  prepared image (`geometry.foreground_mask`: grey > max(12, 0.08 x 99th percentile)), holes
  filled. 1 = no better than spreading the map evenly over the head; an empty map scores 0;
- latency: the median time of one `Explainer.explain` call (the app's call), after a warm-up.

Halves: the unseen files are shuffled with a fixed seed and cut in two, by FILE (boxes.csv does
not mark patients, so slices of one patient can fall in both halves). The default is chosen on
the selection half and reported on the other, by this rule, written before the first run:
among the configurations with median latency <= `LATENCY_BUDGET_MS`, the highest pointing game at
8 px; ties by the higher mean energy ratio, then the lower latency (none within budget: the
same rule over all). Score-CAM and SmoothGrad cost 1-3 s a map on 2 CPU cores, so they run on
fewer slices per half (stated in the output).
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
from tumor_model.evaluation.lesion_scores import box_mask, energy_ratio, head_mask, pointing
from tumor_model.evaluation.localise_plan import (
    BOX_COLUMNS,
    DEFAULT_BOXES,
    GRADIENT_METHODS,
    LATENCY_N,
    LAYER_SETS,
    PER_HALF,
    RULE,
    SCORECAM_LAYERS,
    SCORECAM_PER_HALF,
    SEED,
    SMOOTHGRAD_PER_HALF,
)
from tumor_model.serving.maps import LATENCY_BUDGET_MS, TARGETS, TOLERANCE, TOLERANCES

# ----------------------------------------------------------------------------- input


def read_boxes(path: str | Path) -> pd.DataFrame:
    """The boxes CSV, checked: the columns, numbers, fractions in 0..1, boxes of positive size."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"boxes file {str(path)!r} not found")
    try:
        frame = pd.read_csv(path)
    except (OSError, ValueError) as err:
        raise ValueError(f"boxes file {str(path)!r} is unreadable ({err})") from err
    missing = [c for c in BOX_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"boxes file {str(path)!r} lacks the columns {missing}")
    if frame.empty:
        raise ValueError(f"boxes file {str(path)!r} has no rows")
    for col in BOX_COLUMNS[1:]:
        values = pd.to_numeric(frame[col], errors="coerce")
        bad = frame.index[~values.between(0.0, 1.0) | (values.le(0) & (col in ("width", "height")))]
        if len(bad):
            row = int(bad[0])
            raise ValueError(
                f"boxes file {str(path)!r}, row {row + 2} ({frame.file[row]!r}): {col} "
                f"{str(frame[col][row])!r} is not a fraction of the image in (0, 1]"
            )
        frame[col] = values.astype(float)
    if frame.file.duplicated().any():
        raise ValueError(
            f"boxes file {str(path)!r} lists {frame.file[frame.file.duplicated()].iloc[0]!r} twice"
        )
    return frame.reset_index(drop=True)


def unseen(boxes: pd.DataFrame, artifacts_dir: str | Path) -> tuple[pd.DataFrame, str]:
    """The rows the model did not train on, and a sentence saying how they were picked."""
    path = Path(artifacts_dir) / artifacts.SPLIT
    if "sha256" not in boxes.columns or not path.is_file():
        return boxes, "every row (no sha256 column or no split.csv to compare with)"
    split = artifacts.read_csv(artifacts_dir, artifacts.SPLIT)
    known = boxes.sha256.isin(split.sha256)
    if not known.any():
        return boxes, "every row: none of these images is in the model's split.csv"
    test = set(split.sha256[split.split == "test"]) - set(split.sha256[split.split != "test"])
    keep = boxes[boxes.sha256.isin(test)].reset_index(drop=True)
    return keep, f"the {len(keep)} rows in the test split of the model's split.csv"


def halves(boxes: pd.DataFrame, seed: int = SEED) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(selection, report): the rows shuffled with `seed` (by file) and cut in two."""
    order = np.random.default_rng(seed).permutation(np.sort(boxes.file.to_numpy()))
    half = (len(order) + 1) // 2
    pick = boxes.set_index("file")
    return (
        pick.loc[order[:half]].reset_index(),
        pick.loc[order[half:]].reset_index(),
    )


# ----------------------------------------------------------------------------- measures


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


def _load(boxes_path: Path, rows: pd.DataFrame, size: int, geometry: str, log):
    """[(file, pixels, box mask, head mask)] of the rows; unreadable files are listed apart."""
    from tumor_model.io.geometry import prepare_placed
    from tumor_model.io.imageio import ImageLoadError, load_image

    done, failed = [], []
    for row in rows.itertuples(index=False):
        try:
            img = load_image(boxes_path.parent / row.file, row.file)
        except ImageLoadError as err:
            failed.append(str(err))
            log(f"skipped: {err}")
            continue
        pixels, placement = prepare_placed(img, size, geometry)
        box = box_mask(placement, img.size[0], img.size[1], row._asdict())
        done.append((row.file, pixels, box, head_mask(pixels)))
    return done, failed


def _score(explanations, slices) -> dict:
    hits = {t: [] for t in TOLERANCES}
    ratios = []
    for expl, (_, _, box, head) in zip(explanations, slices, strict=True):
        for t in TOLERANCES:
            hits[t].append(pointing(expl.heatmap, box, t))
        ratios.append(energy_ratio(expl.heatmap, box, head))
    ratios = np.asarray(ratios, dtype="float64")
    ok = ratios[np.isfinite(ratios)]
    return {
        "n": len(slices),
        **{f"pointing_{t}px": round(float(np.mean(hits[t])), 4) for t in TOLERANCES},
        "energy_ratio": round(float(ok.mean()), 3) if ok.size else None,
        "energy_ratio_median": round(float(np.median(ok)), 3) if ok.size else None,
    }


def _measure(explainer, configs, slices, n_scorecam, n_smooth, log, label):
    """{config name: scores} on one half; the gradient CAMs share one pass per slice."""
    gradient = [c for c in configs if c[0] in GRADIENT_METHODS]
    maps: dict = {config_name(*c): [] for c in configs}
    seconds: dict = {config_name(*c): [] for c in configs}
    probs = []
    for i, (_, pixels, _, _) in enumerate(slices):
        for (m, layers), expl in zip(
            gradient, explainer.explain_many(pixels, gradient, target=1), strict=True
        ):
            maps[config_name(m, layers)].append(expl)
        probs.append(explainer.probability(pixels))
        for m, layers in configs:
            limit = {"scorecam": n_scorecam, "smoothgrad": n_smooth}.get(m)
            if limit is None or i >= limit:
                continue
            expl = explainer.explain(pixels, m, 1, layers or None)
            maps[config_name(m, layers)].append(expl)
            seconds[config_name(m, layers)].append(expl.seconds)
        if (i + 1) % 25 == 0 or i + 1 == len(slices):
            log(f"{label}: {i + 1} of {len(slices)} slices")
    scores = {name: _score(found, slices[: len(found)]) for name, found in maps.items() if found}
    for name, times in seconds.items():
        if times and name in scores:
            scores[name]["latency_ms"] = round(1000 * float(np.median(times)), 1)
    predicted = np.asarray(probs) >= explainer.threshold
    return scores, round(float(predicted.mean()), 4) if len(probs) else None


def _latency(explainer, configs, slices, n: int) -> dict:
    """Median ms of one `explain` call per gradient-CAM configuration, after a warm-up call."""
    out = {}
    for method, layers in configs:
        if method not in GRADIENT_METHODS:
            continue
        explainer.explain(slices[0][1], method, 1, layers)  # traces its graph
        times = [explainer.explain(p, method, 1, layers).seconds for _, p, _, _ in slices[:n]]
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


def benchmark(
    artifacts_dir: str | Path = "artifacts",
    boxes_path: str | Path = DEFAULT_BOXES,
    per_half: int = PER_HALF,
    scorecam_per_half: int = SCORECAM_PER_HALF,
    smoothgrad_per_half: int = SMOOTHGRAD_PER_HALF,
    latency_n: int = LATENCY_N,
    seed: int = SEED,
    log=None,
) -> dict:
    """Measure every configuration on both halves, choose on the selection half, report on the
    other; returns the result (see `write`)."""
    from tumor_model.serving.explain import Explainer
    from tumor_model.serving.predict import load_checked_model

    check_samples(per_half, latency_n, scorecam_per_half, smoothgrad_per_half)
    log = log or (lambda msg: print(f"[{dt.datetime.now():%H:%M:%S}] {msg}", file=sys.stderr))
    boxes_path = Path(boxes_path)
    rows, picked = unseen(read_boxes(boxes_path), artifacts_dir)
    if len(rows) < 2:
        raise ValueError(f"boxes file {str(boxes_path)!r}: fewer than 2 unseen rows ({picked})")
    card = artifacts.read_card(artifacts_dir)  # the model alone: no OOD guard needed
    if not card.get("last_conv"):
        raise artifacts.ArtifactError(artifacts_dir, artifacts.CARD, "has no 'last_conv'")
    model = load_checked_model(Path(artifacts_dir), card["model_sha256"])
    explainer = Explainer(model, card["last_conv"], float(card["threshold"]))
    size, geometry = int(card["input_size"]), str(card["geometry"])
    configs = configs_for(explainer.model)
    start = time.perf_counter()
    result = {
        "boxes": str(boxes_path),
        "unseen": picked,
        "rows": len(rows),
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
        "halves": {},
        "unreadable": [],
    }
    for label, half in zip(("selection", "report"), halves(rows, seed), strict=True):
        result["halves"][label] = measure_half(
            explainer, configs, half, label, boxes_path, result, log
        )
    result["default"] = chosen_default(result["halves"])
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


def measure_half(explainer, configs, half, label, boxes_path, result, log) -> dict:
    """One half's scores (and on the selection half the latencies); unreadable files are added
    to result["unreadable"]."""
    samples = result["samples"]
    slices, failed = _load(
        boxes_path, half.head(samples["per_half"]), result["input_size"], result["geometry"], log
    )
    result["unreadable"] += failed
    if not slices:
        raise ValueError(f"boxes file {str(boxes_path)!r}: no readable image in the {label}")
    scores, share = _measure(
        explainer,
        configs,
        slices,
        samples["scorecam_per_half"],
        samples["smoothgrad_per_half"],
        log,
        label,
    )
    if label == "selection":
        for name, ms in _latency(explainer, configs, slices, samples["latency_n"]).items():
            scores[name]["latency_ms"] = ms
    return {
        "files": len(half),
        "measured": len(slices),
        "predicted_tumour": share,
        "scores": scores,
    }


def chosen_default(halves_measured: dict) -> dict:
    """The default chosen on the selection half by RULE, with its report-half figures."""
    selection = halves_measured["selection"]["scores"]
    best = choose(selection)
    method, _, layers = best.partition(":")
    report = dict(halves_measured["report"]["scores"][best])
    report["latency_ms"] = selection[best].get("latency_ms")
    return {
        "method": method,
        "layers": layers.split("+") if layers else [],
        "name": best,
        "selection": selection[best],
        "report": report,
        "meets": {
            "pointing": report[f"pointing_{TOLERANCE}px"] >= TARGETS["pointing"],
            "energy_ratio": (report["energy_ratio"] or 0) >= TARGETS["energy_ratio"],
            "latency_ms": (report["latency_ms"] or np.inf) <= TARGETS["latency_ms"],
        },
    }
