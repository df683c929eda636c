"""The volume rule's check as an artifact: `neuroscan volume-rule` measures it
(evaluation.volume_rule), `--save` writes volume_rule.json with the model's sha256, and the
Predict page's line (serving.volume_check) says whether it was measured on this model."""

from __future__ import annotations

import json
import shutil

import pytest

from tumor_model import artifacts
from tumor_model.commands import main
from tumor_model.evaluation import volume_rule
from tumor_model.serving import volume, volume_check

from conftest import REPO

SHIPPED = REPO / "artifacts"


def _check(sha: str, chosen: int = 2) -> dict:
    rules = {
        str(k): {"sensitivity": 1.0 - 0.1 * k, "specificity": 0.5 + 0.1 * k, "no_verdict": 0}
        for k in (1, 2, 3)
    }
    return {
        "rule": volume.RULE,
        "rule_run": volume.RUN,
        "chosen_run": chosen,
        "val": {"files": 10, "flagged_unusual": 0, "rules": rules},
        "test": {"files": 10, "flagged_unusual": 0, "rules": rules},
        "end_to_end": {"volumes": 1, "slices": 3, "same_decision": 3, "median_abs_gap": 0.0},
        "setup": {"sources": ["kaggle"], "slices_per_volume": 3, "tumour_run": [1, 2]}
        | {"volumes_per_class": 5, "seed": 0},
        "caveat": "synthetic",
        "model_sha256": sha,
        "command": "neuroscan volume-rule",
        "ran": {"cpu": "cpu", "cores": 2, "date": "2026-01-01", "seconds": 1.0},
    }


def _folder(tmp_path, card_sha: str, check: dict | None):
    (tmp_path / artifacts.CARD).write_text(json.dumps({"model_sha256": card_sha}))
    if check is not None:
        (tmp_path / artifacts.VOLUME_RULE).write_text(json.dumps(check))
    return tmp_path


def test_the_line_says_this_model_when_the_hash_matches(tmp_path):
    line = volume_check.check_line(_folder(tmp_path, "a" * 64, _check("a" * 64)), "a" * 64)
    assert line.startswith("How the rule was checked (on this model): synthetic volumes of 3")
    assert "RUN = 2 was chosen on validation (sensitivity 80.0%, specificity 70.0%)" in line
    assert "one slice would give specificity 60.0%" in line and "2026-01-01" in line


def test_the_line_says_an_earlier_model_when_the_hash_differs(tmp_path):
    folder = _folder(tmp_path, "b" * 64, _check("a" * 64))
    line = volume_check.check_line(folder)  # the card's sha256 when none is given
    assert "measured on an earlier model" in line and "aaaaaaaaaaaa" in line
    assert volume_check.COMMAND in line


def test_the_line_says_when_the_model_was_never_checked(tmp_path):
    assert "has not been checked" in volume_check.check_line(_folder(tmp_path, "a" * 64, None))
    (tmp_path / artifacts.VOLUME_RULE).write_text("{not json")
    assert "has not been checked" in volume_check.check_line(tmp_path, "a" * 64)
    (tmp_path / artifacts.VOLUME_RULE).write_text(json.dumps({"val": {}, "test": {}}))
    assert "incomplete" in volume_check.check_line(tmp_path, "a" * 64)


def test_a_rule_in_use_other_than_the_chosen_one_is_said(tmp_path):
    check = _check("a" * 64, chosen=3)
    line = volume_check.check_line(_folder(tmp_path, "a" * 64, check), "a" * 64)
    assert f"The rule in use has RUN = {volume.RUN}." in line


def test_the_shipped_model_carries_its_own_check():
    card = artifacts.read_card(SHIPPED)
    check = volume_check.read(SHIPPED)
    assert check is not None and check["model_sha256"] == card["model_sha256"]
    assert check["chosen_run"] == volume.RUN and check["rule"] == volume.RULE
    assert volume_check.check_line(SHIPPED).startswith("How the rule was checked (on this model)")


def test_choose_prefers_the_best_sum_then_the_larger_run():
    rules = {
        "1": {"sensitivity": 1.0, "specificity": 0.5},
        "2": {"sensitivity": 0.9, "specificity": 0.9},
    }
    rules["3"] = {"sensitivity": 0.8, "specificity": 1.0}
    assert volume_rule.choose(rules) == 3


def test_measure_and_save_on_the_tiny_model(tiny_artifacts, tmp_path, tiny_dataset):
    folder = tmp_path / "model"
    shutil.copytree(tiny_artifacts, folder)
    root, _ = tiny_dataset
    check = volume_rule.measure(folder, [root], 6, 1, 0, slices=3, tumour_run=(1, 2))
    assert set(check["val"]["rules"]) == {"1", "2", "3", "4", "5"}
    assert check["model_sha256"] == artifacts.read_card(folder)["model_sha256"]
    assert check["end_to_end"]["slices"] == 3 and check["ran"]["seconds"] > 0
    path = volume_rule.write(check, folder)
    assert path == folder / artifacts.VOLUME_RULE
    assert volume_check.check_line(folder).startswith("How the rule was checked (on this model)")


def test_the_command_refuses_a_split_too_small_for_its_volumes(tiny_artifacts, capsys):
    code = main(["volume-rule", "--artifacts", str(tiny_artifacts), "--volumes", "2"])
    assert code == 2 and "too few slices" in capsys.readouterr().err
    assert not (tiny_artifacts / artifacts.VOLUME_RULE).exists()


@pytest.mark.parametrize("flag", ["--volumes", "--end-to-end", "--seed"])
def test_the_command_declares_its_flags(flag, capsys):
    with pytest.raises(SystemExit):
        main(["volume-rule", "--help"])
    assert flag in capsys.readouterr().out
