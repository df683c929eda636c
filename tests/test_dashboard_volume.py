"""tumor_model.dashboard.volume: which uploads are volumes, the verdict text, the per-slice chart
(no model needed: per-slice results are built by hand)."""

from __future__ import annotations

from tumor_model.dashboard import volume as vv
from tumor_model.serving import volume as vol

from badfiles import valid_image_bytes
from volumes import nifti_bytes, phantom, series_files


def _result(probs, unusual=(), threshold=0.5) -> dict:
    slices = [
        {
            "slice": i + 1,
            "probability": p,
            "out_of_distribution": i in unusual,
            "label": "tumor" if p >= threshold else "healthy",
        }
        for i, p in enumerate(probs)
    ]
    return {
        "threshold": threshold,
        "slices": slices,
        "probabilities": list(probs),
        "volume": {"order": "inferior to superior"},
        "most_suspicious": vol.most_suspicious(slices),
        **vol.verdict(slices, threshold),
    }


def test_split_uploads_groups_a_series_and_keeps_upload_order():
    series = series_files(n=3)
    items = [
        {"name": "a.png", "data": valid_image_bytes("PNG")},
        *[{"name": n, "data": d} for n, d in series],
        {"name": "head.nii", "data": nifti_bytes(phantom())},
    ]
    volumes, scans = vv.split_uploads(items)
    assert [s["name"] for s in scans] == ["a.png"] and scans[0]["index"] == 0
    assert [v["name"] for v in volumes] == [f"{series[0][0]} (+2 files of its series)", "head.nii"]
    assert [v["index"] for v in volumes] == [1, 4] and volumes[0]["names"] == [n for n, _ in series]
    assert volumes[0]["key"] != volumes[1]["key"]
    failed = [{"name": "head.nii", "error": "'head.nii': x", "index": 4}]
    assert [i["name"] for i in vv.merge(scans, failed)] == ["a.png", "head.nii"]


def test_verdict_text_says_why_and_the_rule():
    text = vv.verdict_text(_result([0.1, 0.9, 0.8, 0.2]))
    assert text.startswith("**Volume verdict: tumour**: the longest run")
    assert "(slices 2-3)" in text and vol.RULE in text
    none = vv.verdict_text(_result([0.9, 0.9, 0.9], unusual=(0, 1, 2)))
    assert "Volume verdict: no verdict" in none and "every slice was flagged" in none
    assert "no slice reaches the threshold" in vv.verdict_text(_result([0.1, 0.2, 0.3]))


def test_probability_figure_marks_threshold_run_and_unusual_slices():
    fig = vv.probability_figure(_result([0.1, 0.9, 0.8, 0.2, 0.95], unusual=(4,)), selected=3)
    (trace,) = fig.data
    assert list(trace.x) == [1, 2, 3, 4, 5] and trace.marker.symbol[4] == "circle-open"
    shapes = fig.layout.shapes
    assert any(s.type == "line" and s.y0 == 0.5 for s in shapes)  # the threshold
    assert any(s.type == "rect" and (s.x0, s.x1) == (1.5, 3.5) for s in shapes)  # the run
    assert any(s.type == "line" and s.x0 == 3 for s in shapes)  # the chosen slice


def test_volumes_frame_and_first_shown():
    result = _result([0.1, 0.9, 0.8])
    frame = vv.volumes_frame([{"name": "v.nii", "result": result}])
    assert frame.to_dict("records") == [
        {
            "volume": "v.nii",
            "slices": 3,
            "verdict": "tumour",
            "highest P(tumour)": 0.9,
            "at slice": 2,
        }
    ]
    assert vv.first_shown(result) == 2
