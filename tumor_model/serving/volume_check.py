"""How the volume rule (`serving.volume.RULE`) was chosen and checked on a model: the artifacts
folder's `volume_rule.json`, written by `neuroscan volume-rule --save`
(`evaluation.volume_rule`), and the one line the Predict page shows about it. The check is the
model's own only when its sha256 is the model card's; otherwise the line says it was measured on
an earlier model."""

from __future__ import annotations

import json
from pathlib import Path

COMMAND = "neuroscan volume-rule --save"


def read(folder: str | Path) -> dict | None:
    """The folder's volume_rule.json (None when absent, unreadable or not a check)."""
    from tumor_model.artifacts import VOLUME_RULE

    try:
        value = json.loads((Path(folder) / VOLUME_RULE).read_text())
    except (OSError, ValueError):
        return None
    ok = isinstance(value, dict) and isinstance(value.get("test"), dict)
    return value if ok and isinstance(value.get("val"), dict) else None


def figures(check: dict, run: int | None = None) -> dict:
    """{"val", "test"}: (sensitivity, specificity) of RUN = `run` (default: the chosen one)."""
    run = str(check["chosen_run"] if run is None else run)
    return {
        split: (
            check[split]["rules"][run]["sensitivity"],
            check[split]["rules"][run]["specificity"],
        )
        for split in ("val", "test")
    }


def describe(check: dict) -> str:
    """The check in words: how the volumes were made, the RUN chosen and its figures, the caveat,
    and where and when it ran."""
    setup, ran = check["setup"], check.get("ran") or {}
    chosen = int(check["chosen_run"])
    pairs = figures(check)
    (vs, vp), (ts, tp) = pairs["val"], pairs["test"]
    one = check["test"]["rules"].get("1")
    single = f" (one slice would give specificity {one['specificity']:.1%})" if one else ""
    low, high = setup["tumour_run"]
    sources = ", ".join(setup.get("sources") or ()) or "the model's sources"
    rule_run = check.get("rule_run", chosen)
    differs = "" if rule_run == chosen else f" The rule in use has RUN = {rule_run}."
    return (
        f"synthetic volumes of {setup['slices_per_volume']} real slices each ({sources}) from "
        f"the model's own split: per split {setup['volumes_per_class']:,} healthy ones and "
        f"{setup['volumes_per_class']:,} with a run of {low}-{high} tumour slices. RUN = "
        f"{chosen} was chosen on validation (sensitivity {vs:.1%}, specificity {vp:.1%}); on "
        f"test it gives sensitivity {ts:.1%}, specificity {tp:.1%}{single}.{differs} "
        f"{check.get('caveat', '')} (`{check.get('command', 'neuroscan volume-rule')}`, "
        f"{ran.get('cpu', '?')}, {ran.get('cores', '?')} cores, {ran.get('date', '?')}, "
        f"{ran.get('seconds', '?')} s)."
    )


def check_line(folder: str | Path, model_sha256: str | None = None) -> str:
    """The Predict page's line on how the volume rule was checked for the model in `folder`
    (`model_sha256`: the loaded model's; default: the folder's model card's)."""
    check = read(folder)
    if check is None:
        return (
            "The volume rule has not been checked on this model: its folder holds no readable "
            f"volume_rule.json (`{COMMAND}` measures and writes it)."
        )
    if model_sha256 is None:
        from tumor_model.artifacts import ArtifactError, read_card

        try:
            model_sha256 = read_card(folder).get("model_sha256")
        except ArtifactError:
            model_sha256 = None
    try:
        text = describe(check)
    except (KeyError, TypeError, ValueError):
        return f"The volume rule's check in {folder} is incomplete; rerun `{COMMAND}`."
    measured = check.get("model_sha256")
    if measured == model_sha256:
        return f"How the rule was checked (on this model): {text}"
    return (
        f"How the rule was checked (measured on an earlier model, sha256 {str(measured)[:12]}; "
        f"rerun `{COMMAND}`): {text}"
    )
