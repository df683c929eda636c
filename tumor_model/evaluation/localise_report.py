"""The localisation benchmark's output: its markdown tables and the files it writes (the full
JSON, the tables beside it, and the shipped default in the artifacts folder)."""

from __future__ import annotations

import os
from pathlib import Path

from tumor_model import artifacts
from tumor_model.serving.maps import TOLERANCES, summary_line


def percent(value) -> str:
    return f"{value:.0%}" if isinstance(value, (int, float)) else "-"


def ratio(value) -> str:
    return f"{value:.2f}" if isinstance(value, (int, float)) else "-"


def measured_on(result: dict) -> str:
    """Each box source's file and how its unseen rows were picked."""
    return "; ".join(f"{s['boxes']} ({s['unseen']})" for s in result["sources"].values())


def command(result: dict) -> str:
    """The command line that wrote `result`."""
    boxes = " ".join(f"--boxes {b}" for b in result["boxes"])
    samples = " ".join(f"--{k.replace('_', '-')} {v}" for k, v in result["samples"].items())
    return f"neuroscan localise {boxes} {samples} --seed {result['seed']}"


def config_rows(result: dict) -> list[str]:
    """One row per configuration: selection-half and report-half figures; the default bold."""
    from tumor_model.serving.explain import METHOD_NAMES

    sel, rep = (result["halves"][k]["scores"] for k in ("selection", "report"))
    t0, t1 = (f"pointing_{t}px" for t in TOLERANCES)
    lines = []
    for name, s in sel.items():
        r = rep.get(name, {})
        method, _, layers = name.partition(":")
        bold = "**" if name == result["default"]["name"] else ""
        cells = [
            f"{bold}{METHOD_NAMES.get(method, method)}{bold}",
            layers.replace("+", " + ") or "input pixels",
            result["layers"].get(name, "224x224"),
            *(s["n"], percent(s[t0]), percent(s[t1]), ratio(s["energy_ratio"])),
            percent(s.get("top10_in_box")),
            *(r.get("n", "-"), percent(r.get(t0)), percent(r.get(t1))),
            *(ratio(r.get("energy_ratio")), percent(r.get("top10_in_box"))),
            s.get("latency_ms", "-"),
        ]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return lines


def group_rows(groups: dict) -> list[str]:
    """The default's report-half figures per group, one row each."""
    t0, t1 = (f"pointing_{t}px" for t in TOLERANCES)
    lines = [
        f"| group | n | pointing {TOLERANCES[0]} px | pointing {TOLERANCES[1]} px "
        "| energy ratio | top-10% in box | targets not met |",
        "|---|---|---|---|---|---|---|",
    ]
    for group, g in groups.items():
        missed = ", ".join(k for k, ok in (g.get("meets") or {}).items() if not ok) or "none"
        cells = [group, g["n"], percent(g[t0]), percent(g[t1]), ratio(g["energy_ratio"])]
        cells += [percent(g.get("top10_in_box")), missed]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return lines


def markdown(result: dict) -> str:
    """The result as markdown: every configuration on both halves (the default bold), then the
    default's report-half figures per box source and sequence."""
    sel, rep = (result["halves"][k] for k in ("selection", "report"))
    ran, d = result["ran"], result["default"]
    lines = [
        "# Localisation benchmark of the explanation maps",
        "",
        f"Written by `{command(result)}` (tumor_model/evaluation/localise.py: the measures and "
        "the rule in its docstring).",
        "",
        f"Measured on {measured_on(result)}; maps of the tumour class at "
        f"{result['input_size']} px. Halves by {result['halves_by']}; sample sizes "
        f"{result['samples_are']}: selection half {sel['measured']} / report half "
        f"{rep['measured']} slices of {result['rows']} (Score-CAM and SmoothGrad on the first n "
        f"of each source). Ran on {ran['cpu']}, {ran['cores']} cores, {ran['backend']}, "
        f"{ran['date']} (load average {ran['load_average_at_end']}); latency = median of one "
        "`explain` call.",
        "",
        f"| method | layer(s) | map | n | pointing {TOLERANCES[0]} px | pointing {TOLERANCES[1]} px"
        " | energy ratio | top-10% in box | report n | report pointing "
        f"{TOLERANCES[0]} px | report pointing {TOLERANCES[1]} px | report energy ratio "
        "| report top-10% in box | latency ms |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        *config_rows(result),
        "",
        f"Default chosen on the selection half (pooled over the sources): **{d['name']}** "
        f"({result['rule']}).",
        f"On the report half, pooled: {summary_line(d)}.",
    ]
    if d.get("report_groups"):
        lines += ["", "Per box source and sequence (report half):", ""]
        lines += group_rows(d["report_groups"])
    return "\n".join(lines) + "\n"


def write(result: dict, out: str | Path, save_to: str | Path | None = None) -> list[str]:
    """Write `out` (.json) and its markdown tables beside it (.md); with `save_to` (an artifacts
    folder) also its small `artifacts.LOCALISATION` (the default, its figures pooled and per
    group)."""
    out = Path(out)
    if out.suffix != ".json":
        raise ValueError(f"--out must name a .json file, got {str(out)!r}")
    out.parent.mkdir(parents=True, exist_ok=True)
    artifacts.write_json(result, out)
    table = out.with_suffix(".md")
    tmp = table.with_name(f".{table.name}.tmp{os.getpid()}")
    tmp.write_text(markdown(result))
    os.replace(tmp, table)
    written = [str(out), str(table)]
    if save_to is not None:
        default = result["default"]
        shipped = {
            **{k: default[k] for k in ("method", "layers", "name", "report", "meets")},
            "groups": default.get("report_groups") or {},
            "model_sha256": result["model_sha256"],
            "sources": list(result["sources"]),
            "measured_on": measured_on(result),
            "targets": result["targets"],
            "ran": {k: result["ran"][k] for k in ("cpu", "cores", "date")},
            "benchmark": str(out),
        }
        path = Path(save_to) / artifacts.LOCALISATION
        artifacts.write_json(shipped, path)
        written.append(str(path))
    return written
