"""The report's random-split protocol and the shortcut check (tumor_model.evaluation.protocols)."""

import json

import pytest

from tumor_model.evaluation import protocols


def test_report_protocol_refuses_a_random_split_model(tiny_artifacts, tmp_path):
    settings = json.loads((tiny_artifacts / "settings.json").read_text())
    (tmp_path / "settings.json").write_text(json.dumps({**settings, "split": "random"}))
    with pytest.raises(ValueError, match="already holds a random-split model"):
        protocols.protocol_artifacts(tmp_path)
