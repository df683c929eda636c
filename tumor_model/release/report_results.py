"""What `neuroscan report` renders from metrics.json: the README's headline table (same-source
test, random split, cross-source CV, each unseen source) and docs/results.md (every table of
figures metrics.json holds)."""

from __future__ import annotations

from tumor_model import artifacts
from tumor_model.release.report_format import (
    LABELS,
    RATES,
    SCORES,
    UNITS,
    Facts,
    cell,
    count,
    fmt,
    is_block,
    labels,
    measured,
    number,
    row_name,
    table,
    trained,
    walk,
)

HEADLINE = ("accuracy", "balanced_accuracy", "sensitivity", "specificity", "roc_auc")
CROSS_SOURCE = ("cv_source", "cv_source_fine_tuned")
ORDER = (
    artifacts.TEST,
    artifacts.TEST_GROUPS,
    artifacts.VAL,
    artifacts.VAL_GROUPS,
    artifacts.TEST_SOURCES,
    artifacts.RANDOM_SPLIT,
    "cv",
    "cv_source",
    "cv_fine_tuned",
    "cv_source_fine_tuned",
    artifacts.LOSO,
    artifacts.LOSO_FINE_TUNED,
    artifacts.LIOO,
    artifacts.LIOO_FINE_TUNED,
    artifacts.EXTERNAL,
    artifacts.ADAPTED,
)
IN_TABLES = {"n", "n_tumor", "threshold", "fold_accuracy", "fold_size", "files", "classes"}


def files(block: dict) -> str:
    """How many files a block was measured on (and tumours, folds)."""
    text = f"{count(block.get('n'))} files ({count(block.get('n_tumor'))} tumour)"
    folds = block.get("folds")
    return text + (f", {folds} folds" if folds else "")


def one_class(block: dict) -> str:
    n, tumours = block.get("n"), block.get("n_tumor")
    return " (tumours only)" if n == tumours else " (healthy only)" if tumours == 0 else ""


def headline(f: Facts) -> str:
    """The README's results block (between its markers)."""
    m, names = f.metrics, labels(f.metrics)
    rows = []

    def add(kind, key, block, label, data, by=None):
        cells = [cell(block, k) for k in HEADLINE]
        label = label[:1].lower() + label[1:]
        rows.append([kind, label, data, *cells, measured(key, by or m[key], f.card)])

    if is_block(m.get(artifacts.TEST)):
        add(
            "Same source",
            artifacts.TEST,
            m[artifacts.TEST],
            names[artifacts.TEST][1],
            files(m[artifacts.TEST]),
        )
    key = artifacts.TEST_SOURCES
    for source, block in (m.get(key) or {}).items():
        if is_block(block):  # several sources: each, and each of its MRI sequences
            label = f"test split, {source}"
            add("Same source", key, block, label + one_class(block), files(block), block)
            for seq, one in (block.get(artifacts.SEQUENCES) or {}).items():
                label = f"test split, {source}, sequence {seq}"
                add("Same source", key, one, label + one_class(one), files(one), block)
    random = m.get(artifacts.RANDOM_SPLIT)
    if is_block(random):
        copies = random.get("test_files_with_copy_in_train")
        data = files(random) + (f", {count(copies)} with a copy in train" if copies else "")
        add(
            "Same source, for comparison",
            artifacts.RANDOM_SPLIT,
            random,
            names[artifacts.RANDOM_SPLIT][1],
            data,
        )
    for key in CROSS_SOURCE:
        if is_block(m.get(key)):
            add("Cross-source", key, m[key], names[key][1], files(m[key]))
    external = m.get(artifacts.EXTERNAL) or {}
    for source, block in (external.get("sources") or {}).items():
        if is_block(block):
            add("Unseen source", artifacts.EXTERNAL, block, source + one_class(block), files(block))
    headers = ["kind", "evaluation", "data", *(LABELS[k] for k in HEADLINE), "measured by"]
    intro = (
        f"Model `{f.sha}` ({f.card.get('backbone', '?')}, trained by "
        f"{trained(f.card)}): "
        f"every figure below is read from `{f.folder}/{artifacts.METRICS}`. {UNITS}"
    )
    more = (
        "Same source: files of the sources the model was trained on, none of them (nor a copy) "
        "in its training. The random split (the published report's protocol, which lets copies "
        "into its test) and the cross-source CV (folds that keep every image size whole, a proxy "
        "for a new source) train the same recipe anew on their own splits. Unseen source: this "
        "model on whole sources it never trained on."
    )
    body = table(headers, rows) if rows else "No evaluation is recorded in metrics.json yet."
    return f"{intro}\n\n{body}\n\n{more}"


# ----------------------------------------------------------------------------- docs/results.md


