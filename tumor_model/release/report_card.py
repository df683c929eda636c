"""docs/MODEL_CARD.md as `neuroscan report` renders it from an artifacts folder: intended use, the
model, data and sources (with licences), results per source, per sequence and per institution,
limits, the volume rule and its check, localisation, versions."""

from __future__ import annotations

from tumor_model import artifacts
from tumor_model.config import CLASS_NAMES, DISPLAY_NAMES
from tumor_model.release import sources as source_facts
from tumor_model.release.report_checks import lesion_head, localisation, volume_rule
from tumor_model.release.report_format import (
    BREAKDOWN_WORDS,
    LABELS,
    Facts,
    cell,
    count,
    duration,
    fmt,
    is_block,
    labels,
    measured,
    metric,
    row_name,
    table,
    trained,
    walk,
)

PER_SOURCE = ("sensitivity", "specificity", "balanced_accuracy", "roc_auc")
SKIP_SETTINGS = {"cache_dir", "out_dir", "extra"}  # where it ran, not how


def intended_use(f: Facts) -> str:
    c = f.card
    names = " / ".join(f"`{n}` ({DISPLAY_NAMES[n]})" for n in CLASS_NAMES)
    return "\n".join(
        [
            "## Intended use",
            "",
            "**Research only. Not a medical device**: not for diagnosis, screening or treatment "
            "decisions, and not validated on clinical data.",
            "",
            f"- Input: one 2-D brain-MRI slice (an image file or DICOM; volumes slice by slice), "
            f"prepared to {c.get('input_size')} px ({c.get('geometry')}).",
            f"- Output: {c.get('output')}; classes {names}; decision threshold "
            f"{fmt(c.get('threshold'), 'p')} (chosen on validation), temperature "
            f"{fmt(c.get('temperature'), 'p')}.",
            "- Not for: tumour type, grade or segmentation; CT or non-brain images (a guard "
            "gives no verdict to what does not look like a brain-MRI slice); patients or "
            "scanners unlike the sources below without checking on local labelled scans first "
            "(`neuroscan adapt`).",
        ]
    )


def model_facts(f: Facts) -> str:
    c = f.card
    rows = [
        ["name", c.get("name", "-")],
        ["model sha256", f"`{c.get('model_sha256')}`"],
        [
            "backbone / head",
            f"{c.get('backbone')} / {c.get('head')} (last conv {c.get('last_conv')})",
        ],
        ["preprocessing", c.get("preprocessing", "-")],
        ["weights", f"{c.get('weights_origin')} (sha256 `{str(c.get('weights_sha256'))[:12]}`)"],
        ["split", f"{c.get('split')} (seed {c.get('seed')})"],
        ["data fingerprint", f"`{str(c.get('data_fingerprint'))[:12]}`"],
        ["trained", f"{trained(c)}, {duration(c.get('train_seconds'))}"],
    ]
    export = c.get("export") or {}
    if export.get("sha256"):
        rows.append(
            [
                "light-runtime export",
                f"`{export.get('file')}`, {export.get('runtime')}, sha256 "
                f"`{export['sha256']}` (largest gap to Keras on its check: "
                f"{export.get('max_abs_difference', float('nan')):.1e})",
            ]
        )
    settings = c.get("settings") or {}
    shown = [
        [k, ", ".join(map(str, v)) if isinstance(v, list) else v]
        for k, v in settings.items()
        if k not in SKIP_SETTINGS
    ]
    return "\n\n".join(
        [
            "## Model",
            table(["", ""], rows),
            "Training settings:",
            table(["setting", "value"], shown),
        ]
    )


def guard_shares(sources: dict) -> str:
    """ ": tcga-lgg 31.0% (flair 20.1%, t1 ...), ..." from per-source blocks that record what
    the guard flagged; "" when none does (a metrics.json from before)."""

    def share(block) -> str | None:
        entry = block.get(artifacts.FLAGGED)
        return f"{100 * entry['share']:.1f}%" if isinstance(entry, dict) else None

    parts = []
    for name, block in sources.items():
        if share(block) is None:
            continue
        inner = [f"{k} {share(b)}" for k, b in (block.get(artifacts.SEQUENCES) or {}).items()]
        parts.append(f"{name} {share(block)}" + (f" ({', '.join(inner)})" if inner else ""))
    return (": " + "; ".join(parts)) if parts else ""


def roles(f: Facts) -> dict[str, str]:
    """source -> what the model did with it."""
    out = {s: "trained, validated and tested on (split)" for s in f.card.get("sources") or {}}
    for s in (f.metrics.get(artifacts.EXTERNAL) or {}).get("sources") or {}:
        out.setdefault(s, "never trained on: evaluated whole (`evaluate --all --save`)")
    for key in (artifacts.LOSO, artifacts.LOSO_FINE_TUNED):
        for s in (f.metrics.get(key) or {}).get("sources") or {}:
            out.setdefault(s, "leave-one-source-out CV only")
    return out


