"""`neuroscan report`: the README's results block, docs/MODEL_CARD.md and docs/results.md rendered
from an artifacts folder's JSON files; `--check` names every stale file (exit 1)."""

from __future__ import annotations

import json
import shutil

import pytest

from tumor_model import artifacts
from tumor_model.commands import main
from tumor_model.release import report
from tumor_model.release.report_format import cell, fmt

from conftest import REPO

SHIPPED = REPO / "artifacts"
README = f"# Title\n\nIntro.\n\n{report.MARK_START}\n{report.MARK_END}\n\nAfter.\n"


def _repo_copy(tmp_path):
    """The repository's three documents, copied (the README as it is, markers and all)."""
    for name in report.DOCUMENTS:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / name, tmp_path / name)
    return tmp_path


def test_the_shipped_documents_are_current(capsys):
    """Fails when a figure of the shipped model changed and `neuroscan report` was not rerun."""
    assert main(["report", "--check", "--artifacts", str(SHIPPED)]) == 0, capsys.readouterr()


def test_check_names_each_stale_file(tmp_path, capsys):
    root = _repo_copy(tmp_path)
    args = ["report", "--check", "--artifacts", str(SHIPPED), "--root", str(root)]
    assert main(args) == 0
    capsys.readouterr()
    results = root / report.RESULTS_DOC
    results.write_text(results.read_text().replace("94.4", "95.4", 1))
    (root / report.CARD_DOC).unlink()
    assert main(args) == 1
    out = capsys.readouterr()
    assert json.loads(out.out)["stale"] == [report.CARD_DOC, report.RESULTS_DOC]
    assert f"stale: {report.RESULTS_DOC}" in out.err and f"stale: {report.CARD_DOC}" in out.err
    assert "README.md" not in out.err


def test_a_readme_without_markers_is_stale_and_refused(tmp_path, capsys):
    root = _repo_copy(tmp_path)
    (root / "README.md").write_text("# No markers\n")
    args = ["report", "--artifacts", str(SHIPPED), "--root", str(root)]
    assert main([*args, "--check"]) == 1
    assert "README.md (no results markers)" in capsys.readouterr().err
    assert main(args) == 2 and report.MARK_START in capsys.readouterr().err


def test_write_touches_only_the_block_between_the_markers(tmp_path):
    (tmp_path / "README.md").write_text(README)
    written = report.write(SHIPPED, tmp_path)
    assert written == list(report.DOCUMENTS)
    text = (tmp_path / "README.md").read_text()
    assert text.startswith("# Title\n\nIntro.\n\n<!-- report:results -->\n")
    assert text.endswith("<!-- /report:results -->\n\nAfter.\n")
    assert report.write(SHIPPED, tmp_path) == [] and report.stale(SHIPPED, tmp_path) == []


def test_the_headline_states_each_evaluation_and_the_model():
    block = report.render(SHIPPED, REPO)["README.md"]
    card = artifacts.read_card(SHIPPED)
    metrics = artifacts.read_json(SHIPPED, artifacts.METRICS)
    assert f"Model `{card['model_sha256'][:12]}`" in block
    test = metrics[artifacts.TEST]
    assert f"| {cell(test, 'accuracy')} |" in block and "[" in cell(test, "accuracy")
    for source in metrics[artifacts.EXTERNAL]["sources"]:
        assert f"| Unseen source | {source}" in block
    assert "| Cross-source |" in block and "| Same source, for comparison |" in block


def test_the_model_card_has_every_section_and_the_licences():
    card = report.render(SHIPPED, REPO)[report.CARD_DOC]
    for heading in (
        "## Intended use",
        "## Data and sources",
        "## Results per source",
        "### Per sequence",
        "### Per institution",
        "## Limits",
        "## Volumes: the rule and its check",
        "## Explanation maps: do they find the lesion?",
        "## Lesion head: where is the lesion?",
        "## Versions",
    ):
        assert f"\n{heading}\n" in card
    assert "Not a medical device" in card and "CC BY 4.0" in card
    assert "Measured on an earlier model" not in card


def test_every_metrics_block_has_a_table_in_results():
    text = report.render(SHIPPED, REPO)[report.RESULTS_DOC]
    metrics = artifacts.read_json(SHIPPED, artifacts.METRICS)
    for key in metrics:
        assert f"(`{key}`)" in text, key


def test_checks_of_an_earlier_model_are_marked(tmp_path):
    for name in (artifacts.METRICS, artifacts.LOCALISATION, artifacts.VOLUME_RULE):
        shutil.copy(SHIPPED / name, tmp_path / name)
    card = artifacts.read_card(SHIPPED) | {"model_sha256": "f" * 64}
    card["sources"] = {**card["sources"], "tcga-lgg": {"files": 1, "classes": {}}}
    (tmp_path / artifacts.CARD).write_text(json.dumps(card))
    text = report.render(tmp_path, tmp_path)[report.CARD_DOC]
    assert text.count("**Measured on an earlier model**") == 2
    assert "non-commercial research only" in text


@pytest.mark.parametrize(
    ("value", "key", "shown"),
    [(0.94396, "accuracy", "94.4"), (0.96917, "roc_auc", "0.969"), (float("nan"), "roc_auc", "-")],
)
def test_one_style_per_column(value, key, shown):
    assert fmt(value, key) == shown
    assert cell({"metrics": {key: {"value": value}}}, key) == shown


def test_a_tiny_model_without_the_optional_files_renders(tiny_artifacts, tmp_path, capsys):
    (tmp_path / "README.md").write_text(README)
    for name in (artifacts.LOCALISATION, artifacts.VOLUME_RULE):
        assert not (tiny_artifacts / name).exists()
    args = ["report", "--artifacts", str(tiny_artifacts), "--root", str(tmp_path)]
    assert main(args) == 0
    assert json.loads(capsys.readouterr().out)["written"] == list(report.DOCUMENTS)
    card = (tmp_path / report.CARD_DOC).read_text()
    assert "Not checked on this model" in card and "Not measured on this model" in card
    assert "No lesion head ships with this model" in card
    assert "| Same source |" in (tmp_path / "README.md").read_text()
    assert "## Group split (`test`)" in (tmp_path / report.RESULTS_DOC).read_text()
    assert main([*args, "--check"]) == 0
