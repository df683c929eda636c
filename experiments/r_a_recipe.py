"""Write recipe R_A's folder for `neuroscan cv`: the shipped settings (artifacts/settings.json)
with label smoothing 0.1 (plan F's adoption for a run on several sources), the given backbone
weights, and an empty metrics.json that `cv --save` fills. Plans O and Q use it.

    python experiments/r_a_recipe.py FOLDER WEIGHTS

PLAN_O_EXTRA='{"fine_tune_epochs": 1}' changes settings (for a quick check of a script)."""

import json
import os
import pathlib
import sys

folder, weights = pathlib.Path(sys.argv[1]), sys.argv[2]
folder.mkdir(parents=True)
settings = json.loads(pathlib.Path("artifacts/settings.json").read_text())
settings.update(label_smoothing=0.1, weights=weights)
settings.update(json.loads(os.environ.get("PLAN_O_EXTRA") or "{}"))
(folder / "settings.json").write_text(json.dumps(settings, indent=2))
(folder / "metrics.json").write_text("{}")
