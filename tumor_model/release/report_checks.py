"""The model card's sections on the checks a model's folder may carry beside its metrics: the
volume rule's check (volume_rule.json) and the explanation maps' localisation benchmark
(localisation.json), each marked when it was measured on an earlier model."""

from __future__ import annotations

from tumor_model import artifacts
from tumor_model.release.report_format import Facts, count, fmt, number, table


def volume_rule(f: Facts) -> str:
    from tumor_model.serving import volume_check
    from tumor_model.serving.volume import RULE

    check = f.volume_rule
    parts = ["## Volumes: the rule and its check", f"Rule: {RULE}."]
    if check and check.get("rule") not in (None, RULE):
        parts.append(f"**The check below was made for an earlier rule**: {check['rule']}.")
    if not check:
        parts.append(
            f"Not checked on this model: no `{artifacts.VOLUME_RULE}` in its folder "
            f"(`{volume_check.COMMAND}` writes it)."
        )
        return "\n\n".join(parts)
    stale = (
        ""
        if f.fresh(check)
        else (
            f" **Measured on an earlier model** ({str(check.get('model_sha256'))[:12]}): rerun "
            f"`{volume_check.COMMAND}`."
        )
    )
    parts.append(f"Checked on {volume_check.describe(check)}{stale}")
    runs = sorted(check["val"]["rules"], key=int)
    rows = [
        [
            run + (" (chosen)" if int(run) == check.get("chosen_run") else ""),
            *(
                fmt(check[s]["rules"][run][k], k)
                for s in ("val", "test")
                for k in ("sensitivity", "specificity")
            ),
        ]
        for run in runs
    ]
    head = [
        "RUN (consecutive slices)",
        "validation sensitivity %",
        "validation specificity %",
        "test sensitivity %",
        "test specificity %",
    ]
    parts.append(table(head, rows))
    e2e = check.get("end_to_end") or {}
    if e2e.get("slices"):
        parts.append(
            f"Read as NIfTI and predicted through the volume path, {count(e2e['same_decision'])} "
            f"of {count(e2e['slices'])} test slices ({count(e2e.get('volumes'))} volumes) kept "
            f"the decision they get as files (median absolute change of P(tumour) "
            f"{fmt(e2e.get('median_abs_gap'), 'p')})."
        )
    return "\n\n".join(parts)


def localisation(f: Facts) -> str:
    from tumor_model.serving.explain import METHOD_NAMES

    loc, parts = f.localisation, ["## Explanation maps: do they find the lesion?"]
    if not loc or not isinstance(loc.get("report"), dict):
        parts.append(
            f"Not measured on this model: no `{artifacts.LOCALISATION}` (`neuroscan "
            "localise --save`); maps default to Grad-CAM on the last convolution."
        )
        return "\n\n".join(parts)
    r, targets, meets = loc["report"], loc.get("targets") or {}, loc.get("meets") or {}
    ran = loc.get("ran") or {}
    stale = "" if f.fresh(loc) else " **Measured on an earlier model**: rerun it."
    method = METHOD_NAMES.get(loc.get("method"), loc.get("method"))
    parts.append(
        f"Default map: {method} on {' + '.join(loc.get('layers') or ()) or 'the input pixels'}, "
        f"chosen by `neuroscan localise --save` and reported on {count(r.get('n'))} slices it "
        f"was not chosen on: {loc.get('measured_on', '?')}; {ran.get('cpu', '?')}, "
        f"{ran.get('cores', '?')} cores, {ran.get('date', '?')}.{stale}"
    )
    parts.append(table(["measure", "measured", "target", ""], localisation_rows(r, targets, meets)))
    groups = loc.get("groups")
    if isinstance(groups, dict) and groups:
        parts.append(
            "Per box source and sequence (the same slices, the same default; targets as above):"
        )
        parts.append(localisation_groups(groups))
    if loc.get("benchmark"):
        parts.append(f"Every method and layer measured: `{loc['benchmark']}`.")
    return "\n\n".join(parts)


