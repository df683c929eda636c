"""`neuroscan lesion-head`: train a model folder's lesion-map head (`serving.lesion`) on lesion
masks and boxes, choose its pixel threshold on validation slices, measure it on held-out slices
beside the folder's default post-hoc map, and (with --save) write it into the folder.

Sources are `localise`'s box files: Figshare's `boxes.csv` (tumours, boxes: the filled box is
the target) and labelled CSVs such as tcga-lgg's `files.csv` (the `mask` column names each
tumour slice's mask image, the target; its healthy rows train empty targets and are measured
for false alarms). Parts, per source: a source whose rows are in the classifier's split.csv
keeps that split (its train and val rows train and tune the head, its test rows measure it);
any other source is split by group, 60% train, 10% val, 30% test (SEED), a group being the
`patient_id` where the CSV names patients, else a block of BLOCK consecutively numbered files
of one name prefix (Figshare numbers the slices of a patient consecutively; neighbouring slices
of one patient then rarely straddle two parts)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from tumor_model import artifacts
from tumor_model.evaluation import lesion_scores
from tumor_model.evaluation.localise import where
from tumor_model.evaluation.localise_data import TUMOUR_LABELS, Slice, read_sources
from tumor_model.io.geometry import prepare_placed
from tumor_model.io.imageio import load_image
from tumor_model.serving.lesion import LAYERS, STRIDE, LesionMap, feature_outputs, sha256_of
from tumor_model.training import lesion_fit

SEED = 33
BLOCK = 25
SHARES = (0.6, 0.7)  # shuffled groups: [0, 0.6) train, [0.6, 0.7) val, [0.7, 1] test
EPOCHS = 15
BATCH = 8  # images per backbone call


def source_rows(path, frame: pd.DataFrame) -> pd.DataFrame:
    """One box source's rows: `frame` (its tumour rows, from `read_sources`) with `tumour`, and a
    labelled CSV's other rows as healthy slices; `mask` None where no mask image is named. A
    named mask file that does not exist is an error naming the CSV, row and file."""
    path = Path(path)
    rows = [frame.assign(tumour=True)]
    raw = pd.read_csv(path)
    if "label" in raw.columns:
        label = raw.label.astype(str).str.strip().str.lower()
        healthy = raw[~label.isin(TUMOUR_LABELS)]
        sequence = healthy.get("sequence", pd.Series("", index=healthy.index))
        rows.append(
            healthy.assign(
                source=frame.source.iloc[0],
                sequence=sequence.fillna("").astype(str),
                folder=str(path.parent),
                tumour=False,
            )
        )
    out = pd.concat(rows, ignore_index=True)
    masks = out["mask"] if "mask" in out.columns else pd.Series(None, index=out.index)
    named = masks.notna() & masks.astype(str).str.strip().ne("")
    named = [str(m).strip() if ok else None for m, ok in zip(masks, named, strict=True)]
    out["mask"] = pd.Series(named, index=out.index, dtype=object)  # None, not NaN, where none
    for file, mask in zip(out.file, out["mask"], strict=True):
        if mask is not None and not (path.parent / str(mask)).is_file():
            raise ValueError(f"boxes file {str(path)!r}: mask {mask!r} of {file!r} not found")
    return out


def groups(rows: pd.DataFrame) -> pd.Series:
    """Each row's group: its patient_id, else name prefix + block of BLOCK file numbers, else
    its file."""
    parts = rows.file.astype(str).str.extract(r"^(.*?)(\d+)\.[^./]+$")
    blocks = parts[0] + "#" + (pd.to_numeric(parts[1]) // BLOCK).astype("Int64").astype(str)
    out = ("file:" + rows.file.astype(str)).where(parts[1].isna(), "block:" + blocks)
    if "patient_id" in rows.columns:
        patient = rows.patient_id.astype("string").str.strip()
        out = ("patient:" + patient).where(patient.notna() & patient.ne(""), out)
    return out.astype(str)


def assign_parts(rows: pd.DataFrame, split: pd.DataFrame | None) -> pd.Series:
    """ "train" / "val" / "test" for one source's rows (see the module docstring)."""
    if split is not None and "sha256" in rows.columns and rows.sha256.isin(split.sha256).any():
        known = dict(zip(split.sha256, split.split, strict=True))
        return rows.sha256.map(known).fillna("test").replace({"validation": "val"})
    group = groups(rows)
    ids = np.random.default_rng(SEED).permutation(np.sort(group.unique()))
    n = len(ids)
    cut = [int(round(s * n)) for s in SHARES]
    part = {g: "train" for g in ids[: cut[0]]}
    part |= {g: "val" for g in ids[cut[0] : cut[1]]}
    part |= {g: "test" for g in ids[cut[1] :]}
    return group.map(part)