def counts(f: Facts) -> dict[str, dict]:
    """source -> {"files", "classes"}: the card's, else the dataset summary's, else as evaluated
    (a held-out or unseen source's whole-source block)."""
    out = {}
    for key in (artifacts.LOSO, artifacts.LOSO_FINE_TUNED, artifacts.EXTERNAL):
        for src, b in ((f.metrics.get(key) or {}).get("sources") or {}).items():
            n, tumours = b.get("n"), b.get("n_tumor")
            if isinstance(n, int) and isinstance(tumours, int):
                out[src] = {"files": n, "classes": {"tumor": tumours, "healthy": n - tumours}}
    out.update((f.summary or {}).get("sources") or {})
    out.update(f.card.get("sources") or {})
    return out


def data(f: Facts) -> str:
    sizes_of = counts(f)
    rows = []
    for source, role in roles(f).items():
        about, n = source_facts.about(source), sizes_of.get(source) or {}
        classes = n.get("classes") or {}
        sizes = (
            f"{count(n.get('files'))} ({count(classes.get('tumor'))} tumour, "
            f"{count(classes.get('healthy'))} healthy)"
            if n
            else "-"
        )
        rows.append([f"`{source}`", about["what"], sizes, role, about["licence"]])
    parts = ["## Data and sources", table(["source", "what", "files", "role", "licence"], rows)]
    split = f.card.get("data_counts") or {}
    if split:
        head = ["class", *sorted({k for v in split.values() for k in v})]
        body = [
            [
                DISPLAY_NAMES.get(CLASS_NAMES[int(label)], label),
                *(count(v.get(k)) for k in head[1:]),
            ]
            for label, v in sorted(split.items())
        ]
        parts += ["Files per split of the model's own data:", table(head, body)]
    dup = (f.summary or {}).get("duplicates") or {}
    if dup:
        parts.append(
            f"Duplicates in the training data (`{artifacts.SUMMARY}`): "
            f"{count(dup.get('distinct_sha256'))} distinct files, "
            f"{count(dup.get('redundant_exact_copies'))} redundant exact copies, "
            f"{count(dup.get('groups'))} duplicate groups (exact and near copies) kept whole by "
            "the group split."
        )
    if source_facts.NON_COMMERCIAL in (f.card.get("sources") or {}):
        parts.append(
            f"**`{source_facts.NON_COMMERCIAL}` is among the training sources** "
            f"({source_facts.about(source_facts.NON_COMMERCIAL)['licence']}): use this model "
            "for non-commercial research only."
        )
    return "\n\n".join(parts)


def source_rows(f: Facts) -> list[list]:
    m, rows = f.metrics, []
    if is_block(m.get(artifacts.TEST)) and not m.get(artifacts.TEST_SOURCES):
        name = ", ".join(f.card.get("sources") or ()) or "-"
        rows.append([name, "test split", m[artifacts.TEST], artifacts.TEST])
    for src, block in (m.get(artifacts.TEST_SOURCES) or {}).items():
        rows.append([src, "test split", block, artifacts.TEST_SOURCES])
    for src, block in ((m.get(artifacts.EXTERNAL) or {}).get("sources") or {}).items():
        rows.append([src, "never seen: the model itself", block, artifacts.EXTERNAL])
    for key, what in (
        (artifacts.LOSO, "frozen stage"),
        (artifacts.LOSO_FINE_TUNED, "whole recipe"),
    ):
        for path, block in walk((m.get(key) or {}).get("sources") or {}):
            held = f"held out, {what} trained on {', '.join(block.get('trained_on') or ())}"
            rows.append([row_name(path), held, block, key])
    return rows


def results(f: Facts) -> str:
    headers = ["source", "evaluation", "files", *(LABELS[k] for k in PER_SOURCE), "measured by"]
    body = [
        [src, what, count(b.get("n")), *(cell(b, k) for k in PER_SOURCE), ran]
        for src, what, b, key in source_rows(f)
        for ran in [
            measured(key, b if key == artifacts.TEST_SOURCES else f.metrics.get(key) or {}, f.card)
        ]
    ]
    parts = ["## Results per source", table(headers, body) if body else "None recorded."]
    for key in artifacts.BREAKDOWNS:
        parts += breakdown(f, key)
    parts.append("Every table of figures: [results.md](results.md).")
    return "\n\n".join(parts)