def block_table(section: dict, card: dict) -> str:
    """One row per evaluation block in a metrics.json section (nested ones too)."""
    blocks = list(walk(section))
    trained_on = any("trained_on" in b for _, b in blocks)
    headers = ["rows", "files", "tumour", "threshold", *(LABELS[k] for k in RATES + SCORES)]
    headers += ["TP / FN / TN / FP"] + (["trained on"] if trained_on else [])
    rows = []
    for path, block in blocks:
        c = block.get("confusion") or {}
        confusion = " / ".join(count(c.get(k)) for k in ("tp", "fn", "tn", "fp"))
        row = [row_name(path), count(block.get("n")), count(block.get("n_tumor"))]
        row += [fmt(block.get("threshold"), "threshold")]
        row += [cell(block, k) for k in RATES + SCORES] + [confusion]
        if trained_on:
            row.append(", ".join(block.get("trained_on") or ()) or "-")
        rows.append(row)
    return table(headers, rows)


def details(section: dict) -> list[str]:
    """Bullets of a section's own scalar facts (groups, recipe, date, data folders...)."""
    out = []
    for key, value in section.items():
        if key in IN_TABLES or isinstance(value, dict):
            continue
        if isinstance(value, list):
            if not all(isinstance(v, str) for v in value):
                continue
            value = ", ".join(value)
        shown = value if isinstance(value, str) else count(value)
        out.append(f"- {key.replace('_', ' ')}: {shown}")
    return out


def folds_table(section: dict) -> str | None:
    accuracy, sizes = section.get("fold_accuracy"), section.get("fold_size") or []
    if not isinstance(accuracy, list) or not accuracy:
        return None
    rows = [
        [i + 1, count(sizes[i]) if i < len(sizes) else "-", fmt(a, "accuracy")]
        for i, a in enumerate(accuracy)
    ]
    return table(["fold", "files", "accuracy %"], rows)


def reliability(block: dict) -> str | None:
    bins = block.get("calibration")
    if not isinstance(bins, list) or not bins:
        return None
    rows = [
        [
            f"{fmt(b.get('bin_low'), 'p')}-{fmt(b.get('bin_high'), 'p')}",
            count(b.get("n")),
            fmt(b.get("mean_probability"), "p"),
            fmt(b.get("fraction_tumor"), "p"),
        ]
        for b in bins
    ]
    return table(["P(tumour) bin", "files", "mean P(tumour)", "fraction tumour"], rows)


def section(key: str, f: Facts) -> str:
    value, names = f.metrics[key], labels(f.metrics)
    short, long = names.get(key, (key, key))
    parts = [f"## {short} (`{key}`)", f"{long}. Measured by {measured(key, value, f.card)}."]
    parts += ["\n".join(details(value))] if details(value) else []
    parts.append(block_table(value, f.card))
    folds = folds_table(value)
    if folds:
        parts += ["Per fold:", folds]
    main = value if is_block(value) else value.get("pooled")
    calibration = reliability(main) if isinstance(main, dict) else None
    if calibration:
        parts += ["Reliability (calibration bins of the pooled or whole set):", calibration]
    return "\n\n".join(parts)


def shortcut(block: dict) -> str:
    orig, reenc = number(block.get("accuracy_original")), number(block.get("accuracy_reencoded"))
    change = None if orig is None or reenc is None else reenc - orig
    rows = [
        [
            fmt(orig, "accuracy"),
            fmt(reenc, "accuracy"),
            "-" if change is None else f"{100 * change:+.1f}",
            fmt(block.get("mean_abs_probability_change"), "p"),
        ]
    ]
    headers = ["accuracy as stored %", "re-encoded %", "change (points)", "mean abs change of P"]
    return f"{block.get('protocol', '')}.\n\n" + table(headers, rows)


def scalars(value: dict) -> str:
    rows = []
    for key, v in value.items():
        if isinstance(v, dict):
            continue
        shown = ", ".join(map(str, v)) if isinstance(v, list) else v
        rows.append([key, shown if isinstance(shown, str) else count(shown)])
    return table(["figure", "value"], rows)


def results(f: Facts) -> str:
    """docs/results.md."""
    m = f.metrics
    known = [k for k in ORDER if k in m]
    others = sorted(k for k, v in m.items() if k not in ORDER and any(True for _ in walk(v)))
    parts = [
        f"# Results of model `{f.sha}`",
        f"Every table of figures in `{f.folder}/{artifacts.METRICS}` (model sha256 "
        f"`{f.card.get('model_sha256')}`), written by `neuroscan report`: edit the artifacts, not "
        f"this file. {UNITS} Thresholds as the block applied them (the model's own, or each "
        "fold's chosen on its validation part).",
    ]
    parts += [section(k, f) for k in known + others]
    if isinstance(m.get(artifacts.SHORTCUT), dict):
        parts += [
            f"## Shortcut check (`{artifacts.SHORTCUT}`)",
            f"Measured by {measured(artifacts.SHORTCUT, m[artifacts.SHORTCUT], f.card)}: "
            + shortcut(m[artifacts.SHORTCUT]),
        ]
    rest = [k for k in sorted(m) if k not in known + others + [artifacts.SHORTCUT]]
    for key in rest:
        if isinstance(m[key], dict):
            parts += [f"## {key.replace('_', ' ').capitalize()} (`{key}`)", scalars(m[key])]
    return "\n\n".join(parts) + "\n"