def read_rows(boxes_paths, folder: Path) -> pd.DataFrame:
    """Every source's rows with their `part`; a source without rows in each part is refused."""
    paths = [boxes_paths] if isinstance(boxes_paths, (str, Path)) else list(boxes_paths)
    split_path = folder / artifacts.SPLIT
    split = artifacts.read_csv(folder, artifacts.SPLIT) if split_path.is_file() else None
    frames = []
    for path, frame in zip(paths, read_sources(paths), strict=True):
        rows = source_rows(path, frame)
        rows["part"] = assign_parts(rows, split).to_numpy()
        tumour_parts = set(rows.part[rows.tumour])
        if not {"train", "test"} <= tumour_parts:
            raise ValueError(
                f"boxes file {str(path)!r}: too few tumour groups to train and measure on "
                f"(parts with tumours: {sorted(tumour_parts)})"
            )
        frames.append(rows)
    return pd.concat(frames, ignore_index=True)


def load(row: dict, size: int, geometry: str):
    """(pixels, box mask or None, head mask, lesion mask or None) of one row, in the frame of
    the classifier's input."""
    img = load_image(Path(row["folder"]) / row["file"], row["file"])
    pixels, placement = prepare_placed(img, size, geometry)
    box = None
    if row["tumour"]:
        box = lesion_scores.box_mask(placement, img.size[0], img.size[1], row)
    lesion = None
    if row["mask"] is not None:
        grid = np.asarray(Image.open(Path(row["folder"]) / row["mask"]).convert("L")) > 127
        lesion = lesion_fit.mask_in_frame(grid, placement)
    return pixels, box, lesion_scores.head_mask(pixels), lesion


def chunks(rows: pd.DataFrame, size: int, geometry: str):
    """(records, loaded tuples, pixel batch) by BATCH rows."""
    for start in range(0, len(rows), BATCH):
        records = rows.iloc[start : start + BATCH].to_dict("records")
        loaded = [load(r, size, geometry) for r in records]
        yield records, loaded, np.stack([item[0] for item in loaded]).astype("float32")


def training_set(extractor, rows, size: int, geometry: str):
    """Backbone features (float16, one array per layer) and soft targets of the training rows:
    the mask where there is one, else the filled box, else (healthy) empty."""
    kept, targets = [[] for _ in LAYERS], []
    for _, loaded, batch in chunks(rows, size, geometry):
        for store, f in zip(kept, extractor(batch, training=False), strict=True):
            store.append(np.asarray(f).astype("float16"))
        for _, box, _, lesion in loaded:
            targets.append(lesion_fit.grid_target(lesion if lesion is not None else box, size))
    return [np.concatenate(f) for f in kept], np.stack(targets)


def maps_of(lesion_map: LesionMap, rows, size: int, geometry: str):
    """(records, loaded tuples, lesion maps) by BATCH rows."""
    for records, loaded, batch in chunks(rows, size, geometry):
        yield records, loaded, lesion_map.many(batch)


def choose_threshold(lesion_map: LesionMap, rows, size: int, geometry: str) -> tuple[float, int]:
    """(the pixel threshold of best mean Dice on the validation rows, how many slices chose it):
    against the masks and (empty) healthy slices where the rows hold masks; against the boxes
    only where none does (a box is larger than its lesion and would pull the threshold down)."""
    if rows["mask"].notna().any():
        rows = rows[rows["mask"].notna() | ~rows.tumour]
    maps, truths = [], []
    for _, loaded, heat in maps_of(lesion_map, rows, size, geometry):
        for (_, box, _, lesion), one in zip(loaded, heat, strict=True):
            truth = lesion if lesion is not None else box
            maps.append(one)
            truths.append(truth if truth is not None else np.zeros(one.shape, bool))
    return lesion_fit.best_threshold(maps, truths), len(maps)


def per_group(values: list[tuple]) -> dict:
    """{source and source/sequence: n, mean (and median)} of (source, sequence, value) rows."""
    members: dict = {}
    for source, sequence, value in values:
        for group in [source, *([f"{source}/{sequence}"] if sequence else [])]:
            members.setdefault(group, []).append(float(value))
    return {
        g: {
            "n": len(v),
            "mean": round(float(np.mean(v)), 4),
            "median": round(float(np.median(v)), 4),
        }
        for g, v in sorted(members.items())
    }