def breakdown(f: Facts, key: str) -> list[str]:
    """The model card's table of the blocks nested under `key` (artifacts.SEQUENCES or
    INSTITUTIONS) in any per-source block of metrics.json, or a line saying there are none."""
    word, names = BREAKDOWN_WORDS[key], labels(f.metrics)
    rows = [
        [
            row_name((names.get(path[0], (path[0],))[0], *path[1:-2])),
            path[-1],
            count(b.get("n")),
            *(cell(b, k) for k in PER_SOURCE),
        ]
        for top, value in f.metrics.items()
        for path, b in walk(value, (top,))
        if len(path) >= 2 and path[-2] == key
    ]
    parts = [f"### Per {word}"]
    if rows:
        head = ["evaluation, source", word, "files", *(LABELS[k] for k in PER_SOURCE)]
        return [*parts, table(head, rows)]
    return [
        *parts,
        f"No evaluated file carries {'an MRI' if word == 'sequence' else 'an'} {word} (a "
        f"source's files.csv with a `{artifacts.BREAKDOWNS[key]}` column adds `{key}` blocks; "
        "none is recorded for this model).",
    ]


def rate_of(block: dict) -> str:
    """The rate that sums a block up: balanced accuracy, or for one class the one it has."""
    if metric(block, "balanced_accuracy") is not None:
        return "balanced_accuracy"
    return "sensitivity" if block.get("n") == block.get("n_tumor") else "specificity"


def rate_words(blocks: dict) -> str:
    return " / ".join(dict.fromkeys(rate_of(b).replace("_", " ") for b in blocks.values()))


def limits(f: Facts) -> str:
    m, out = f.metrics, ["## Limits", ""]
    out.append("- One 2-D slice at a time; tumour or no tumour only.")
    trained_on = ", ".join(f.card.get("sources") or ()) or "?"
    out.append(f"- Trained on {trained_on} only; expect less on other hospitals and scanners.")
    test, ext = m.get(artifacts.TEST), (m.get(artifacts.EXTERNAL) or {}).get("sources") or {}
    for src, block in ext.items():
        rate = rate_of(block)
        same = f" (same-source test: {fmt(metric(test, rate), rate)}%)" if is_block(test) else ""
        out.append(
            f"- On {src}, never seen in training: {rate.replace('_', ' ')} "
            f"{fmt(metric(block, rate), rate)}%{same}."
        )
        seq = block.get(artifacts.SEQUENCES) or {}
        if seq:
            shown = [f"{name} {fmt(metric(b, rate_of(b)), rate_of(b))}%" for name, b in seq.items()]
            out.append(f"- {src} by sequence ({rate_words(seq)}): {', '.join(shown)}.")
    random = m.get(artifacts.RANDOM_SPLIT)
    if is_block(random) and random.get("test_files_with_copy_in_train"):
        copies, accuracy = random["test_files_with_copy_in_train"], metric(random, "accuracy")
        out.append(
            f"- A random split lets copies into its test: {count(copies)} of "
            f"{count(random.get('n'))} test files have a copy in train, so its accuracy "
            f"({fmt(accuracy, 'accuracy')}%) is not what to expect on new patients."
        )
    flagged = (m.get(artifacts.EXTERNAL) or {}).get(artifacts.FLAGGED)
    if flagged is not None:
        n = (m[artifacts.EXTERNAL].get("pooled") or {}).get("n")
        out.append(
            f"- The unusual-image guard flagged {count(flagged)} of {count(n)} unseen slices"
            + guard_shares(m[artifacts.EXTERNAL].get("sources") or {})
            + "."
        )
    loc = f.localisation or {}
    missed = [k.replace("_", " ") for k, ok in (loc.get("meets") or {}).items() if not ok]
    if missed:
        out.append(f"- The explanation maps miss their targets ({', '.join(missed)}): below.")
    if f.volume_rule:
        out.append("- The volume rule was checked on synthetic volumes only: below.")
    return "\n".join(out)


def versions(f: Facts) -> str:
    c = f.card
    rows = [[k, v] for k, v in (c.get("versions") or {}).items()]
    device = c.get("device") or {}
    rows += [
        [f"device: {k}", ", ".join(v) if isinstance(v, list) else v] for k, v in device.items()
    ]
    return "## Versions\n\n" + table(["what trained it", "version"], rows)


def model_card(f: Facts) -> str:
    """docs/MODEL_CARD.md."""
    head = (
        f"# Model card: {f.card.get('name', 'NeuroScan')} (`{f.sha}`)\n\n"
        f"Rendered by `neuroscan report` from `{f.folder}/` ({artifacts.CARD}, "
        f"{artifacts.METRICS}, {artifacts.LOCALISATION}, {artifacts.LESION_RECORD}, "
        f"{artifacts.VOLUME_RULE}, "
        f"{artifacts.SUMMARY}): edit the "
        "artifacts, not this file. Rates in percent (one decimal), scores as fractions (three), "
        "95% bootstrap CIs in brackets."
    )
    sections = (
        intended_use,
        model_facts,
        data,
        results,
        limits,
        volume_rule,
        localisation,
        lesion_head,
        versions,
    )
    return "\n\n".join([head, *(s(f) for s in sections)]) + "\n"
