"""The localisation benchmark's output: its markdown table and the files it writes (the full
JSON, the table beside it, and the shipped default in the artifacts folder)."""

from __future__ import annotations

import os
from pathlib import Path

from tumor_model import artifacts
from tumor_model.serving.maps import TOLERANCES, summary_line


def markdown(result: dict) -> str:
    """The result as a markdown table: selection half, report half, latency; the default bold."""
    sel, rep = (result["halves"][k] for k in ("selection", "report"))
    ran = result["ran"]
    t0, t1 = (f"pointing_{t}px" for t in TOLERANCES)
    samples = result.get("samples")
    flags = ""
    if samples:
        flags = " " + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in samples.items())
    lines = [
        "# Localisation benchmark of the explanation maps",
        "",
        f"Written by `neuroscan localise{flags} --seed {result['seed']}` "
        "(tumor_model/evaluation/localise.py: the measures and the rule in its docstring).",
        "",
        f"Measured on {result['boxes']} ({result['unseen']}), maps of the tumour class at "
        f"{result['input_size']} px; selection half {sel['measured']} / report half "
        f"{rep['measured']} slices of {result['rows']} (Score-CAM and SmoothGrad on the first n "
        f"of each). Ran on {ran['cpu']}, {ran['cores']} cores, {ran['backend']}, {ran['date']} "
        f"(load average {ran['load_average_at_end']}); latency = median of one `explain` call.",
        "",
        f"| method | layer(s) | map | n | pointing {TOLERANCES[0]} px | pointing {TOLERANCES[1]} px"
        " | energy ratio | report n | report pointing "
        f"{TOLERANCES[0]} px | report pointing {TOLERANCES[1]} px | report energy ratio "
        "| latency ms |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    from tumor_model.serving.explain import METHOD_NAMES

    for name, s in sel["scores"].items():
        r = rep["scores"].get(name, {})
        method, _, layers = name.partition(":")
        bold = "**" if name == result["default"]["name"] else ""
        cells = [
            f"{bold}{METHOD_NAMES.get(method, method)}{bold}",
            layers.replace("+", " + ") or "input pixels",
            result["layers"].get(name, "224x224"),
            s["n"],
            f"{s[t0]:.0%}",
            f"{s[t1]:.0%}",
            f"{s['energy_ratio']:.2f}" if s["energy_ratio"] is not None else "-",
            r.get("n", "-"),
            f"{r[t0]:.0%}" if r else "-",
            f"{r[t1]:.0%}" if r else "-",
            f"{r['energy_ratio']:.2f}" if r.get("energy_ratio") is not None else "-",
            s.get("latency_ms", "-"),
        ]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    d = result["default"]
    lines += ["", f"Default chosen on the selection half: **{d['name']}** ({result['rule']})."]
    lines.append(f"On the report half: {summary_line(d)}.")
    return "\n".join(lines) + "\n"


def write(result: dict, out: str | Path, save_to: str | Path | None = None) -> list[str]:
    """Write `out` (.json) and its markdown table beside it (.md); with `save_to` (an artifacts
    folder) also its small `artifacts.LOCALISATION` (the default and its figures)."""
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
        shipped = {
            **{k: result["default"][k] for k in ("method", "layers", "name", "report", "meets")},
            "model_sha256": result["model_sha256"],
            "measured_on": f"{result['boxes']} ({result['unseen']})",
            "targets": result["targets"],
            "ran": {k: result["ran"][k] for k in ("cpu", "cores", "date")},
            "benchmark": str(out),
        }
        path = Path(save_to) / artifacts.LOCALISATION
        artifacts.write_json(shipped, path)
        written.append(str(path))
    return written
