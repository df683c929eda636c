"""A model written by `neuroscan adapt` as the dashboard shows it: the sidebar, the Overview's
facts and the Predict page's band give the adapted model's own facts (when and on what it was
adapted, the threshold chosen on the site's scans, its out-of-fold figure there), never the
original model's training date, test accuracy or "threshold chosen on validation scans".

The adapted folder is a real one: `adapt.adapt` on the tiny model (conftest) and generated site
scans, as tests/test_adapt.py and the "Your scans" page make it."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tumor_model import artifacts
from tumor_model.dashboard import card as model_card
from tumor_model.dashboard import predict as pp
from tumor_model.dashboard.tables import fmt_value

from conftest import REPO, make_site

APP = REPO / "app" / "streamlit_app.py"


@pytest.fixture(scope="module")
def adapted(tiny_artifacts, tmp_path_factory) -> Path:
    from tumor_model.site import adapt

    root = tmp_path_factory.mktemp("adapted")
    out = root / "adapted"
    adapt.adapt(tiny_artifacts, [make_site(root / "site")], out, n_boot=20)
    return out


def _card(folder: Path) -> dict:
    return artifacts.read_card(folder)


def test_the_panel_of_an_adapted_model_states_its_own_facts(adapted):
    card, metrics = _card(adapted), artifacts.read_json(adapted, artifacts.METRICS)
    block = card[artifacts.ADAPTED]
    panel = model_card.model_panel(card, metrics)
    assert f"threshold {card['threshold']:.3f}" in panel["title"]
    when = model_card.moment_text(block["at"])
    assert panel["lines"] == [
        f"Adapted {when} on 24 labelled scans of `site` (12 tumour, 12 healthy), from model "
        f"{block['from_model_sha256'][:8]}.",
        "Threshold chosen on the site's scans (out-of-fold).",
    ]
    shown = " ".join(panel["lines"])
    assert "Trained" not in shown and "validation" not in shown  # the original model's
    figure = block["figures"]["retrained"]["balanced_accuracy"]
    assert panel["metric"]["label"] == "Balanced accuracy on the site's scans"
    assert panel["metric"]["value"] == fmt_value("balanced_accuracy", figure["value"])
    assert panel["metric"]["ci"].endswith("out-of-fold") and "95% CI" in panel["metric"]["ci"]


def test_the_panel_of_a_trained_model_is_unchanged(tiny_artifacts):
    card = _card(tiny_artifacts)
    metrics = artifacts.read_json(tiny_artifacts, artifacts.METRICS)
    panel = model_card.model_panel(card, metrics)
    when = model_card.trained_when(card)
    assert panel["lines"] == [f"Trained {when}; threshold chosen on validation scans."]
    assert panel["metric"]["label"] == "Test accuracy (group split)"
    accuracy = model_card.headline(card, metrics)["value"]
    assert panel["metric"]["value"] == fmt_value("accuracy", accuracy)


def test_facts_and_band_say_where_the_threshold_was_chosen(adapted, tiny_artifacts):
    card = _card(adapted)
    facts = dict(model_card.model_facts(card).values.tolist())
    assert facts["Adapted at"] == model_card.moment_text(card[artifacts.ADAPTED]["at"])
    assert facts["Adapted on"].startswith("24 labelled scans of `site`")
    assert facts["Decision threshold"].endswith("(chosen on the site's scans (out-of-fold))")
    assert "refitted by `neuroscan adapt`" in model_card.calibration_text(card)
    res = {"band": "likely tumour", "probability": 0.8, "threshold": card["threshold"]}
    assert pp.band_text(res, card).endswith("chosen on the site's scans (out-of-fold).")
    assert pp.band_text(res, _card(tiny_artifacts)).endswith("chosen on validation scans.")
    assert "Adapted at" not in dict(model_card.model_facts(_card(tiny_artifacts)).values.tolist())
    assert model_card.results_note(_card(tiny_artifacts)) is None


def test_the_sidebar_shows_the_adapted_model(adapted, monkeypatch, tmp_path):
    monkeypatch.setenv("NEUROSCAN_ARTIFACTS", str(adapted))
    monkeypatch.setenv("NEUROSCAN_DATA_DIR", str(tmp_path / "no-dataset"))
    at = AppTest.from_file(str(APP), default_timeout=60).run()
    assert not at.exception, [e.value for e in at.exception]
    card = _card(adapted)
    captions = [c.value for c in at.sidebar.caption]
    assert model_card.model_panel(card, None)["lines"][0] in captions
    assert "Threshold chosen on the site's scans (out-of-fold)." in captions
    assert [m.label for m in at.sidebar.metric] == ["Balanced accuracy on the site's scans"]
    shown = " ".join(captions + [m.label for m in at.sidebar.metric])
    for original in ("Trained ", "Test accuracy", "validation"):
        assert original not in shown
    facts = dict(at.table[0].value.values.tolist())  # the Overview, the default page
    assert facts["Adapted on"].startswith("24 labelled scans")
    assert any("refitted by `neuroscan adapt`" in m.value for m in at.markdown)
    assert [i.value for i in at.main.info] == [model_card.results_note(card)]
    assert "measured before adaptation" in model_card.results_note(card)
