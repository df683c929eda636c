"""Print the README's results table from artifacts/metrics.json (no recomputation).

PYTHONPATH=. python benchmarks/results_table.py [artifacts]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

KEYS = ("accuracy", "sensitivity", "specificity", "roc_auc", "ece")


def cell(block: dict, key: str) -> str:
    m = block["metrics"].get(key)
    if m is None:
        return "-"
    return f"{m['value']:.4f} [{m['ci_low']:.3f}, {m['ci_high']:.3f}]"


def main() -> None:
    folder = Path(sys.argv[1] if len(sys.argv) > 1 else "artifacts")
    metrics = json.loads((folder / "metrics.json").read_text())
    rows = [
        ("Report (NASNetLarge, random split, as published)", None, "0.9848 (453/460)"),
        ("NeuroScan, duplicate-group split, test files", metrics.get("test"), None),
        (
            "NeuroScan, duplicate-group split, test groups (each counted once)",
            metrics.get("test_groups"),
            None,
        ),
        ("NeuroScan, grouped CV (frozen-feature stage)", metrics.get("cv"), None),
        (
            "NeuroScan, cross-source CV (frozen-feature stage; image sizes kept whole)",
            metrics.get("cv_source"),
            None,
        ),
        (
            "NeuroScan, grouped CV (whole recipe, fine-tuned per fold)",
            metrics.get("cv_fine_tuned"),
            None,
        ),
        (
            "NeuroScan, cross-source CV (whole recipe, fine-tuned per fold)",
            metrics.get("cv_source_fine_tuned"),
            None,
        ),
        (
            "NeuroScan, grouped CV (whole recipe, fine-tuned per fold; JAX port on a GPU)",
            metrics.get("cv_fine_tuned_gpu"),
            None,
        ),
        (
            "NeuroScan, cross-source CV (whole recipe, fine-tuned per fold; JAX port on a GPU)",
            metrics.get("cv_source_fine_tuned_gpu"),
            None,
        ),
        (
            "NeuroScan, the report's random split (seed 314), same recipe",
            metrics.get("random_split"),
            None,
        ),
    ]
    print("| protocol | n | folds | " + " | ".join(KEYS) + " |")
    print("|---|---|---|" + "---|" * len(KEYS))
    for name, block, fixed in rows:
        if fixed:
            print(f"| {name} | 460 | - | {fixed} |" + " - |" * (len(KEYS) - 1))
        elif block:
            cells = " | ".join(cell(block, k) for k in KEYS)
            print(f"| {name} | {block['n']} | {block.get('folds', '-')} | {cells} |")
    if "shortcut" in metrics:
        s = metrics["shortcut"]
        print(
            f"\nShortcut check ({s['protocol']}): accuracy {s['accuracy_original']:.4f} as "
            f"stored, {s['accuracy_reencoded']:.4f} re-encoded (drop {100 * s['drop']:.2f} "
            "points)."
        )


if __name__ == "__main__":
    main()
