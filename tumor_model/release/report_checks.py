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
    verdict = {True: "met", False: "**not met**"}
    rows = [
        [
            "pointing game: the map's peak within 8 px of the box",
            f"{fmt(r.get('pointing_8px'), 'accuracy')}%",
            f">= {fmt(targets.get('pointing'), 'accuracy')}%",
            verdict.get(meets.get("pointing"), "-"),
        ],
        [
            "pointing game: the peak inside the box",
            f"{fmt(r.get('pointing_0px'), 'accuracy')}%",
            "-",
            "-",
        ],
        [
            "energy ratio (the box's share of the map's energy over its share of the head)",
            fmt(r.get("energy_ratio"), "ratio"),
            f">= {fmt(targets.get('energy_ratio'), 'ratio')}",
            verdict.get(meets.get("energy_ratio"), "-"),
        ],
        [
            "latency of one map (median)",
            f"{count(round(number(r.get('latency_ms')) or 0))} ms",
            f"<= {count(targets.get('latency_ms'))} ms",
            verdict.get(meets.get("latency_ms"), "-"),
        ],
    ]
    parts.append(table(["measure", "measured", "target", ""], rows))
    if loc.get("benchmark"):
        parts.append(f"Every method and layer measured: `{loc['benchmark']}`.")
    return "\n\n".join(parts)