def localisation_rows(r: dict, targets: dict, meets: dict) -> list[list]:
    """The default's pooled report-half figures against the targets (a measure an older file
    lacks, the top-10% share, is left out)."""
    verdict = {True: "met", False: "**not met**"}
    rows = [
        [
            "pointing game: the map's peak within 8 px of the box",
            pct(r.get("pointing_8px")),
            f">= {pct(targets.get('pointing'))}",
            verdict.get(meets.get("pointing"), "-"),
        ],
        [
            "pointing game: the peak inside the box",
            pct(r.get("pointing_0px")),
            "-",
            "-",
        ],
        [
            "energy ratio (the box's share of the map's energy over its share of the head)",
            fmt(r.get("energy_ratio"), "ratio"),
            f">= {fmt(targets.get('energy_ratio'), 'ratio')}",
            verdict.get(meets.get("energy_ratio"), "-"),
        ],
    ]
    if "top10_in_box" in r:
        rows.append(
            [
                "top-10% share: the map's top 10% head pixels inside the box",
                pct(r.get("top10_in_box")),
                f">= {pct(targets.get('top10_in_box'))}",
                verdict.get(meets.get("top10_in_box"), "-"),
            ]
        )
    rows.append(
        [
            "latency of one map (median)",
            f"{count(round(number(r.get('latency_ms')) or 0))} ms",
            f"<= {count(targets.get('latency_ms'))} ms",
            verdict.get(meets.get("latency_ms"), "-"),
        ]
    )
    return rows


def localisation_groups(groups: dict) -> str:
    """One row per group (source, source/sequence) of the default's report-half figures."""
    names = {"pointing": "pointing", "energy_ratio": "energy ratio", "top10_in_box": "top-10%"}
    rows = []
    for group, g in groups.items():
        if not isinstance(g, dict):
            continue
        missed = [names.get(k, k) for k, ok in (g.get("meets") or {}).items() if not ok]
        rows.append(
            [
                group,
                count(g.get("n")),
                pct(g.get("pointing_8px")),
                pct(g.get("pointing_0px")),
                fmt(g.get("energy_ratio"), "ratio"),
                pct(g.get("top10_in_box")),
                "all met" if not missed else f"not met: {', '.join(missed)}",
            ]
        )
    head = ["source / sequence", "slices", "pointing 8 px", "pointing 0 px", "energy ratio"]
    return table([*head, "top-10% in box", "targets"], rows)


def pct(value) -> str:
    """A share as percent with one decimal and its sign, or "-"."""
    text = fmt(value, "accuracy")
    return text if text == "-" else f"{text}%"


def lesion_head(f: Facts) -> str:
    """The lesion-map head's figures on held-out slices, beside the default map's on the same
    slices, from its record (`neuroscan lesion-head --save`)."""
    rec, parts = f.lesion_head, ["## Lesion head: where is the lesion?"]
    if not rec or not isinstance(rec.get("test"), dict):
        parts.append(
            f"No lesion head ships with this model: no `{artifacts.LESION_RECORD}` (`neuroscan "
            "lesion-head --save` trains one on lesion masks and boxes)."
        )
        return "\n\n".join(parts)
    test, ran = rec["test"], rec.get("ran") or {}
    stale = "" if f.fresh(rec) else " **Trained on an earlier model**: the Predict page refuses it."
    parts.append(
        f"A decoder on the frozen backbone ({', '.join(rec.get('layers') or ())}), trained on "
        f"lesion masks and boxes by `neuroscan lesion-head` and shown beside the evidence map; "
        f"pixel threshold {fmt(rec.get('threshold'), 'p')} (chosen on validation slices), "
        f"{number(rec.get('latency_ms')) or 0:.0f} ms a map; {ran.get('cpu', '?')}, "
        f"{ran.get('cores', '?')} cores, {ran.get('date', '?')}.{stale} Held-out slices (the "
        f"default map `{rec.get('default_map', '-')}` on the same slices after the slash):"
    )
    ref = test.get("default_map_same_slices") or {}
    rows = []
    for group, g in (test.get("head") or {}).items():
        d, r = (test.get("dice") or {}).get(group) or {}, ref.get(group) or {}
        alarm = (test.get("healthy_false_alarm") or {}).get(group) or {}
        rows.append(
            [
                group,
                count(g.get("n")),
                f"{fmt(d.get('mean'), 'p')} ({fmt(d.get('median'), 'p')})" if d else "boxes only",
                f"{pct(g.get('pointing_8px'))} / {pct(r.get('pointing_8px'))}",
                f"{fmt(g.get('energy_ratio'), 'ratio')} / {fmt(r.get('energy_ratio'), 'ratio')}",
                f"{pct(g.get('top10_in_box'))} / {pct(r.get('top10_in_box'))}",
                pct(alarm.get("mean")) if alarm else "-",
            ]
        )
    head = ["source / sequence", "tumour slices", "Dice mean (median)", "pointing 8 px"]
    parts.append(table([*head, "energy ratio", "top-10% in box", "healthy: any pixel"], rows))
    return "\n\n".join(parts)