def measure(lesion_map: LesionMap, rows, size: int, geometry: str, reference=None) -> dict:
    """The head on held-out rows: Dice against the masks, healthy slices with any pixel over the
    threshold, and the localisation `MEASURES` on tumour slices, per source and sequence; with
    `reference` (explainer, (method, layers)), the default post-hoc map on the same slices."""
    thr = lesion_map.threshold
    dice, alarm, mine, theirs, slices = [], [], [], [], []
    for records, loaded, heat in maps_of(lesion_map, rows, size, geometry):
        for row, (pixels, box, head, lesion), one in zip(records, loaded, heat, strict=True):
            where_ = (row["source"], row["sequence"] or "")
            if lesion is not None:
                dice.append((*where_, lesion_fit.dice(one >= thr, lesion)))
            if not row["tumour"]:
                alarm.append((*where_, bool((one >= thr).any())))
                continue
            item = Slice(row["file"], pixels, box, head, *where_)
            slices.append(item)
            mine.append(lesion_scores.slice_scores(one, item))
            if reference is not None:
                cam = reference[0].explain_many(pixels, [reference[1]], target=1)[0].heatmap
                theirs.append(lesion_scores.slice_scores(cam, item))
    found = list(range(len(slices)))
    return {
        "dice": per_group(dice),
        "healthy_false_alarm": per_group(alarm),
        "head": lesion_scores.group_scores((found, mine), slices),
        "default_map_same_slices": (
            lesion_scores.group_scores((found, theirs), slices) if theirs else None
        ),
    }


def latency_ms(lesion_map: LesionMap, pixels: np.ndarray, repeats: int = 20) -> float:
    """Median ms of one map (backbone, head, upsampling) on one prepared image."""
    lesion_map(pixels)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        lesion_map(pixels)
        times.append(1000 * (time.perf_counter() - start))
    return round(float(np.median(times)), 1)


def parts_summary(rows: pd.DataFrame) -> dict:
    """{source: {part: {"slices", "tumour_slices", "masks"}}}."""
    out: dict = {}
    for (source, part), block in rows.groupby(["source", "part"]):
        out.setdefault(source, {})[part] = {
            "slices": int(len(block)),
            "tumour_slices": int(block.tumour.sum()),
            "masks": int(block["mask"].notna().sum()),
        }
    return out


def write(folder: Path, head, record: dict) -> dict:
    """The head file and its record into the model folder (the head first: a record names the
    sha256 of the head it was written with, so a half-written pair is refused on reading)."""
    tmp = folder / f".{artifacts.LESION_HEAD}.tmp.keras"
    head.save(tmp)
    record = {**record, "head_sha256": sha256_of(tmp)}
    tmp.replace(folder / artifacts.LESION_HEAD)
    artifacts.write_json(record, folder / artifacts.LESION_RECORD)
    return record


def train_and_measure(
    folder, boxes_paths, epochs: int = EPOCHS, compare: bool = True, save: bool = False
):
    """Train, tune and measure the lesion head of the model in `folder` (see the module
    docstring); the record, written with the head into the folder when `save`."""
    import keras

    from tumor_model.serving.explain import Explainer
    from tumor_model.serving.maps import default_explanation
    from tumor_model.serving.predict import load_checked_model

    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be a positive integer, got {epochs!r}")
    folder, began = Path(folder), time.time()
    card = artifacts.read_card(folder)
    rows = read_rows(boxes_paths, folder)  # bad input is refused before the model loads
    model = load_checked_model(folder, card["model_sha256"])
    extractor = keras.Model(model.input, feature_outputs(model))
    size, geometry = int(card["input_size"]), str(card["geometry"])
    features, targets = training_set(extractor, rows[rows.part.eq("train")], size, geometry)
    head, losses = lesion_fit.fit(features, targets, epochs, SEED)
    del features
    lesion_map = LesionMap(model, head)
    val = rows[rows.part.eq("val")]
    lesion_map.threshold, n_val = choose_threshold(lesion_map, val, size, geometry)
    reference = None
    if compare:
        ref = default_explanation(folder, model)
        reference = (Explainer(model, card["last_conv"], float(card["threshold"])), ref)
    test = measure(lesion_map, rows[rows.part.eq("test")], size, geometry, reference)
    pixels = load(rows.iloc[0].to_dict(), size, geometry)[0]
    record = {
        "measured_by": "`neuroscan lesion-head`",
        "model_sha256": card["model_sha256"],
        "layers": list(LAYERS),
        "stride": STRIDE,
        "threshold": lesion_map.threshold,
        "threshold_chosen_on": f"mean Dice on {n_val} validation slices",
        "default_map": f"{ref[0]}:{'+'.join(ref[1] or ())}" if compare else None,
        "boxes": [
            str(p) for p in ([boxes_paths] if isinstance(boxes_paths, (str, Path)) else boxes_paths)
        ],
        "parts": parts_summary(rows),
        "split": __doc__.split("Parts, per source: ")[1].split("\n\n")[0].replace("\n", " "),
        "epochs": epochs,
        "train_loss": losses,
        "test": test,
        "latency_ms": latency_ms(lesion_map, pixels),
        "ran": where(),
        "seconds": round(time.time() - began, 1),
    }
    return write(folder, head, record) if save else record
