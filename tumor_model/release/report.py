"""`neuroscan report`: the documents that state a model's figures, rendered from its artifacts
folder's JSON files only (model_card.json, metrics.json and, when present, localisation.json,
volume_rule.json, dataset_summary.json), so that no figure of a model is typed by hand:

- README.md: the headline results table, between the markers `MARK_START` and `MARK_END` (the
  rest of the README is left as it is);
- docs/MODEL_CARD.md: intended use, data and sources, per-source and per-sequence results,
  limits, the volume rule and its check, localisation, versions;
- docs/results.md: every table of figures in metrics.json.

The output depends on the JSON files alone (no date or path of the render itself), so `check`
renders in memory and names every file that differs from what is on disk.
"""

from __future__ import annotations

from pathlib import Path

from tumor_model import artifacts
from tumor_model.release.report_card import model_card
from tumor_model.release.report_format import Facts
from tumor_model.release.report_results import headline, results

MARK_START, MARK_END = "<!-- report:results -->", "<!-- /report:results -->"
README, CARD_DOC, RESULTS_DOC = "README.md", "docs/MODEL_CARD.md", "docs/results.md"
DOCUMENTS = (README, CARD_DOC, RESULTS_DOC)
NOTE = (
    "<!-- Written by `neuroscan report` from the model's artifacts: change those and rerun it; "
    "`neuroscan report --check` fails while this block is stale. -->"
)


def repository_root() -> Path:
    """The repository whose README and docs the report writes: the source checkout the package
    runs from, else the working folder."""
    checkout = Path(__file__).resolve().parents[2]
    return checkout if (checkout / README).is_file() else Path.cwd()


def folder_name(folder: str | Path, root: str | Path) -> str:
    """How the documents name the artifacts folder: relative to the repository, else its name."""
    folder, root = Path(folder).resolve(), Path(root).resolve()
    try:
        return folder.relative_to(root).as_posix()
    except ValueError:
        return folder.name


def optional(folder: str | Path, name: str) -> dict | None:
    """An optional JSON artifact: None when absent; a damaged one raises ArtifactError."""
    return artifacts.read_json(folder, name) if (Path(folder) / name).is_file() else None


def read_facts(folder: str | Path, root: str | Path) -> Facts:
    return Facts(
        folder=folder_name(folder, root),
        card=artifacts.read_card(folder),
        metrics=artifacts.read_json(folder, artifacts.METRICS),
        localisation=optional(folder, artifacts.LOCALISATION),
        volume_rule=optional(folder, artifacts.VOLUME_RULE),
        summary=optional(folder, artifacts.SUMMARY),
        lesion_head=optional(folder, artifacts.LESION_RECORD),
    )


def render(folder: str | Path, root: str | Path) -> dict[str, str]:
    """{document: its generated text}; for README.md the block between its markers, markers
    included."""
    facts = read_facts(folder, root)
    block = f"{MARK_START}\n{NOTE}\n\n{headline(facts)}\n{MARK_END}"
    return {README: block, CARD_DOC: model_card(facts), RESULTS_DOC: results(facts)}


def splice(readme: str, block: str) -> str:
    """`readme` with the text between its markers (markers included) replaced by `block`."""
    start, end = readme.find(MARK_START), readme.find(MARK_END)
    if start < 0 or end < start or readme.count(MARK_START) != 1:
        raise ValueError(
            f"{README} needs the markers {MARK_START} and {MARK_END}, once each and in that "
            "order, where the results block goes"
        )
    return readme[:start] + block + readme[end + len(MARK_END) :]


def documents(folder: str | Path, root: str | Path) -> dict[str, str]:
    """{document: its whole text as it should be on disk}."""
    root = Path(root)
    out = render(folder, root)
    readme = root / README
    text = readme.read_text() if readme.is_file() else ""
    out[README] = splice(text, out[README])
    return out


def stale(folder: str | Path, root: str | Path) -> list[str]:
    """The documents under `root` that differ from a render of `folder` (a README without its
    markers is named with why)."""
    root = Path(root)
    try:
        wanted = documents(folder, root)
    except ValueError:
        out = [f"{README} (no results markers)"]
        wanted = render(folder, root)
        wanted.pop(README)
    else:
        out = []
    for name, text in wanted.items():
        path = root / name
        if not path.is_file() or path.read_text() != text:
            out.append(name)
    return out


def write(folder: str | Path, root: str | Path) -> list[str]:
    """Write every document that changed; returns the ones written."""
    root = Path(root)
    written = []
    for name, text in documents(folder, root).items():
        path = root / name
        if path.is_file() and path.read_text() == text:
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(text)
        tmp.replace(path)
        written.append(name)
    return written
